"""Reading the record as EHRs send it (catalog revision 2): calcium and vitamin D codes, result
status and date, censored values, eGFR in mL/min, stage Observations, dialysis, the forearm T-score,
men and missing sex or birth date.

Every case goes through the HTTP endpoint, on both sides of its threshold.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from fixtures.builder import ANCHOR_INSTANT, ICD10CM, LOINC, SNOMED, UCUM, PatientBuilder, day
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

CALCIUM_BLOOD = ("49765-1", "Calcium [Mass/volume] in Blood")
CALCIUM_MOLAR = ("2000-8", "Calcium [Moles/volume] in Serum or Plasma")
VITAMIN_D_TOTAL = (
    "62292-8",
    "25-Hydroxyvitamin D3+25-Hydroxyvitamin D2 [Mass/volume] in Serum or Plasma",
)
VITAMIN_D3_MASS = ("1989-3", "25-hydroxyvitamin D3 [Mass/volume] in Serum or Plasma")
CREATININE = ("2160-0", "Creatinine [Mass/volume] in Serum or Plasma")
CREATININE_BLOOD = ("38483-4", "Creatinine [Mass/volume] in Blood")
EGFR_MDRD = (
    "33914-3",
    (
        "Glomerular filtration rate/1.73 sq M.predicted [Volume Rate/Area] in Serum or Plasma by "
        "Creatinine-based formula (MDRD)"
    ),
)
EGFR_CKD_EPI = (
    "98979-8",
    (
        "Glomerular filtration rate/1.73 sq M.predicted [Volume Rate/Area] in Serum, Plasma or "
        "Blood by Creatinine-based formula (CKD-EPI 2021)"
    ),
)
M_CLINICAL = ("21907-1", "Distant metastases.clinical [Class] Cancer")
M_PATHOLOGICAL = ("21901-4", "Distant metastases.pathology [Class] Cancer")
STAGE_CLINICAL = ("21908-9", "Stage group.clinical Cancer")
SITE_OF_METASTASIS = ("44667-4", "Site of distant metastasis in Breast tumor")
FOREARM = ("38265-5", "DXA Radius and Ulna [T-score] Bone density")
BIRTH_SEX = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-birthsex"


def observation(
    p: PatientBuilder,
    code: tuple[str, str],
    days_ago: float | None,
    value: float | None = None,
    unit: str | None = None,
    *,
    comparator: str | None = None,
    string: str | None = None,
    coded: tuple[str, str, str] | None = None,
    text: str | None = None,
    status: str = "final",
    when: str = "effectiveDateTime",
    system: str = LOINC,
) -> PatientBuilder:
    """An Observation as an EHR sends it: a valueQuantity (with a comparator), a string value
    ('>60'), or a coded value; dated by effectiveDateTime, effectivePeriod.start, effectiveInstant
    or issued."""
    resource: dict[str, Any] = {
        "resourceType": "Observation",
        "id": f"{p.patient_id}-rr-{len(p.resources) + 1}",
        "status": status,
        "code": {
            "coding": [{"system": system, "code": code[0], "display": code[1]}],
            "text": code[1],
        },
        "subject": {"reference": p.reference},
    }
    if days_ago is not None:
        resource.update(
            {"effectivePeriod": {"start": day(days_ago)}}
            if when == "effectivePeriod"
            else {when: day(days_ago)}
        )
    if value is not None:
        quantity: dict[str, Any] = {"value": value}
        if unit is not None:
            quantity.update(unit=unit, system=UCUM, code=unit)
        if comparator:
            quantity["comparator"] = comparator
        resource["valueQuantity"] = quantity
    if string is not None:
        resource["valueString"] = string
    if coded or text:
        concept: dict[str, Any] = {}
        if coded:
            coding = {"system": coded[0], "code": coded[1]}
            if coded[2]:
                coding["display"] = coded[2]
            concept["coding"] = [coding]
        if text:
            concept["text"] = text
        resource["valueCodeableConcept"] = concept
    p.resources.append(resource)
    return p


def date_of(days_ago: float) -> str:
    return (ANCHOR_INSTANT - timedelta(days=days_ago)).date().isoformat()


def created(card: dict, resource_type: str) -> list[dict]:
    return [
        a["resource"]
        for a in actions(card, "create")
        if a["resource"]["resourceType"] == resource_type
    ]


def medication_texts(cards: list[dict]) -> list[str]:
    return [
        r["medicationCodeableConcept"]["text"]
        for card in cards
        for r in created(card, "MedicationRequest")
    ]


def offers_calcium(cards: list[dict]) -> bool:
    return any("calcium" in text.lower() for text in medication_texts(cards))


# Laboratory codes: calcium in blood, molar total calcium, total and D3-only 25-OH vitamin D


def test_calcium_in_blood_at_hypercalcemic_level_is_read(post):
    """Calcium 12.6 mg/dL yesterday as 49765-1 (Synthea's code): no calcium is offered, and with
    cancer it is current hypercalcemia of malignancy (a repeating zoledronic acid order is one dose
    there)."""
    p = prepared(new_patient("ca-blood", sex="male", age=68), calcium=False, supplements=False)
    observation(p, CALCIUM_BLOOD, 1, 12.6, "mg/dL")
    cards = post(p, order(p))
    assert not offers_calcium(cards)
    supplements = rules(cards)["supplements-missing"]
    assert "at or above the upper limit of 10.5 mg/dL" in supplements["detail"]
    assert "12.6 mg/dL" in supplements["detail"]

    p = metastatic(
        prepared(new_patient("ca-blood-hcm", sex="male", age=68), calcium=False, supplements=False)
    )
    observation(p, CALCIUM_BLOOD, 1, 12.6, "mg/dL")
    cards = post(p, order(p))
    found = rules(cards)
    # no supplements in this setting
    assert not offers_calcium(cards) and "supplements-missing" not in found
    assert "hypercalcemia-of-malignancy" in found["interval-too-short"]["detail"]


def test_calcium_in_blood_below_the_upper_limit_allows_calcium(post):
    p = metastatic(
        prepared(new_patient("ca-blood-ok", sex="male", age=68), calcium=False, supplements=False)
    )
    observation(p, CALCIUM_BLOOD, 1, 10.4, "mg/dL")
    cards = post(p, order(p))
    found = rules(cards)
    assert offers_calcium(cards) and "calcium-data-missing" not in found
    assert "interval-too-short" not in found  # bone-metastatic, not hypercalcemia of malignancy


@pytest.mark.parametrize(
    "value, low", [(2.05, True), (2.12, False)], ids=["2.05-low", "2.12-at-limit"]
)
def test_molar_total_calcium(post, value, low):
    """2000-8 in mmol/L is total calcium, compared with 2.12 mmol/L in its own unit; without albumin
    a low value is a warning (it reads low when albumin is low)."""
    p = metastatic(prepared(new_patient("ca-molar"), calcium=False))
    observation(p, CALCIUM_MOLAR, 2, value, "mmol/L")
    found = rules(post(p, order(p)))
    assert "calcium-data-missing" not in found
    assert ("calcium-low" in found) is low
    if low:
        card = found["calcium-low"]
        assert card["indicator"] == "warning" and "2.05 mmol/L" in card["summary"]


@pytest.mark.parametrize(
    "records, low",
    [
        pytest.param([(VITAMIN_D_TOTAL, 15)], True, id="total-15-low"),
        pytest.param([(VITAMIN_D_TOTAL, 25)], False, id="total-25"),
        pytest.param([(VITAMIN_D3_MASS, 15)], True, id="d3-only-15-low"),
        pytest.param(
            [(VITAMIN_D_TOTAL, 25), (VITAMIN_D3_MASS, 15)], False, id="total-25-wins-over-d3-15"
        ),
    ],
)
def test_vitamin_d_codes(post, records, low):
    p = metastatic(prepared(new_patient("vitd")))
    for code, value in records:
        observation(p, code, 10, value, "ng/mL")
    found = rules(post(p, order(p)))
    assert ("vitamin-d-low" in found) is low


# Result status and date


@pytest.mark.parametrize(
    "status, counts",
    [
        ("final", True),
        ("preliminary", True),
        ("amended", True),
        ("unknown", True),
        ("registered", False),
        ("cancelled", False),
        ("entered-in-error", False),
    ],
)
def test_result_status(post, status, counts):
    p = metastatic(prepared(new_patient("status"), renal=False)).weight(5, 70)
    observation(p, CREATININE, 3, 0.8, "mg/dL", status=status)
    found = rules(post(p, order(p)))
    assert ("renal-data-missing" not in found) is counts


@pytest.mark.parametrize("when", ["effectivePeriod", "effectiveInstant", "issued"])
def test_result_date_from_period_instant_or_issued(post, when):
    p = metastatic(prepared(new_patient("date"), renal=False)).weight(5, 70)
    observation(p, CREATININE, 3, 0.8, "mg/dL", when=when)
    assert "renal-data-missing" not in rules(post(p, order(p)))
    p = metastatic(prepared(new_patient("date-old"), renal=False)).weight(5, 70)
    observation(p, CREATININE, 31, 0.8, "mg/dL", when=when)
    assert "renal-data-missing" in rules(post(p, order(p)))


# eGFR: censored values, values reported in mL/min


def egfr_patient(prefix: str, **extra: Any) -> PatientBuilder:
    """A prepared metastatic patient with a fresh creatinine but no weight: clearance cannot be
    calculated, eGFR is used."""
    return metastatic(prepared(new_patient(prefix, **extra), renal=False)).creatinine(3, 0.9)


@pytest.mark.parametrize(
    "value",
    [dict(string=">60"), dict(value=60, unit="mL/min/{1.73_m2}", comparator=">")],
    ids=["string", "comparator"],
)
def test_egfr_above_60_keeps_the_full_dose(post, value):
    """EGFR '>60' means above 60: no zoledronic acid dose reduction (it was read as 60 and cut to
    3.5 mg), no floor."""
    p = egfr_patient("egfr-gt60")
    observation(p, EGFR_CKD_EPI, 3, **value)
    assert post(p, order(p)) == []


def test_egfr_exactly_60_reduces_the_dose(post):
    p = egfr_patient("egfr-60")
    observation(p, EGFR_CKD_EPI, 3, 60, "mL/min/{1.73_m2}")
    card = rules(post(p, order(p)))["renal-dose-adjust"]
    assert "**3.5 mg**" in card["detail"] and "eGFR 60 mL/min/1.73 m² (not CrCl)" in card["summary"]


def test_egfr_censored_across_a_band_edge_decides_no_band(post):
    """EGFR '>=60' allows 60 (3.5 mg) and above (4 mg): no dose band fires, and renal-data-missing
    says why."""
    p = egfr_patient("egfr-ge60")
    observation(p, EGFR_CKD_EPI, 3, 60, "mL/min/{1.73_m2}", comparator=">=")
    found = rules(post(p, order(p)))
    assert "renal-dose-adjust" not in found and "renal-contraindicated" not in found
    card = found["renal-data-missing"]
    assert (
        "censored" in card["detail"]
        and "dose band" in card["detail"]
        and "3.5 mg or 4 mg" in card["detail"]
    )
    assert "eGFR >=60 mL/min/1.73 m² (not CrCl)" in card["detail"]


@pytest.mark.parametrize(
    "value, fires",
    [
        (dict(string="<30"), True),
        (dict(string="22"), True),
        (dict(string="35"), False),
        (dict(string=">35"), False),
    ],
    ids=["lt30", "22", "35", "gt35"],
)
def test_egfr_against_the_alendronate_floor_of_35(post, value, fires):
    p = egfr_patient("egfr-aln")
    observation(p, EGFR_CKD_EPI, 3, **value)
    found = rules(post(p, oral_order(p)))
    assert ("renal-contraindicated" in found) is fires
    assert "renal-data-missing" not in found
    if fires:
        card = found["renal-contraindicated"]
        assert card["indicator"] == "critical" and "(not CrCl)" in card["summary"]
        assert f"eGFR {value['string']} mL/min/1.73 m² (not CrCl)" in card["detail"]


def test_egfr_censored_across_the_floor_fires_no_floor(post):
    """EGFR '<35' could be above or below zoledronic acid's floor of 30: no contraindication, renal-
    data-missing says the value is censored and which limit it cannot decide."""
    p = egfr_patient("egfr-lt35")
    observation(p, EGFR_CKD_EPI, 3, string="<35")
    found = rules(post(p, order(p)))
    assert "renal-contraindicated" not in found and "renal-dose-adjust" not in found
    detail = found["renal-data-missing"]["detail"]
    assert "censored" in detail and "limit of 30 mL/min" in detail


@pytest.mark.parametrize("value, rule", [(22, "renal-contraindicated"), (45, "renal-dose-adjust")])
def test_egfr_reported_in_ml_min_is_read_as_egfr(post, value, rule):
    """Synthea writes eGFR (33914-3) with the unit mL/min: it is read as eGFR in mL/min/1.73 m²,
    never as a CrCl, and never dropped."""
    p = egfr_patient("egfr-mlmin")
    observation(p, EGFR_MDRD, 3, value, "mL/min")
    found = rules(post(p, order(p)))
    assert set(found) == {rule}, sorted(found)
    card = found[rule]
    assert f"eGFR {value} mL/min/1.73 m² (not CrCl)" in card["summary"] + card["detail"]
    assert (
        f"eGFR {value} mL/min/1.73 m² on {date_of(3)} (recorded with the unit 'mL/min', read as"
        " mL/min/1.73 m²)"
    ) in card["detail"]
    assert f"eGFR {value} mL/min " not in card["summary"] + card["detail"]
    if rule == "renal-dose-adjust":
        assert "**3.3 mg**" in card["detail"]


# Censored creatinine: a bound on the clearance


def test_creatinine_below_detection_decides_the_floor(post):
    """Creatinine '<0.5' means at most 0.5: the clearance is at least the value computed from 0.5,
    far above every floor and band, so the order is quiet."""
    p = metastatic(prepared(new_patient("creat-lt"), renal=False)).weight(5, 70)
    observation(p, CREATININE, 3, 0.5, "mg/dL", comparator="<")
    assert post(p, order(p)) == []


def test_censored_creatinine_that_cannot_decide_the_floor(post):
    """Creatinine '<2.0' in an 85-year-old of 45 kg: the clearance is above 14.6 mL/min, which may
    or may not be below 30."""
    p = metastatic(prepared(new_patient("creat-lt2", age=85), renal=False)).weight(5, 45)
    observation(p, CREATININE, 3, string="<2.0 mg/dL")
    found = rules(post(p, order(p)))
    assert "renal-contraindicated" not in found and "renal-dose-adjust" not in found
    detail = found["renal-data-missing"]["detail"]
    assert "CrCl >14.6 mL/min" in detail and "limit of 30 mL/min" in detail


def test_creatinine_with_an_unreadable_comparator_is_not_read_as_exact(post):
    """A comparator that is not a code (a list, an object) may hide a bound: the result is named as
    unusable, never read as the exact value (which here would be quiet) and never a 500."""
    for junk in (["<"], {"code": "<"}, 1):
        p = metastatic(prepared(new_patient("creat-junk"), renal=False)).weight(5, 70)
        observation(p, CREATININE, 3, 0.8, "mg/dL")
        p.resources[-1]["valueQuantity"]["comparator"] = junk
        found = rules(post(p, order(p)))
        assert "a comparator that cannot be read" in found["renal-data-missing"]["detail"]
    p = metastatic(prepared(new_patient("creat-ad"), renal=False)).weight(5, 70)
    observation(p, CREATININE, 3, 0.8, "mg/dL", comparator="ad")
    assert post(p, order(p)) == []


def test_creatinine_above_a_bound_decides_the_floor(post):
    """Creatinine '>3.0' gives a clearance of at most 11.8 mL/min: below zoledronic acid's floor
    whatever the value."""
    p = metastatic(prepared(new_patient("creat-gt", age=80), renal=False)).weight(5, 50)
    observation(p, CREATININE, 3, 3.0, "mg/dL", comparator=">")
    card = rules(post(p, order(p)))["renal-contraindicated"]
    assert card["indicator"] == "critical" and card["summary"].startswith(
        "CrCl <11.8 mL/min is below the limit of 30"
    )
    assert "**CrCl <11.8 mL/min**" in card["detail"] and "at most this" in card["detail"]


# Censored calcium


@pytest.mark.parametrize(
    "comparator, value, rule",
    [("<", 9.0, "calcium-data-missing"), ("<", 8.0, "calcium-low"), (">", 9.0, None)],
    ids=["lt9-undecided", "lt8-low", "gt9-normal"],
)
def test_censored_calcium(post, comparator, value, rule):
    p = metastatic(prepared(new_patient("ca-censored"), calcium=False))
    observation(
        p,
        ("17861-6", "Calcium [Mass/volume] in Serum or Plasma"),
        2,
        value,
        "mg/dL",
        comparator=comparator,
    )
    found = rules(post(p, order(p)))
    assert set(found) == ({rule} if rule else set()), sorted(found)
    if rule == "calcium-data-missing":
        assert (
            "censored" in found[rule]["detail"]
            and "lower limit of 8.5 mg/dL" in found[rule]["detail"]
        )


# Setting from stage Observations

STAGE_CASES = [
    pytest.param(
        STAGE_CLINICAL,
        dict(coded=(SNOMED, "258228008", "Stage 4 (qualifier value)")),
        "metastatic-other",
        id="stage-4-snomed-text",
    ),
    pytest.param(STAGE_CLINICAL, dict(text="Stage IV"), "metastatic-other", id="stage-IV-text"),
    pytest.param(
        STAGE_CLINICAL,
        dict(coded=(SNOMED, "258224005", "Stage 3 (qualifier value)")),
        "early",
        id="stage-3",
    ),
    pytest.param(
        M_CLINICAL,
        dict(coded=(SNOMED, "55440008", "M1 category (finding)")),
        "metastatic-other",
        id="synthea-M1",
    ),
    pytest.param(
        M_CLINICAL,
        dict(coded=(SNOMED, "30893008", "M0 category (finding)")),
        "early",
        id="synthea-M0",
    ),
    pytest.param(
        M_PATHOLOGICAL,
        dict(coded=(SNOMED, "1229916009", "")),
        "metastatic-other",
        id="pM1-code-only",
    ),
    pytest.param(M_CLINICAL, dict(text="cM1b"), "metastatic-other", id="cM1b-text"),
    pytest.param(SITE_OF_METASTASIS, dict(text="None"), "early", id="site-of-metastasis-none"),
]


@pytest.mark.parametrize("code, value, setting", STAGE_CASES)
def test_stage_observations_set_the_setting(post, code, value, setting):
    """A premenopausal woman with breast cancer, zoledronic acid every 4 weeks: in early disease the
    interval is too short and the adjuvant premenopausal card speaks; with distant metastasis on a
    stage Observation neither does."""
    p = early(prepared(new_patient("stage", age=45))).condition("premenopausal").t_score(100, -1.0)
    observation(p, code, 200, **value)
    found = rules(post(p, order(p, every=(4, "wk"))))
    if setting == "early":
        assert {"interval-too-short", "adjuvant-no-benefit-premenopausal"} <= set(found)
        assert "early" in found["interval-too-short"]["detail"]
    else:
        assert found == {}, sorted(found)


def test_stage_observation_by_its_snomed_observable(post):
    """MCODE codes stage Observations with SNOMED observables (399387003 cM category)."""
    p = (
        early(prepared(new_patient("stage-sct", age=45)))
        .condition("premenopausal")
        .t_score(100, -1.0)
    )
    observation(
        p,
        ("399387003", "cM category (observable entity)"),
        200,
        system=SNOMED,
        text="American Joint Committee on Cancer cM1",
    )
    assert post(p, order(p, every=(4, "wk"))) == []


def test_metastasis_condition_without_bone_site_is_metastatic_other(post):
    p = (
        early(prepared(new_patient("liver", age=45)))
        .condition("liver-metastasis-icd")
        .condition("premenopausal")
    )
    assert post(p, order(p, every=(4, "wk"))) == []


# Dialysis and end-stage renal disease


def dialysis_condition(p: PatientBuilder, system: str, code: str, display: str) -> PatientBuilder:
    p.condition("dialysis")
    p.resources[-1]["code"] = {
        "coding": [{"system": system, "code": code, "display": display}],
        "text": display,
    }
    return p


def dialysis_procedure(
    p: PatientBuilder,
    days_ago: float,
    code: str = "265764009",
    display: str = "Renal dialysis (procedure)",
) -> PatientBuilder:
    p.resources.append(
        {
            "resourceType": "Procedure",
            "id": f"{p.patient_id}-dialysis-{len(p.resources)}",
            "status": "completed",
            "subject": {"reference": p.reference},
            "code": {
                "coding": [{"system": SNOMED, "code": code, "display": display}],
                "text": display,
            },
            "performedPeriod": {"start": day(days_ago), "end": day(days_ago - 0.1)},
        }
    )
    return p


@pytest.mark.parametrize(
    "system, code, display",
    [
        (ICD10CM, "N18.6", "End stage renal disease"),
        (SNOMED, "236435004", "End stage renal disease on dialysis"),
        (SNOMED, "46177005", "End-stage renal disease"),
        (ICD10CM, "Z99.2", "Dependence on renal dialysis"),
    ],
)
def test_dialysis_conditions(post, system, code, display):
    """On dialysis: every clearance floor, no renal-data-missing for a bisphosphonate (even without
    a creatinine), no Cockcroft-Gault value as the basis."""
    p = dialysis_condition(
        metastatic(prepared(new_patient("esrd"), renal=False)), system, code, display
    )
    found = rules(post(p, order(p)))
    assert set(found) == {"renal-contraindicated"}, sorted(found)
    card = found["renal-contraindicated"]
    assert card["summary"].startswith("On dialysis") and f"On dialysis: {display}" in card["detail"]
    assert "CrCl" not in card["detail"]


@pytest.mark.parametrize("days_ago, dialysis", [(60, True), (90, True), (91, False)])
def test_dialysis_procedure_within_90_days(post, days_ago, dialysis):
    p = dialysis_procedure(metastatic(prepared(new_patient("hd"), renal=False)), days_ago)
    found = rules(post(p, order(p)))
    if dialysis:
        assert set(found) == {"renal-contraindicated"}, sorted(found)
        assert (
            f"Renal dialysis (procedure) performed {date_of(days_ago)}"
            in found["renal-contraindicated"]["detail"]
        )
    else:
        assert set(found) == {"renal-data-missing"}, sorted(found)


def test_hemodialysis_procedure_for_denosumab(post):
    p = dialysis_procedure(
        metastatic(prepared(new_patient("hd-dmab"))), 10, "302497006", "Hemodialysis (procedure)"
    )
    card = rules(post(p, denosumab_order(p)))["denosumab-renal-hypocalcemia"]
    assert (
        "on dialysis" in card["summary"] and "Hemodialysis (procedure) performed" in card["detail"]
    )
    assert "CrCl" not in card["detail"]


def test_dialysis_procedures_not_retrieved_are_reported(post, frozen_order_sign_app):
    keys = [k.key for k in frozen_order_sign_app.extensions["bonecds"].prefetch_keys]
    p = metastatic(prepared(new_patient("hd-unknown")))
    card = rules(post(p, order(p), prefetch_keys=[k for k in keys if k != "dialysisProcedures"]))[
        "record-incomplete"
    ]
    assert "Dialysis procedures could not be retrieved" in card["detail"]


# Bone density: the forearm T-score is seen, not used


def test_forearm_only_t_score_is_named_as_seen_not_used(post):
    p = (
        early(prepared(new_patient("forearm", age=64)))
        .condition("postmenopausal")
        .medication("letrozole", 60, status="active")
    )
    observation(p, FOREARM, 30, -3.3, "{T-score}")
    card = rules(post(p, order(p, every=(6, "mo"))))["dxa-missing"]
    assert (
        f"forearm T-score -3.3 on {date_of(30)} seen, not used: the indication reads spine or hip"
        in card["detail"]
    )


def test_forearm_t_score_in_the_eligibility_status_line(post):
    p = early(prepared(new_patient("forearm-pre", age=45))).condition("premenopausal")
    observation(p, FOREARM, 30, -3.3, "{T-score}")
    card = rules(post(p, order(p, every=(6, "mo"))))["adjuvant-no-benefit-premenopausal"]
    assert f"forearm T-score -3.3 on {date_of(30)} seen, not used" in card["detail"]


def test_forearm_t_score_not_named_beside_a_hip_t_score(post):
    p = (
        early(prepared(new_patient("forearm-hip", age=45)))
        .condition("premenopausal")
        .t_score(30, -1.0, "total-hip")
    )
    observation(p, FOREARM, 30, -3.3, "{T-score}")
    card = rules(post(p, order(p, every=(6, "mo"))))["adjuvant-no-benefit-premenopausal"]
    assert "forearm" not in card["detail"]


# Men, and records without sex or birth date


@pytest.mark.parametrize("sex, card", [("male", False), ("female", True)])
def test_a_man_has_no_menopausal_status(post, sex, card):
    p = early(prepared(new_patient("man", sex=sex, age=50))).t_score(100, -1.0)
    found = rules(post(p, order(p, every=(6, "mo"))))
    assert ("menopausal-status-unknown" in found) is card
    assert not {"adjuvant-no-benefit-premenopausal", "adjuvant-premenopausal-chemotherapy"} & set(
        found
    )


def test_a_man_with_a_premenopausal_code_gets_no_premenopausal_card(post):
    p = (
        early(prepared(new_patient("man-pre", sex="male", age=50)))
        .condition("premenopausal")
        .t_score(100, -1.0)
    )
    assert post(p, order(p, every=(6, "mo"))) == []


class BirthSexPatient(PatientBuilder):
    """A Patient whose gender is `unknown` or `other`, with the US Core birth-sex extension."""

    birth_sex: str | None = None

    def patient(self) -> dict[str, Any]:
        resource = super().patient()
        if self.birth_sex:
            resource["extension"] = [{"url": BIRTH_SEX, "valueCode": self.birth_sex}]
        return resource


def birth_sex_patient(
    prefix: str, gender: str, birth_sex: str | None, age: int = 64
) -> BirthSexPatient:
    p = BirthSexPatient(new_patient(prefix).patient_id, sex=gender, age=age)
    p.birth_sex = birth_sex
    return p


@pytest.mark.parametrize("gender", ["unknown", "other"])
def test_birth_sex_gives_the_sex_when_gender_is_unknown(post, gender):
    """Birth sex F: a woman for Cockcroft-Gault (x 0.85) and for menopause (age 64: postmenopausal,
    no status card)."""
    p = early(prepared(birth_sex_patient("birthsex", gender, "F"), renal=False)).t_score(100, -1.0)
    p.creatinine(3, 1.0).weight(5, 48)  # (140 - 64) x 48 / 72 x 0.85 = 43.1 (a man: 50.7)
    found = rules(post(p, order(p, every=(6, "mo"))))
    assert set(found) == {"renal-dose-adjust"}, sorted(found)
    assert "female → **CrCl 43.1 mL/min**" in found["renal-dose-adjust"]["detail"]


def test_no_recorded_sex_gives_no_clearance_and_no_menopausal_status_from_age(post):
    p = early(prepared(birth_sex_patient("nosex", "unknown", None), renal=False)).t_score(100, -1.0)
    p.creatinine(3, 1.0).weight(5, 48)
    found = rules(post(p, order(p, every=(6, "mo"))))
    assert {"renal-data-missing", "menopausal-status-unknown"} <= set(found)
    assert "renal-dose-adjust" not in found and "CrCl" not in found["renal-data-missing"]["summary"]
    assert "recorded sex" in found["renal-data-missing"]["detail"]
    assert "no recorded sex" in found["menopausal-status-unknown"]["detail"]


def test_no_recorded_sex_with_a_menopause_code(post):
    p = early(prepared(birth_sex_patient("nosex-post", "unknown", None), renal=False))
    p.condition("postmenopausal").t_score(100, -1.0)
    # eGFR stands in for the clearance (no recorded sex), said so
    p.creatinine(3, 0.8).weight(5, 70).egfr(3, 80)
    found = rules(post(p, order(p, every=(6, "mo"))))
    assert "menopausal-status-unknown" not in found and "renal-data-missing" not in found


@pytest.mark.parametrize("birth_date", [True, False])
def test_no_birth_date_gives_no_clearance(post, birth_date):
    p = metastatic(prepared(new_patient("nodob", age=64 if birth_date else None)))
    found = rules(post(p, order(p)))
    if birth_date:
        assert found == {}
    else:
        card = found["renal-data-missing"]
        assert "date of birth" in card["detail"] and "CrCl" not in card["summary"]


def test_stage_observations_not_retrieved_are_reported(post, frozen_order_sign_app):
    """Unknown is not 'no metastasis': when the stage search cannot be had, the checks that rest on
    the setting say so."""
    keys = [k.key for k in frozen_order_sign_app.extensions["bonecds"].prefetch_keys]
    p = (
        early(prepared(new_patient("stage-unknown", age=45)))
        .condition("premenopausal")
        .t_score(100, -1.0)
    )
    found = rules(
        post(p, order(p, every=(6, "mo")), prefetch_keys=[k for k in keys if k != "cancerStage"])
    )
    assert (
        "Cancer stage observations (TNM, stage group) could not be retrieved"
        in found["record-incomplete"]["detail"]
    )


@pytest.mark.parametrize(
    ("text", "read"),
    [
        ("2026", "2026-01-01T00:00:00+00:00"),
        ("2026-10", "2026-10-01T00:00:00+00:00"),
        ("2026-10-12", "2026-10-12T00:00:00+00:00"),
        (" 2026-10-12 ", "2026-10-12T00:00:00+00:00"),
        ("2026-10-12T10:00:00Z", "2026-10-12T10:00:00+00:00"),
        ("2026-10-12T10:00:00.250Z", "2026-10-12T10:00:00.250000+00:00"),
        ("2026-10-12T10:00:00+02:00", "2026-10-12T08:00:00+00:00"),
        ("2026-10-12T10:00:00", "2026-10-12T10:00:00+00:00"),  # no zone: read as UTC
        ("2026-13", None),
        ("2026-02-30", None),
        ("12", None),
        ("", None),
        ("yesterday", None),
        ("0001-01-01T00:00:00+14:00", None),  # before year 1 in UTC
        (20261012, None),
    ],
)
def test_fhir_dates_and_instants_are_read_as_utc(text, read):
    """Every length a FHIR date, dateTime or instant takes (and what is none), read as UTC."""
    from hooks.fhir_read import parse_datetime

    parsed = parse_datetime(text)
    assert (parsed.isoformat() if parsed else None) == read
