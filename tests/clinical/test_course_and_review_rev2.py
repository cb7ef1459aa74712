"""Catalog revision 2 through the whole HTTP path (clock frozen at 2026-10-15): eligibility and
anti-angiogenic cards on the first dose of a course only (course gap 400 days, both sides), critical
safety rules at every dose, the patient-view windows (denosumab stopped 7-24 months, adjuvant
candidate by recent diagnosis or endocrine therapy), stage Observations, clodronate only when
orderable, the suggestion gate, and oral bisphosphonates with esophageal disease."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from fixtures.builder import ANCHOR_INSTANT, LOINC, SNOMED, PatientBuilder, day
from hooks.facts.build import build_facts
from hooks.fhir_read import shift_months
from hooks.knowledge import load_knowledge
from hooks.rules.review_context import ReviewContext
from tests.support.hook_http import PATIENT_VIEW, check_regimen_suggestions, hook_poster
from tests.support.order_sign_http import (
    actions,
    denosumab_order,
    early,
    metastatic,
    new_patient,
    oral_order,
    order,
    prepared,
    rules,
)

KNOWLEDGE = load_knowledge()
CHEMO, NO_BENEFIT, UNKNOWN = (
    "adjuvant-premenopausal-chemotherapy",
    "adjuvant-no-benefit-premenopausal",
    "menopausal-status-unknown",
)
DENOSUMAB, DXA, ANTIANGIOGENIC = (
    "adjuvant-denosumab-not-recommended",
    "dxa-missing",
    "onj-risk-antiangiogenic",
)
ADJUVANT, BONE_LOSS, STOPPED, METASTASES = (
    "review-adjuvant-candidate",
    "review-bone-loss-untreated",
    "review-denosumab-stopped",
    "review-bone-metastases-untreated",
)
ESOPHAGEAL = "oral-bp-esophageal"


def days_to_months_ago(months: int) -> int:
    """Days back to the same calendar day `months` months before the anchor (the window's edge)."""
    return (ANCHOR_INSTANT.date() - shift_months(ANCHOR_INSTANT, -months).date()).days


# --- first dose of a course ---------------------------------------------------------------------

Case = tuple[Callable[[], PatientBuilder], Callable[[PatientBuilder], dict], str, tuple[int, ...]]


def _za_6_monthly(p: PatientBuilder) -> dict:
    return order(p, every=(6, "mo"))


def _premenopausal_on_chemotherapy() -> PatientBuilder:
    p = prepared(early(new_patient("course", age=44))).condition("premenopausal")
    return p.medication("docetaxel", 14, status="active", route="intravenous", every=(3, "wk"))


def _denosumab_early() -> PatientBuilder:
    p = prepared(early(new_patient("course", age=63)))
    return p.medication("letrozole", 300, status="active", route="oral", every=(1, "d"))


def _anastrozole_old_dxa() -> PatientBuilder:
    p = prepared(early(new_patient("course", age=64))).t_score(900, -1.4)
    return p.medication("anastrozole", 400, status="active", route="oral", every=(1, "d"))


def _bevacizumab() -> PatientBuilder:
    p = prepared(metastatic(new_patient("course", age=54)))
    return p.medication("bevacizumab", 21, status="active", route="intravenous", every=(3, "wk"))


# rule -> (patient on whom it fires at a first dose, the draft, indicator, earlier doses of a
# course)
FIRST_DOSE_RULES: dict[str, Case] = {
    CHEMO: (
        lambda: _premenopausal_on_chemotherapy().t_score(100, -1.0),
        _za_6_monthly,
        "warning",
        (540, 360, 180),
    ),
    NO_BENEFIT: (
        lambda: (
            prepared(early(new_patient("course", age=46)))
            .condition("premenopausal")
            .t_score(100, -1.0)
        ),
        _za_6_monthly,
        "info",
        (540, 360, 180),
    ),
    UNKNOWN: (
        lambda: prepared(early(new_patient("course", age=52))).t_score(100, -1.0),
        _za_6_monthly,
        "info",
        (540, 360, 180),
    ),
    DENOSUMAB: (
        lambda: _denosumab_early().t_score(100, -1.0),
        lambda p: denosumab_order(p, 120),
        "warning",
        (84, 56, 28),
    ),
    DXA: (_anastrozole_old_dxa, _za_6_monthly, "info", (540, 360, 180)),
    ANTIANGIOGENIC: (_bevacizumab, lambda p: order(p, every=(4, "wk")), "warning", (84, 56, 28)),
}


def _give(p: PatientBuilder, draft: dict, days_ago: int) -> None:
    """An earlier dose of the draft's drug, recorded as an administration."""
    key = "denosumab-120mg" if "denosumab" in draft["medicationCodeableConcept"]["text"] else None
    p.administration(key or "zoledronic-acid-4mg", days_ago, dose_mg=120 if key else 4)


@pytest.mark.parametrize("rule", list(FIRST_DOSE_RULES))
@pytest.mark.parametrize(
    "earlier, fires",
    [
        ("none", True),
        ("course", False),  # the fourth dose of a course
        ("400-days", False),  # a gap of exactly the course gap: the same course
        ("401-days", True),  # a longer gap: a new course starts
    ],
)
def test_first_dose_rules_speak_on_the_first_dose_of_a_course_only(post, rule, earlier, fires):
    build, draft_for, indicator, course = FIRST_DOSE_RULES[rule]
    p = build()
    draft = draft_for(p)
    doses = {"none": (), "course": course, "400-days": (400,), "401-days": (401,)}[earlier]
    for days_ago in doses:
        _give(p, draft, days_ago)
    found = rules(post(p, draft))
    assert sorted(found) == ([rule] if fires else []), sorted(found)
    if fires:
        assert found[rule]["indicator"] == indicator


@pytest.mark.parametrize(
    "record, rule",
    [
        (lambda p: p.condition("onj", status="resolved", onset_days_ago=500), "onj-history"),
        (lambda p: p.pregnancy_status(5, "pregnant"), "pregnancy-or-lactation"),
        (lambda p: p.allergy(text="Bisphosphonates"), "hypersensitivity"),
    ],
    ids=["onj-history", "pregnancy", "allergy"],
)
def test_critical_safety_rules_fire_at_every_dose_of_a_course(post, record, rule):
    p = prepared(metastatic(new_patient("course", age=38)))
    for days_ago in (84, 56, 28):
        p.administration("zoledronic-acid-4mg", days_ago, dose_mg=4)
    record(p)
    found = rules(post(p, order(p, every=(4, "wk"))))
    assert sorted(found) == [rule] and found[rule]["indicator"] == "critical"
    assert [a["type"] for a in actions(found[rule])] == ["delete"]


def test_the_premenopausal_chemotherapy_card_cites_gnant_2011(post):
    p = _premenopausal_on_chemotherapy().t_score(100, -1.0)
    card = rules(post(p, _za_6_monthly(p)))[CHEMO]
    assert "Gnant's 2011 commentary on AZURE and ABCSG-12" in card["detail"]
    meta = KNOWLEDGE.rule_meta(CHEMO)
    assert meta["sources"][0] == "gnant-2011"
    assert meta["evidence"][0].startswith("Gnant M, Nat Rev Clin Oncol 2011")


# --- patient-view windows -------------------------------------------------------------------------


@pytest.fixture()
def view(frozen_order_sign_app):
    return hook_poster(frozen_order_sign_app, PATIENT_VIEW)


def only(cards: list[dict], *expected: str) -> dict[str, dict]:
    found = rules(cards)
    assert sorted(found) == sorted(expected), sorted(found)
    return found


def _premenopausal_no_indication() -> PatientBuilder:
    return early(new_patient("pv2", age=50)).condition("premenopausal").t_score(100, -1.0)


TWENTY_FOUR = days_to_months_ago(24)


@pytest.mark.parametrize(
    "days_ago, stopped",
    [
        (days_to_months_ago(7), False),  # exactly 7 months: not yet "more than 7"
        (days_to_months_ago(7) + 1, True),
        (700, True),  # 23 months
        (TWENTY_FOUR, True),  # exactly 24 months: "at most 24" still counts
        (TWENTY_FOUR + 1, False),
        (1826, False),  # 5 years
    ],
    ids=["7-months", "7-months-and-a-day", "23-months", "24-months", "24-months-and-a-day", "5y"],
)
def test_denosumab_stopped_window_is_7_to_24_months(view, days_ago, stopped):
    p = _premenopausal_no_indication().administration("denosumab-60mg", days_ago, dose_mg=60)
    found = only(view(p), *([STOPPED] if stopped else []))
    if stopped:
        card = found[STOPPED]
        when = (ANCHOR_INSTANT - timedelta(days=days_ago)).date().isoformat()
        assert f"last dose on {when}" in card["detail"]
        assert days_ago != 700 or "23 months ago (more than 7)" in card["detail"]
        check_regimen_suggestions(card, p, ("alendronate-weekly", "za-6-monthly"))


def _postmenopausal(onset_days_ago: float) -> PatientBuilder:
    p = new_patient("pv2", age=64).condition("breast-cancer", onset_days_ago=onset_days_ago)
    return p.creatinine(30, 0.8).weight(30, 68).t_score(100, -1.0)


TWELVE = days_to_months_ago(12)


@pytest.mark.parametrize(
    "onset_days_ago, endocrine, candidate",
    [
        (TWELVE, None, True),  # diagnosed exactly 12 months ago: within
        (TWELVE + 1, None, False),
        (4383, None, False),  # 12 years ago, no endocrine therapy
        (4383, "letrozole", True),  # aromatase inhibitor
        (4383, "tamoxifen", True),  # SERM
        (4383, "goserelin", True),  # GnRH agonist
    ],
    ids=["12-months", "12-months-and-a-day", "12-years", "letrozole", "tamoxifen", "goserelin"],
)
def test_adjuvant_candidate_needs_a_recent_diagnosis_or_endocrine_therapy(
    view, onset_days_ago, endocrine, candidate
):
    p = _postmenopausal(onset_days_ago)
    if endocrine:
        p.medication(endocrine, 60, status="active", route="oral", every=(1, "d"))
    found = only(view(p), *([ADJUVANT] if candidate else []))
    if candidate:
        card = found[ADJUVANT]
        check_regimen_suggestions(card, p, ("za-6-monthly",))
        reason = "Adjuvant endocrine therapy" if endocrine else "Breast cancer diagnosed on"
        assert reason in card["detail"]


def test_the_latest_breast_cancer_entry_dates_the_diagnosis_and_recorded_date_stands_in(view):
    p = _postmenopausal(4383)
    p.condition("breast-cancer-icd", onset_days_ago=0)
    latest = p.resources[-1]
    del latest["onsetDateTime"]
    latest["recordedDate"] = day(100)
    card = only(view(p), ADJUVANT)[ADJUVANT]
    assert f"diagnosed on {day(100)[:10]}" in card["detail"]


def test_bone_loss_card_speaks_when_the_adjuvant_window_has_passed(view):
    old = _postmenopausal(4383).t_score(10, -2.6)
    only(view(old), BONE_LOSS)
    recent = _postmenopausal(200).t_score(10, -2.6)
    card = only(view(recent), ADJUVANT)[ADJUVANT]
    assert "Bone-loss indication as well" in card["detail"]


def test_denosumab_stopped_replaces_the_adjuvant_card(view):
    p = _postmenopausal(200).administration("denosumab-60mg", 300, dose_mg=60)
    only(view(p), STOPPED)
    p = _postmenopausal(200).administration("denosumab-60mg", TWENTY_FOUR + 1, dose_mg=60)
    only(view(p), ADJUVANT)


def test_clodronate_is_never_drafted_from_its_atc_code_alone(view):
    card = only(view(_postmenopausal(200)), ADJUVANT)[ADJUVANT]
    codes = [a["resource"]["medicationCodeableConcept"]["coding"][0] for a in actions(card)]
    assert [c["code"] for c in codes] == ["1865665"]
    assert "clodronate 1600 mg daily" in card["detail"]
    assert "no orderable clodronate product is configured" in card["detail"]


def _review_context(knowledge) -> ReviewContext:
    facts = build_facts(None, [], {}, knowledge, ANCHOR_INSTANT)
    return ReviewContext(facts, knowledge, "Patient/x", None, ANCHOR_INSTANT)


def test_a_regimen_is_orderable_only_with_an_rxnorm_product():
    assert not _review_context(KNOWLEDGE).orderable("clodronate-1600mg-daily")
    assert _review_context(KNOWLEDGE).orderable("za-4mg-6-monthly")
    raw = KNOWLEDGE.raw
    entries = dict(raw["regimens"]["entries"])
    entries["clodronate-1600mg-daily"] = {
        **entries["clodronate-1600mg-daily"],
        "product": next(iter(KNOWLEDGE.product_by_rxnorm)),
    }
    changed = replace(KNOWLEDGE, raw={**raw, "regimens": {**raw["regimens"], "entries": entries}})
    assert _review_context(changed).orderable("clodronate-1600mg-daily")


def test_review_drafts_pass_the_suggestion_gate(view):
    """Principle 7: at CrCl 21 mL/min zoledronic acid would be stopped by renal-contraindicated, so
    the adjuvant card offers no zoledronic acid draft."""
    p = new_patient("pv2", age=75).condition("breast-cancer", onset_days_ago=200)
    p.creatinine(6, 2.0).weight(6, 55).t_score(100, -1.0)
    card = only(view(p), ADJUVANT)[ADJUVANT]
    assert not card.get("suggestions")


@pytest.mark.parametrize("days_ago, treated", [(days_to_months_ago(7), True), (240, False)])
def test_bone_metastases_untreated_counts_a_dose_within_7_months(view, days_ago, treated):
    p = metastatic(new_patient("pv2", age=60)).administration(
        "denosumab-120mg", days_ago, dose_mg=120
    )
    only(view(p), *([] if treated else [METASTASES]))


# --- stage Observations (setting metastatic-other) ------------------------------------------------


def _stage(p: PatientBuilder, loinc: str, value: dict[str, Any]) -> PatientBuilder:
    p.resources.append(
        {
            "resourceType": "Observation",
            "id": f"{p.patient_id}-stage-{len(p.resources)}",
            "status": "final",
            "code": {"coding": [{"system": LOINC, "code": loinc}]},
            "subject": {"reference": p.reference},
            "effectiveDateTime": day(100),
            "valueCodeableConcept": value,
        }
    )
    return p


M1 = {"coding": [{"system": SNOMED, "code": "1229916009", "display": "AJCC pM1"}]}
M0 = {"text": "cM0"}
STAGE_IV = {"text": "Stage IV"}
STAGE_II = {"text": "Stage IIA"}
NONE_SITE = {"coding": [{"system": SNOMED, "code": "260413007", "display": "None"}]}


@pytest.mark.parametrize(
    "loinc, value, metastatic_other",
    [
        ("21907-1", M1, True),
        ("21901-4", M1, True),
        ("21908-9", STAGE_IV, True),
        ("21902-2", STAGE_IV, True),
        ("21907-1", M0, False),
        ("21902-2", STAGE_II, False),
        ("44667-4", NONE_SITE, False),
    ],
    ids=["cM-M1", "pM-M1", "clinical-IV", "pathological-IV", "M0", "stage-II", "site-none"],
)
def test_stage_observations_make_the_setting_metastatic_other(view, loinc, value, metastatic_other):
    """Postmenopausal on letrozole with a T-score of -2.6: in early breast cancer the adjuvant card
    speaks; with distant metastasis on a stage Observation only the bone-loss card."""
    p = _postmenopausal(300).t_score(10, -2.6)
    p.medication("letrozole", 60, status="active", route="oral", every=(1, "d"))
    card = only(view(_stage(p, loinc, value)), BONE_LOSS if metastatic_other else ADJUVANT)
    if metastatic_other:
        assert "metastatic-other" in card[BONE_LOSS]["detail"]


# --- oral bisphosphonate and the esophagus --------------------------------------------------------


def _on_anastrozole(*conditions: tuple[str, dict]) -> PatientBuilder:
    p = prepared(early(new_patient("eso", age=69))).t_score(100, -1.0)
    p.medication("anastrozole", 300, status="active", route="oral", every=(1, "d"))
    for key, extra in conditions:
        p.condition(key, **extra)
    return p


@pytest.mark.parametrize(
    "conditions, indicator",
    [
        ([("esophageal-stricture", {})], "critical"),
        ([("esophageal-stricture-sct", {})], "critical"),
        ([("achalasia", {})], "critical"),
        ([("barretts-esophagus", {}), ("achalasia", {})], "critical"),
        ([("barretts-esophagus", {})], "warning"),
        ([("barretts-esophagus-sct", {})], "warning"),
        ([("barretts-esophagus", {"status": "resolved"})], None),
        ([("barretts-esophagus", {"verification": "refuted"})], None),
        ([("gerd", {})], None),
    ],
    ids=[
        "stricture-k22.2",
        "stricture-snomed",
        "achalasia-k22.0",
        "barretts-and-achalasia",
        "barretts-k22.70",
        "barretts-snomed",
        "barretts-resolved",
        "barretts-refuted",
        "reflux-only",
    ],
)
def test_oral_bp_esophageal(post, conditions, indicator):
    p = _on_anastrozole(*conditions)
    found = rules(post(p, oral_order(p)))
    assert sorted(found) == ([ESOPHAGEAL] if indicator else []), sorted(found)
    if indicator is None:
        return
    card = found[ESOPHAGEAL]
    assert card["indicator"] == indicator
    if indicator == "critical":
        assert [a["type"] for a in actions(card)] == ["delete"]
        assert "intravenous zoledronic acid" in card["detail"]
    else:
        assert not card.get("suggestions")
        assert "caution" in card["summary"] and "Barrett's" in card["detail"]


def test_oral_bp_esophageal_is_for_oral_bisphosphonates_only(post):
    p = _on_anastrozole(("achalasia", {}))
    assert ESOPHAGEAL not in rules(post(p, order(p, every=(6, "mo"))))
