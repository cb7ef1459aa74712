"""History rules through the whole HTTP path (clock frozen at the anchor): jaw osteonecrosis,
atypical femoral fracture, esophagus, pregnancy, allergy, anti-angiogenic therapy and the dental
check, each on both sides of its cut-off.

Every test starts from a prepared patient whose order gets no card at all and changes one thing, so
the card under test must be the only one.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta, timezone

import pytest

from fixtures.builder import (
    ANCHOR_INSTANT,
    FIXTURE_ANCHOR_DATE,
    ICD10CM,
    SNOMED,
    PatientBuilder,
    medication_request,
)
from service import create_app
from service.config import Settings
from tests.support.order_sign_http import (
    actions,
    denosumab_order,
    early,
    metastatic,
    new_patient,
    oral_order,
    order,
    poster,
    prepared,
    rules,
)

Setup = Callable[[PatientBuilder], object]

# Drug -> (setting that makes its order quiet, order maker).
DRUGS = {
    "za-iv": (metastatic, order),
    "denosumab": (metastatic, denosumab_order),
    "alendronate-oral": (early, oral_order),
    # hypercalcemia of malignancy is treated with one dose (a repeating order draws
    # interval-too-short)
    "za-iv-single-dose": (metastatic, lambda p: order(p, every=None)),
}

# The frozen date 6 calendar months back (2026-10-15 -> 2026-04-15), in days: an exam that old still
# counts.
SIX_MONTHS_DAYS = (
    FIXTURE_ANCHOR_DATE - FIXTURE_ANCHOR_DATE.replace(month=FIXTURE_ANCHOR_DATE.month - 6)
).days


def on_date(days_ago: int) -> str:
    return (FIXTURE_ANCHOR_DATE - timedelta(days=days_ago)).isoformat()


SIX_MONTHS_AGO, DAY_BEFORE = on_date(SIX_MONTHS_DAYS), on_date(SIX_MONTHS_DAYS + 1)


def changed(key: str, value: object) -> Callable[[PatientBuilder], None]:
    """Set one element of the resource added last (shapes the builder has no key for)."""

    def change(p: PatientBuilder) -> None:
        p.resources[-1][key] = value

    return change


def recoded(
    system: str, code: str, display: str, key: str = "code"
) -> Callable[[PatientBuilder], None]:
    return changed(
        key, {"coding": [{"system": system, "code": code, "display": display}], "text": display}
    )


def cond(key: str, *then: Callable[[PatientBuilder], None], **kwargs) -> Setup:
    def setup(p: PatientBuilder) -> None:
        p.condition(key, **kwargs)
        for change in then:
            change(p)

    return setup


def check(
    post,
    drug: str,
    setup: Setup,
    rule: str,
    fires: bool,
    *texts: str,
    patient: list | None = None,
    **prep: bool,
) -> dict | None:
    """Post the drug's order for a prepared patient changed by `setup`; the rule's card is the only
    one, or none."""
    setting, make = DRUGS[drug]
    p = prepared(setting(new_patient(drug)), **prep)
    setup(p)
    if patient is not None:
        patient.append(p)
    draft = make(p)
    found = rules(post(p, draft))
    if not fires:
        assert not found, list(found)
        return None
    assert list(found) == [rule]
    card = found[rule]
    for text in texts:
        assert text in card["detail"] + card["summary"], (text, card["detail"])
    deletes = [a["resourceId"] for a in actions(card, "delete")]
    assert deletes == (
        [f"MedicationRequest/{draft['id']}"] if card["indicator"] == "critical" else []
    )
    return card


def indicator_of(card: dict | None) -> str | None:
    return card["indicator"] if card else None


# onj-history: any clinical status counts; refuted, entered-in-error and a WHO-only code under
# ICD-10-CM do not.


@pytest.mark.parametrize("drug", list(DRUGS))
@pytest.mark.parametrize(
    "setup, fires",
    [
        (cond("onj"), True),
        (cond("onj", status="resolved"), True),
        (cond("onj", status="inactive"), True),
        (cond("onj-who"), True),
        (cond("onj", verification="refuted"), False),
        (cond("onj", verification="entered-in-error"), False),
        (cond("onj-who", recoded(ICD10CM, "K10.2", "Inflammatory conditions of jaws")), False),
        (cond("onj", recoded(ICD10CM, "M87.18", "Osteonecrosis due to drugs, other site")), False),
    ],
    ids=[
        "active",
        "resolved",
        "inactive",
        "who-K10.2",
        "refuted",
        "entered-in-error",
        "K10.2-as-icd10cm",
        "M87.18",
    ],
)
def test_onj_history(post, drug, setup, fires):
    card = check(post, drug, setup, "onj-history", fires, "history of osteonecrosis of the jaw")
    assert indicator_of(card) == ("critical" if fires else None)


# atypical-femur-fracture-history: M84.75x in any clinical status unless refuted.


@pytest.mark.parametrize("drug", ["za-iv", "alendronate-oral"])
@pytest.mark.parametrize(
    "setup, fires",
    [
        (cond("atypical-femoral-fracture"), True),
        (cond("atypical-femoral-fracture", status="resolved"), True),
        (
            cond(
                "atypical-femoral-fracture",
                recoded(ICD10CM, "M84.759D", "Atypical femoral fracture, unspecified leg"),
            ),
            True,
        ),
        (cond("atypical-femoral-fracture", verification="refuted"), False),
        (cond("atypical-femoral-fracture", verification="entered-in-error"), False),
        (
            cond(
                "atypical-femoral-fracture",
                recoded(ICD10CM, "M84.551A", "Pathological fracture in neoplastic disease"),
            ),
            False,
        ),
    ],
    ids=["active", "resolved", "M84.759D", "refuted", "entered-in-error", "M84.551A"],
)
def test_atypical_femur_fracture_history(post, drug, setup, fires):
    card = check(
        post, drug, setup, "atypical-femur-fracture-history", fires, "atypical femoral fracture"
    )
    assert indicator_of(card) == ("warning" if fires else None)
    assert not (card and actions(card))


# oral-bp-esophageal: oral bisphosphonate with an ACTIVE stricture or achalasia (Barrett's esophagus
# alone is a warning: tests/clinical/test_course_and_review_rev2.py).


@pytest.mark.parametrize(
    "drug, setup, fires",
    [
        ("alendronate-oral", cond("esophageal-stricture"), True),
        ("alendronate-oral", cond("achalasia"), True),
        ("alendronate-oral", cond("esophageal-stricture", status="resolved"), False),
        ("alendronate-oral", cond("esophageal-stricture", verification="refuted"), False),
        ("alendronate-oral", cond("gerd"), False),
        ("za-iv", cond("esophageal-stricture"), False),
        ("denosumab", cond("achalasia"), False),
    ],
    ids=[
        "stricture",
        "achalasia",
        "stricture-resolved",
        "stricture-refuted",
        "gerd",
        "iv-za",
        "denosumab",
    ],
)
def test_oral_bp_esophageal(post, drug, setup, fires):
    card = check(
        post, drug, setup, "oral-bp-esophageal", fires, "alendronate", "intravenous zoledronic acid"
    )
    assert indicator_of(card) == ("critical" if fires else None)


# pregnancy-or-lactation: active condition, or the latest pregnancy status "pregnant" within 294
# days.


def statuses(
    *answers: tuple[int, str], then: Callable[[PatientBuilder], None] = lambda p: None
) -> Setup:
    """Pregnancy-status observations (days ago, answer), then a change to the last one."""

    def setup(p: PatientBuilder) -> None:
        for days_ago, answer in answers:
            p.pregnancy_status(days_ago, answer)
        then(p)

    return setup


@pytest.mark.parametrize("drug", ["za-iv", "denosumab"])
@pytest.mark.parametrize(
    "setup, fires, evidence",
    [
        (cond("pregnancy"), True, "Pregnancy (active"),
        (cond("lactation"), True, "lactating mother (active"),
        (cond("pregnancy", status="resolved"), False, None),
        (cond("lactation", status="inactive"), False, None),
        (cond("pregnancy", verification="refuted"), False, None),
        (statuses((294, "pregnant")), True, f"Pregnancy status: Pregnant on {on_date(294)}"),
        (statuses((295, "pregnant")), False, None),
        (statuses((10, "not-pregnant")), False, None),
        (statuses((10, "pregnant"), (5, "not-pregnant")), False, None),
        (statuses((10, "not-pregnant"), (5, "pregnant")), True, f"Pregnant on {on_date(5)}"),
        (statuses((10, "pregnant"), (5, "unknown")), True, f"Pregnant on {on_date(10)}"),
        (statuses((5, "unknown")), False, None),
        (
            statuses(
                (10, "pregnant"), (5, "not-pregnant"), then=changed("status", "entered-in-error")
            ),
            True,
            on_date(10),
        ),
        (
            statuses(
                (30, "not-pregnant"),
                then=recoded(SNOMED, "77386006", "Pregnant (snomed)", "valueCodeableConcept"),
            ),
            True,
            f"Pregnant (snomed) on {on_date(30)}",
        ),
    ],
    ids=[
        "pregnancy",
        "lactation",
        "pregnancy-resolved",
        "lactation-inactive",
        "pregnancy-refuted",
        "pregnant-294d",
        "pregnant-295d",
        "not-pregnant",
        "later-not-pregnant-wins",
        "later-pregnant-wins",
        "later-unknown-does-not-cancel",
        "unknown-only",
        "not-pregnant-entered-in-error",
        "snomed-pregnant",
    ],
)
def test_pregnancy_or_lactation(post, drug, setup, fires, evidence):
    card = check(
        post,
        drug,
        setup,
        "pregnancy-or-lactation",
        fires,
        *([evidence, "breast-feeding"] if fires else []),
    )
    assert indicator_of(card) == ("critical" if fires else None)


# hypersensitivity: allergy to the ingredient, or to bisphosphonates as a class when a
# bisphosphonate is ordered.


def allergy(key: str | None = None, **kwargs) -> Setup:
    return lambda p: p.allergy(key, **kwargs)


@pytest.mark.parametrize(
    "drug, setup, scope",
    [
        ("za-iv", allergy("zoledronic-acid"), "this drug"),
        ("za-iv", allergy(text="Zoledronic acid"), "this drug"),
        ("za-iv", allergy(atc="M05BA08", text="zoledronic acid"), "this drug"),
        ("za-iv", allergy(atc="M05BA", text="Bisphosphonates"), "bisphosphonates (class)"),
        ("za-iv", allergy(text="Bisphosphonate allergy"), "bisphosphonates (class)"),
        ("za-iv", allergy("alendronate"), "bisphosphonates (class)"),
        ("alendronate-oral", allergy("risedronate"), "bisphosphonates (class)"),
        ("denosumab", allergy("denosumab"), "this drug"),
        ("denosumab", allergy(text="Prolia (denosumab)"), "this drug"),
        ("za-iv", allergy("zoledronic-acid", verification="unconfirmed"), "this drug"),
        ("denosumab", allergy(atc="M05BA", text="Bisphosphonates"), None),
        ("denosumab", allergy(text="bisphosphonates"), None),
        ("denosumab", allergy("zoledronic-acid"), None),
        ("za-iv", allergy("denosumab"), None),
        ("za-iv", allergy("letrozole"), None),
        ("za-iv", allergy("zoledronic-acid", verification="refuted"), None),
        ("za-iv", allergy("zoledronic-acid", verification="entered-in-error"), None),
        ("za-iv", allergy("zoledronic-acid", status="inactive"), None),
        ("za-iv", allergy(text="bisphosphonates", status="resolved"), None),
    ],
    ids=[
        "za-rxnorm",
        "za-text",
        "za-atc",
        "class-atc",
        "class-text",
        "alendronate-for-za",
        "risedronate-for-alendronate",
        "denosumab-rxnorm",
        "denosumab-text",
        "unconfirmed",
        "class-atc-denosumab",
        "class-text-denosumab",
        "za-for-denosumab",
        "denosumab-for-za",
        "letrozole",
        "refuted",
        "entered-in-error",
        "inactive",
        "resolved",
    ],
)
def test_hypersensitivity(post, drug, setup, scope):
    card = check(
        post, drug, setup, "hypersensitivity", scope is not None, f": {scope} (" if scope else ""
    )
    assert indicator_of(card) == ("critical" if scope else None)


# onj-risk-antiangiogenic: IV bisphosphonate or denosumab while bevacizumab is active.


@pytest.mark.parametrize(
    "drug, status, fires",
    [
        ("za-iv", "active", True),
        ("denosumab", "active", True),
        ("za-iv", "stopped", False),
        ("denosumab", "completed", False),
        ("alendronate-oral", "active", False),
    ],
    ids=["za-active", "denosumab-active", "za-stopped", "denosumab-completed", "oral-out-of-scope"],
)
def test_onj_risk_antiangiogenic(post, drug, status, fires):
    card = check(
        post,
        drug,
        lambda p: p.medication("bevacizumab", 20, status=status),
        "onj-risk-antiangiogenic",
        fires,
        f"bevacizumab (active, ordered {on_date(20)})",
        "osteonecrosis of the jaw",
    )
    assert indicator_of(card) == ("warning" if fires else None)
    assert not (card and actions(card))


def test_bevacizumab_signed_together_counts(post):
    """A bevacizumab order drafted in the same request is about to be active too."""
    p = prepared(metastatic(new_patient("bev-same-request")))
    bevacizumab = medication_request(
        f"{p.patient_id}-draft-bev",
        p.patient_id,
        "bevacizumab",
        route="intravenous",
        every=(3, "wk"),
    )
    found = rules(post(p, order(p), bevacizumab))
    assert list(found) == ["onj-risk-antiangiogenic"]
    assert "bevacizumab (being ordered now)" in found["onj-risk-antiangiogenic"]["detail"]


# dental-check-missing: first IV/denosumab dose without a dental examination in the last 6 calendar
# months.

EVIDENCE = {
    "procedure": lambda p, days: p.dental_exam(days),
    "encounter": lambda p, days: p.dental_encounter(days),
    "condition": lambda p, days: p.condition(
        "dental-examination", status="resolved", onset_days_ago=days
    ),
}


def dental_card(post, drug: str, setup: Setup, fires: bool, *texts: str) -> dict | None:
    patient: list[PatientBuilder] = []
    card = check(
        post, drug, setup, "dental-check-missing", fires, *texts, dental=False, patient=patient
    )
    if card:
        assert card["indicator"] == "warning"
        (create,) = actions(card, "create")
        request = create["resource"]
        assert request["resourceType"] == "ServiceRequest"
        assert request["code"]["coding"][0]["code"] == "D0150"
        assert request["subject"]["reference"] == patient[0].reference
    return card


@pytest.mark.parametrize("drug", ["za-iv", "denosumab"])
@pytest.mark.parametrize("kind", list(EVIDENCE))
@pytest.mark.parametrize(
    "days_ago, fires",
    [(SIX_MONTHS_DAYS, False), (SIX_MONTHS_DAYS + 1, True)],
    ids=["exactly-6-months", "one-day-more"],
)
def test_dental_exam_age(post, drug, kind, days_ago, fires):
    dental_card(
        post,
        drug,
        lambda p: EVIDENCE[kind](p, days_ago),
        fires,
        f"No dental examination since {SIX_MONTHS_AGO}; the latest is",
        on_date(days_ago),
    )


@pytest.mark.parametrize(
    "performed, fires",
    [
        (f"{DAY_BEFORE}T23:00:00-05:00", False),
        (f"{SIX_MONTHS_AGO}T01:00:00+02:00", True),
    ],
    ids=["utc-date-is-6-months", "utc-date-is-a-day-more"],
)
def test_dental_exam_dated_by_utc_day(post, performed, fires):
    """Exam times with an offset are compared by their UTC date, like every other window of the
    service."""
    dental_card(
        post,
        "za-iv",
        lambda p: changed("performedDateTime", performed)(p.dental_exam(1)),
        fires,
        "the latest is",
    )


def test_dental_window_counts_back_from_the_utc_day(tmp_path):
    """A clock frozen with another offset (BONECDS_NOW=2026-10-16T00:00+14:00 is the anchor instant)
    keeps the window."""
    app = create_app(
        Settings(
            database_url=f"sqlite:///{tmp_path}/t.db",
            frozen_now=ANCHOR_INSTANT.astimezone(timezone(timedelta(hours=14))),
            auth="off",
        )
    )
    post = poster(app)
    for days_ago, fires in ((SIX_MONTHS_DAYS, False), (SIX_MONTHS_DAYS + 1, True)):
        p = prepared(metastatic(new_patient("dental-offset")), dental=False).dental_exam(days_ago)
        assert ("dental-check-missing" in rules(post(p, order(p)))) is fires, days_ago


@pytest.mark.parametrize(
    "drug, setup, fires",
    [
        ("za-iv", lambda p: None, True),
        ("denosumab", lambda p: None, True),
        ("alendronate-oral", lambda p: None, False),
        (
            "za-iv-single-dose",
            lambda p: p.condition("hypercalcemia", onset_days_ago=3).calcium(1, 10.6, albumin=4.0),
            False,
        ),
        ("za-iv-single-dose", lambda p: p.calcium(1, 12.0, albumin=4.0), False),
        (
            "za-iv",
            cond("hypercalcemia"),
            True,
        ),  # an entry 400 days old is not current hypercalcemia
        ("za-iv", lambda p: p.calcium(1, 11.9, albumin=4.0), True),
        ("za-iv", lambda p: p.administration("zoledronic-acid-4mg", 100, dose_mg=4), False),
        ("za-iv", lambda p: p.administration("denosumab-120mg", 100, dose_mg=120), False),
        (
            "denosumab",
            lambda p: p.medication("zoledronic-acid-4mg", 100, dose_mg=4, route="intravenous"),
            False,
        ),
        (
            "za-iv",
            lambda p: p.medication("zoledronic-acid-4mg", 100, status="cancelled", dose_mg=4),
            True,
        ),
        ("za-iv", lambda p: p.administration("zoledronic-acid-4mg", 100, status="not-done"), True),
        (
            "za-iv",
            cond("dental-examination", verification="entered-in-error", onset_days_ago=30),
            True,
        ),
    ],
    ids=[
        "za-none",
        "denosumab-none",
        "oral-out-of-scope",
        "hypercalcemia-of-malignancy",
        "corrected-calcium-12.0",
        "old-hypercalcemia-entry",
        "corrected-calcium-11.9",
        "earlier-administration",
        "earlier-other-agent",
        "earlier-order",
        "cancelled-order-not-a-dose",
        "not-done-administration",
        "exam-entered-in-error",
    ],
)
def test_dental_first_dose(post, drug, setup, fires):
    dental_card(
        post,
        drug,
        setup,
        fires,
        f"No dental examination since {SIX_MONTHS_AGO}; none on record",
        "before the first dose",
    )


@pytest.mark.parametrize(
    "encounter_days, fires", [(None, True), (30, False)], ids=["nothing-else", "recent-encounter"]
)
def test_dental_procedures_unavailable(post, frozen_order_sign_app, encounter_days, fires):
    """Procedures not prefetched and no FHIR server: the card says the check could not be done,
    unless an encounter proves a recent examination."""
    p = prepared(metastatic(new_patient("dental-unavailable")), dental=False)
    if encounter_days is not None:
        p.dental_encounter(encounter_days)
    found = rules(
        post(
            p,
            order(p),
            prefetch_keys=[
                k.key
                for k in frozen_order_sign_app.extensions["bonecds"].prefetch_keys
                if k.key != "dentalProcedures"
            ],
        )
    )
    assert ("dental-check-missing" in found) is fires
    if fires:
        assert list(found) == ["dental-check-missing"]  # the dental card reports the gap itself
        assert "Dental examination could not be checked" in found["dental-check-missing"]["detail"]
        assert (
            "Dental examinations could not be retrieved" in found["dental-check-missing"]["detail"]
        )
    else:
        # the encounter settles the check, so there is nothing incomplete to report either
        assert not found


@pytest.mark.parametrize(
    "drug, allergy, summary_part, contraception",
    [
        ("za-iv", dict(key="zoledronic-acid"), "Allergy on record to zoledronic acid", False),
        (
            "za-iv",
            dict(text="Biphosphonate intolerance"),
            "Allergy on record to bisphosphonates, which include zoledronic acid",
            False,
        ),
        ("denosumab", dict(key="denosumab"), "Allergy on record to denosumab", True),
    ],
    ids=["own-drug", "class-misspelled", "denosumab"],
)
def test_allergy_summary_and_pregnancy_advice_fit_the_drug(
    post, drug, allergy, summary_part, contraception
):
    setting, make_order = DRUGS[drug]
    p = prepared(setting(new_patient("fit")))
    p.allergy(**allergy).pregnancy_status(10, "pregnant")
    found = rules(post(p, make_order(p)))
    assert set(found) == {"hypersensitivity", "pregnancy-or-lactation"}
    assert found["hypersensitivity"]["summary"] == summary_part
    assert ("contraception" in found["pregnancy-or-lactation"]["detail"]) is contraception


@pytest.mark.parametrize(
    "birth_date, fires",
    [("2008-10-15", False), ("2008-10-16", True), (None, False)],
    ids=["18-today", "18-tomorrow", "no-birth-date"],
)
def test_age_under_18(post, birth_date, fires):
    """Safety and efficacy below 18 years are not established (labels): a warning, no buttons."""
    p = prepared(metastatic(new_patient("age")))
    p.age = None
    if birth_date:
        p.birth_date = birth_date
    found = rules(post(p, order(p)))
    assert ("age-under-18" in found) is fires, sorted(found)
    if fires:
        card = found["age-under-18"]
        assert card["indicator"] == "warning" and "aged 17" in card["summary"]
        assert "suggestions" not in card
