"""Renal rules at their thresholds: each cut-off checked on both sides, with creatinine in mg/dL and
in umol/L."""

from __future__ import annotations

import itertools

import pytest

from fixtures.builder import PatientBuilder, medication_request
from tests.support.order_sign_http import rules

UMOL_PER_MG_DL = 88.4
UNITS = ["mg/dL", "umol/L"]
_ids = itertools.count(1)


@pytest.fixture(params=UNITS, ids=["mgdl", "umol"])
def unit(request):
    return request.param


def weight_for(crcl: float, *, age: int, creatinine_mg_dl: float, sex: str) -> float:
    """The body weight (kg) that makes Cockcroft-Gault give exactly `crcl`."""
    factor = 0.85 if sex == "female" else 1.0
    return crcl * 72 * creatinine_mg_dl / ((140 - age) * factor)


def patient(sex: str = "female", age: int = 70) -> PatientBuilder:
    """A patient prepared in every other respect (supplements, calcium, dental check), so only renal
    cards can appear."""
    p = PatientBuilder(f"renal-t{next(_ids)}-pt", sex=sex, age=age)
    p.medication("calcium-vitamin-d", 30, status="active").calcium(5, 9.4, albumin=4.1).dental_exam(
        60
    )
    return p


def add_creatinine(p: PatientBuilder, days_ago: float, mg_dl: float, unit: str) -> PatientBuilder:
    value = mg_dl if unit == "mg/dL" else round(mg_dl * UMOL_PER_MG_DL, 6)
    return p.creatinine(days_ago, value, unit=unit)


def order_for(
    p: PatientBuilder,
    key: str = "zoledronic-acid-4mg",
    dose_mg: float = 4,
    route: str = "intravenous",
    every: tuple[float, str] = (12, "wk"),
) -> dict:
    return medication_request(
        f"{p.patient_id}-draft", p.patient_id, key, dose_mg=dose_mg, route=route, every=every
    )


def za_course(p: PatientBuilder, *days_ago: float) -> PatientBuilder:
    for d in days_ago:
        p.medication("zoledronic-acid-4mg", d, dose_mg=4, route="intravenous", every=(12, "wk"))
    return p


def dose_of(resource: dict) -> float:
    return resource["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["value"]


# 1. renal-data-missing: age of the creatinine and of the weight


@pytest.mark.parametrize(
    "days_old, fires", [(30, False), (31, True)], ids=["30d-ok", "31d-missing"]
)
def test_iv_creatinine_age(post, unit, days_old, fires):
    p = patient()
    add_creatinine(p, days_old, 1.0, unit).weight(
        5, weight_for(80, age=70, creatinine_mg_dl=1.0, sex="female")
    )
    found = rules(post(p, order_for(p)))
    assert ("renal-data-missing" in found) is fires
    if fires:
        card = found["renal-data-missing"]
        assert card["indicator"] == "warning"
        assert "30 days" in card["detail"]
        creates = [a for s in card["suggestions"] for a in s["actions"] if a["type"] == "create"]
        assert creates and creates[0]["resource"]["resourceType"] == "ServiceRequest"
        assert creates[0]["resource"]["code"]["coding"][0]["code"] == "2160-0"
    else:
        assert not found  # CrCl 80 computed from a 30-day-old creatinine: nothing to say


@pytest.mark.parametrize(
    "days_old, fires", [(365, False), (366, True)], ids=["365d-ok", "366d-missing"]
)
def test_oral_alendronate_creatinine_age(post, unit, days_old, fires):
    p = patient()
    add_creatinine(p, days_old, 1.0, unit).weight(
        5, weight_for(80, age=70, creatinine_mg_dl=1.0, sex="female")
    )
    found = rules(post(p, order_for(p, "alendronate", 70, "oral", (1, "wk"))))
    assert ("renal-data-missing" in found) is fires
    if fires:
        card = found["renal-data-missing"]
        assert card["indicator"] == "warning"
        assert "365 days" in card["detail"]
        codes = [
            a["resource"]["code"]["coding"][0]["code"]
            for s in card["suggestions"]
            for a in s["actions"]
            if a["type"] == "create"
        ]
        assert "2160-0" in codes
    assert "renal-contraindicated" not in found


@pytest.mark.parametrize(
    "weight_days_old, fires",
    [(180, False), (181, True)],
    ids=["weight-180d-ok", "weight-181d-missing"],
)
def test_weight_age(post, unit, weight_days_old, fires):
    p = patient()
    add_creatinine(p, 3, 1.0, unit).weight(
        weight_days_old, weight_for(80, age=70, creatinine_mg_dl=1.0, sex="female")
    )
    found = rules(post(p, order_for(p)))
    assert ("renal-data-missing" in found) is fires
    if fires:
        card = found["renal-data-missing"]
        assert card["indicator"] == "warning"
        assert "body weight within 180 days" in card["detail"]
        codes = [
            a["resource"]["code"]["coding"][0]["code"]
            for s in card["suggestions"]
            for a in s["actions"]
            if a["type"] == "create"
        ]
        assert "29463-7" in codes and "2160-0" not in codes
    else:
        assert not found  # CrCl 80 computed: nothing to say


# 2. renal-contraindicated: clearance floor per formulation


@pytest.mark.parametrize(
    "key, dose, every, crcl, fires",
    [
        ("zoledronic-acid-4mg", 4, (12, "wk"), 29, True),
        ("zoledronic-acid-4mg", 4, (12, "wk"), 31, False),
        ("zoledronic-acid-5mg", 5, (1, "a"), 34, True),
        ("zoledronic-acid-5mg", 5, (1, "a"), 36, False),
    ],
    ids=["4mg-crcl29", "4mg-crcl31", "5mg-crcl34", "5mg-crcl36"],
)
def test_contraindicated_floor(post, unit, key, dose, every, crcl, fires):
    p = patient()
    add_creatinine(p, 3, 1.0, unit).weight(
        5, weight_for(crcl, age=70, creatinine_mg_dl=1.0, sex="female")
    )
    order = order_for(p, key, dose, "intravenous", every)
    found = rules(post(p, order))
    assert ("renal-contraindicated" in found) is fires
    if fires:
        card = found["renal-contraindicated"]
        assert card["indicator"] == "critical"
        assert f"CrCl {crcl:.1f} mL/min" in card["detail"]
        deletes = [a for s in card["suggestions"] for a in s["actions"] if a["type"] == "delete"]
        assert deletes and deletes[0]["resourceId"] == f"MedicationRequest/{order['id']}"
    if key == "zoledronic-acid-4mg" and crcl == 31:
        card = found["renal-dose-adjust"]
        assert "**3 mg**" in card["detail"]
        assert dose_of(card["suggestions"][0]["actions"][0]["resource"]) == 3.0


def test_contraindicated_exactly_30_is_not_below(post, unit):
    p = patient(sex="male", age=68)  # (140-68) * 30 / (72 * 1.0) = 30.0
    add_creatinine(p, 3, 1.0, unit).weight(5, 30)
    found = rules(post(p, order_for(p)))
    assert "renal-contraindicated" not in found
    assert "CrCl 30.0 mL/min" in found["renal-dose-adjust"]["detail"]
    assert "**3 mg**" in found["renal-dose-adjust"]["detail"]


# 3. renal-dose-adjust: the label's dose table


@pytest.mark.parametrize(
    "crcl, ordered, expected",
    [
        (61, 4, None),
        (60, 4, 3.5),
        (49.9, 4, 3.3),
        (40, 4, 3.3),
        (39.9, 4, 3.0),
        (45, 3.3, None),
    ],
    ids=[
        "crcl61-4mg",
        "crcl60-4mg",
        "crcl49.9-4mg",
        "crcl40-4mg",
        "crcl39.9-4mg",
        "crcl45-already-3.3mg",
    ],
)
def test_dose_table_first_dose(post, unit, crcl, ordered, expected):
    p = patient()
    add_creatinine(p, 3, 1.0, unit).weight(
        5, weight_for(crcl, age=70, creatinine_mg_dl=1.0, sex="female")
    )
    order = order_for(p, dose_mg=ordered)
    found = rules(post(p, order))
    assert "renal-contraindicated" not in found
    if expected is None:
        assert "renal-dose-adjust" not in found
        return
    card = found["renal-dose-adjust"]
    assert card["indicator"] == "warning"
    assert f"**{expected:g} mg**" in card["detail"]
    assert f"CrCl {crcl:.1f} mL/min" in card["detail"]
    action = card["suggestions"][0]["actions"][0]
    assert action["type"] == "update"
    assert action["resource"]["id"] == order["id"]
    assert dose_of(action["resource"]) == expected


def test_dose_table_course_uses_baseline(post, unit):
    p = za_course(patient(sex="male", age=68), 100, 16)
    add_creatinine(p, 110, 1.0, unit).weight(110, 45)  # baseline CrCl 45
    add_creatinine(p, 2, 1.0, unit).weight(2, 70)  # today CrCl 70
    order = order_for(p)
    found = rules(post(p, order))
    card = found["renal-dose-adjust"]
    assert "**3.3 mg**" in card["detail"] and "CrCl 45.0 mL/min" in card["detail"]
    assert "baseline" in card["detail"]
    assert dose_of(card["suggestions"][0]["actions"][0]["resource"]) == 3.3
    assert "renal-deterioration" not in found


def current_hypercalcemia(p: PatientBuilder) -> PatientBuilder:
    """Hypercalcemia of malignancy while it is current: diagnosed 3 days ago, corrected calcium 12.6
    mg/dL yesterday."""
    return p.condition("hypercalcemia", onset_days_ago=3).corrected_calcium(1, 12.6)


def test_dose_table_not_applied_in_hypercalcemia_of_malignancy(post, unit):
    p = patient()
    current_hypercalcemia(p.condition("breast-cancer").condition("bone-metastasis"))
    add_creatinine(p, 3, 1.0, unit).weight(
        5, weight_for(45, age=70, creatinine_mg_dl=1.0, sex="female")
    )
    found = rules(post(p, order_for(p)))
    assert "renal-dose-adjust" not in found
    assert "renal-contraindicated" not in found


# 4. renal-deterioration: creatinine rise since baseline during a course


@pytest.mark.parametrize(
    "baseline, latest, fires",
    [
        (1.0, 1.4, False),
        (1.0, 1.5, True),
        (1.4, 2.3, False),
        (1.4, 2.4, True),
        (1.39, 1.89, True),
    ],
    ids=[
        "normal-rise0.4",
        "normal-rise0.5",
        "abnormal-rise0.9",
        "abnormal-rise1.0",
        "base1.39-rise0.5",
    ],
)
def test_deterioration(post, unit, baseline, latest, fires):
    p = za_course(patient(sex="male", age=68), 100, 16)
    weight = 100  # baseline CrCl = 100 / baseline >= 71, so the dose table stays at 4 mg
    add_creatinine(p, 110, baseline, unit).weight(110, weight)
    add_creatinine(p, 2, latest, unit).weight(2, weight)
    order = order_for(p)
    found = rules(post(p, order))
    assert ("renal-deterioration" in found) is fires
    assert "renal-contraindicated" not in found and "renal-dose-adjust" not in found
    if fires:
        card = found["renal-deterioration"]
        assert card["indicator"] == "critical"
        assert f"risen by {latest - baseline:.2f} mg/dL" in card["detail"]
        deletes = [a for s in card["suggestions"] for a in s["actions"] if a["type"] == "delete"]
        assert deletes and deletes[0]["resourceId"] == f"MedicationRequest/{order['id']}"


def test_deterioration_needs_a_course(post, unit):
    p = patient(sex="male", age=68)
    add_creatinine(p, 110, 1.0, unit).weight(110, 100)
    add_creatinine(p, 2, 1.5, unit).weight(2, 100)
    found = rules(post(p, order_for(p)))
    assert "renal-deterioration" not in found


# 5. Hypercalcemia of malignancy: withhold only at creatinine >= 4.5 mg/dL


@pytest.mark.parametrize("creatinine, fires", [(4.4, False), (4.5, True)], ids=["cr4.4", "cr4.5"])
def test_hypercalcemia_of_malignancy_creatinine_limit(post, unit, creatinine, fires):
    """Catalog rev.

    2 (L3): at creatinine >= 4.5 mg/dL the label asks to weigh benefit and risk: a warning.
    """
    p = patient()
    current_hypercalcemia(p.condition("breast-cancer").condition("bone-metastasis"))
    add_creatinine(p, 3, creatinine, unit).weight(5, 60)  # CrCl about 11 mL/min
    order = order_for(p)
    found = rules(post(p, order))
    assert ("renal-contraindicated" in found) is fires
    if fires:
        card = found["renal-contraindicated"]
        assert card["indicator"] == "warning"
        assert "4.5 mg/dL" in card["detail"] and "weigh" in card["summary"]
        deletes = [a for s in card["suggestions"] for a in s["actions"] if a["type"] == "delete"]
        assert deletes and deletes[0]["resourceId"] == f"MedicationRequest/{order['id']}"


@pytest.mark.parametrize(
    "onset_days, calcium, current",
    [
        (3, 12.6, True),
        (30, 10.5, True),
        (31, 10.5, False),
        (3, 10.49, False),
        (400, 11.9, False),
        (400, 12.0, True),
    ],
    ids=[
        "recent-12.6",
        "onset-30d-ca10.5",
        "onset-31d",
        "ca10.49",
        "old-entry-11.9",
        "old-entry-12.0",
    ],
)
def test_hypercalcemia_of_malignancy_only_while_current(post, unit, onset_days, calcium, current):
    """An old or normocalcemic hypercalcemia entry does not waive the renal floor: CrCl about 11 is
    then a stop."""
    p = patient()
    p.condition("breast-cancer").condition("bone-metastasis").condition(
        "hypercalcemia", onset_days_ago=onset_days
    )
    p.corrected_calcium(2, calcium)
    add_creatinine(p, 3, 4.0, unit).weight(5, 60)
    found = rules(post(p, order_for(p)))
    if current:
        # creatinine 4.0 < 4.5: no renal card in that setting
        assert "renal-contraindicated" not in found
    else:
        card = found["renal-contraindicated"]
        assert card["indicator"] == "critical" and "bone-metastatic" in card["detail"]


def test_a_lab_order_already_drafted_is_not_offered_again(post):
    """The creatinine ServiceRequest of the card, drafted in the same order set: the card still
    warns (no result yet) but does not offer the same order twice."""
    p = patient().weight(5, 60)
    lab = {
        "resourceType": "ServiceRequest",
        "id": f"{p.patient_id}-cr",
        "status": "draft",
        "intent": "order",
        "code": {
            "coding": [
                {
                    "system": "http://loinc.org",
                    "code": "2160-0",
                    "display": "Creatinine [Mass/volume] in Serum or Plasma",
                }
            ]
        },
        "subject": {"reference": p.reference},
    }
    card = rules(post(p, order_for(p)))["renal-data-missing"]
    assert [
        a["resource"]["code"]["coding"][0]["code"]
        for s in card["suggestions"]
        for a in s["actions"]
    ] == ["2160-0"]
    card = rules(post(p, order_for(p), lab))["renal-data-missing"]
    assert "suggestions" not in card and "already in this order set" in card["detail"]
