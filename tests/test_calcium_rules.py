"""Calcium and vitamin D safety rules at their thresholds, through the HTTP endpoint with the clock frozen.

Each test starts from a well-prepared patient (no cards at all) and changes one thing."""
from __future__ import annotations

from datetime import timedelta
from typing import Callable

import pytest

from fixtures.builder import ANCHOR_INSTANT, PatientBuilder, medication_request
from tests.order_sign_http import (
    SERVICE_ID, actions, denosumab_order, early, metastatic, new_patient, oral_order, order, prepared, rules,
)

CALCIUM_LOINC, ALBUMIN_LOINC = "17861-6", "1751-7"
CALCIUM_RXNORM, VITAMIN_D3_RXNORM = "1895", "2418"
ORDERS = {"za": order, "denosumab": denosumab_order, "alendronate": oral_order}
Record = Callable[[PatientBuilder], object]


def case(kind: str = "za", *, sex: str = "female", age: int = 64, **leave_out: bool) -> tuple[PatientBuilder, dict]:
    """A prepared patient (bone metastases; early breast cancer for oral alendronate) without the parts left out,
    and the draft order of `kind`."""
    p = prepared(new_patient(f"ca-{kind}", sex=sex, age=age), **leave_out)
    (early if kind == "alendronate" else metastatic)(p)
    return p, ORDERS[kind](p)


def only(post, p: PatientBuilder, draft: dict, rule_id: str, **kw) -> dict | None:
    """The card of `rule_id` for this order (None when absent); no other rule may speak."""
    found = rules(post(p, draft, **kw))
    assert set(found) <= {rule_id}, sorted(found)
    return found.get(rule_id)


def created(card: dict, resource_type: str) -> list[dict]:
    return [a["resource"] for a in actions(card, "create") if a["resource"]["resourceType"] == resource_type]


def codes(card: dict, resource_type: str) -> list[str]:
    field = "code" if resource_type == "ServiceRequest" else "medicationCodeableConcept"
    return [r[field]["coding"][0]["code"] for r in created(card, resource_type)]


@pytest.fixture()
def prefetch_without(frozen_order_sign_app):
    keys = [k.key for k in frozen_order_sign_app.extensions["bonecds"].services[SERVICE_ID].prefetch_keys]
    return lambda missing: [k for k in keys if k != missing]


@pytest.mark.parametrize("kind", list(ORDERS))
def test_prepared_patient_is_quiet(post, kind):
    p, draft = case(kind)
    assert post(p, draft) == []


# calcium-low: corrected (or uncorrected total) calcium, ionized calcium; each limit from both sides

def total(value: float, albumin: float | None = None, unit: str = "mg/dL", albumin_unit: str = "g/dL") -> Record:
    return lambda p: p.calcium(5, value, albumin=albumin, unit=unit, albumin_unit=albumin_unit)


def ionized(value: float, unit: str = "mmol/L") -> Record:
    return lambda p: p.calcium(5, 9.4, albumin=4.1).ionized_calcium(5, value, unit=unit)


UNCORRECTED = "**not corrected for albumin**"
LOW_CASES = [  # (record, None or (summary text, detail texts...))
    pytest.param(total(8.5), None, id="total-8.5-no-albumin"),
    pytest.param(total(8.49), ("Calcium 8.49 mg/dL", "total calcium 8.49 mg/dL", UNCORRECTED, "below 8.5 mg/dL"),
                 id="total-8.49-no-albumin"),
    pytest.param(total(2.12, unit="mmol/L"), None, id="total-2.12mmol-no-albumin"),
    pytest.param(total(2.11, unit="mmol/L"), ("Calcium 2.11 mmol/L", "total calcium 2.11 mmol/L", UNCORRECTED,
                                              "below 2.12 mmol/L"), id="total-2.11mmol-no-albumin"),
    pytest.param(total(8.0, 3.0), None, id="8.0-alb3.0-corrected-8.8"),
    pytest.param(total(8.0, 30, albumin_unit="g/L"), None, id="8.0-alb30gL-corrected-8.8"),
    pytest.param(total(8.0, 3.375), None, id="8.0-alb3.375-corrected-exactly-8.5"),
    pytest.param(total(8.0, 3.4), ("Calcium 8.48 mg/dL", "albumin 3.4 g/dL", "albumin-corrected calcium 8.48 mg/dL",
                                   "below 8.5 mg/dL"), id="8.0-alb3.4-corrected-8.48"),
    pytest.param(total(8.0, 3.38), ("Calcium 8.496 mg/dL", "albumin-corrected calcium 8.496 mg/dL"),
                 id="8.0-alb3.38-corrected-8.496-not-shown-as-8.5"),
    pytest.param(total(9.0, 4.7), ("Calcium 8.44 mg/dL", "albumin-corrected calcium 8.44 mg/dL"),
                 id="9.0-alb4.7-corrected-down-to-8.44"),
    pytest.param(total(2.0, 3.0, unit="mmol/L"), None, id="2.0mmol-alb3.0-corrected-2.2"),
    pytest.param(total(2.1, 4.1, unit="mmol/L"), ("Calcium 2.08 mmol/L", "albumin-corrected calcium 2.08 mmol/L",
                                                  "below 2.12 mmol/L"), id="2.1mmol-alb4.1-corrected-2.08"),
    pytest.param(lambda p: p.calcium(5, 8.4).observation("albumin", 7, 3.0, "g/dL"),
                 ("Calcium 8.4 mg/dL", "total calcium 8.4 mg/dL", UNCORRECTED), id="albumin-2-days-apart-not-used"),
    pytest.param(lambda p: p.corrected_calcium(5, 8.5), None, id="measured-corrected-8.5"),
    pytest.param(lambda p: p.corrected_calcium(5, 8.49), ("Calcium 8.49 mg/dL", "albumin-corrected calcium 8.49 mg/dL"),
                 id="measured-corrected-8.49"),
    pytest.param(lambda p: p.corrected_calcium(5, 2.12, unit="mmol/L"), None, id="measured-corrected-2.12mmol"),
    pytest.param(lambda p: p.corrected_calcium(5, 2.11, unit="mmol/L"), ("Calcium 2.11 mmol/L", "below 2.12 mmol/L"),
                 id="measured-corrected-2.11mmol"),
    pytest.param(ionized(1.12), None, id="ionized-1.12"),
    pytest.param(ionized(1.11), ("Ionized calcium 1.11 mmol/L", "Ionized calcium 1.11 mmol/L", "below 1.12 mmol/L"),
                 id="ionized-1.11"),
    pytest.param(ionized(4.49, "mg/dL"), None, id="ionized-4.49mgdl-is-1.1203"),
    pytest.param(ionized(4.48, "mg/dL"), ("Ionized calcium 1.118 mmol/L", "4.48 mg/dL (1.118 mmol/L)"),
                 id="ionized-4.48mgdl-is-1.1178"),
    pytest.param(lambda p: p.calcium(20, 8.0, albumin=4.0).calcium(5, 9.0, albumin=4.0), None, id="latest-normal-decides"),
    pytest.param(lambda p: p.calcium(20, 9.0, albumin=4.0).calcium(5, 8.0, albumin=4.0),
                 ("Calcium 8 mg/dL", "albumin-corrected calcium 8 mg/dL"), id="latest-low-decides"),
    pytest.param(lambda p: p.ionized_calcium(20, 1.0).calcium(5, 9.4, albumin=4.1), None,
                 id="older-low-ionized-newer-normal-total"),
    pytest.param(lambda p: p.calcium(20, 8.0, albumin=4.0).ionized_calcium(5, 1.2), None,
                 id="older-low-total-newer-normal-ionized"),
    pytest.param(lambda p: p.calcium(20, 9.4, albumin=4.1).ionized_calcium(5, 1.05),
                 ("Ionized calcium 1.05 mmol/L", "below 1.12 mmol/L"), id="newer-low-ionized-decides"),
]


@pytest.mark.parametrize("record, expected", LOW_CASES)
def test_calcium_low_thresholds(post, record, expected):
    p, draft = case(calcium=False)
    record(p)
    card = only(post, p, draft, "calcium-low")
    if expected is None:
        assert card is None
        return
    summary, *details = expected
    assert card["indicator"] == "critical"
    assert card["summary"].startswith(f"{summary} is low")
    assert all(text in card["detail"] for text in details), card["detail"]
    assert (UNCORRECTED in card["detail"]) is (UNCORRECTED in details)
    assert ("could not be corrected for albumin" in card["detail"]) is (UNCORRECTED in details)
    assert [a["resourceId"] for a in actions(card, "delete")] == [f"MedicationRequest/{draft['id']}"]


@pytest.mark.parametrize("kind, risk", [
    ("za", "contraindicate bisphosphonates in hypocalcemia"),
    ("denosumab", "severe, sometimes fatal, hypocalcemia"),
    ("alendronate", "contraindicate bisphosphonates in hypocalcemia"),
], ids=list(ORDERS))
def test_calcium_low_for_every_agent(post, kind, risk):
    p, draft = case(kind, calcium=False)
    p.calcium(5, 8.0, albumin=4.0)
    card = only(post, p, draft, "calcium-low")
    assert card["indicator"] == "critical" and risk in card["detail"]
    assert [a["resourceId"] for a in actions(card, "delete")] == [f"MedicationRequest/{draft['id']}"]


# calcium-data-missing: IV bisphosphonate or denosumab, no calcium within 30 days

@pytest.mark.parametrize("days, value, expected", [
    (30, 9.4, None), (31, 9.4, "calcium-data-missing"), (30, 8.0, "calcium-low"), (31, 8.0, "calcium-data-missing"),
], ids=["normal-30d", "normal-31d", "low-30d", "low-31d"])
def test_calcium_window(post, days, value, expected):
    p, draft = case(calcium=False)
    p.calcium(days, value, albumin=4.0)
    card = only(post, p, draft, expected)
    assert (card is None) is (expected is None)
    if expected == "calcium-data-missing":
        assert card["indicator"] == "warning"
        assert f"No serum calcium within the last 30 days; the latest is {value:g} mg/dL" in card["detail"]
        assert codes(card, "ServiceRequest") == [CALCIUM_LOINC, ALBUMIN_LOINC]


@pytest.mark.parametrize("kind, fires", [("za", True), ("denosumab", True), ("alendronate", False)], ids=list(ORDERS))
def test_calcium_missing_by_agent(post, kind, fires):
    p, draft = case(kind, calcium=False)
    card = only(post, p, draft, "calcium-data-missing")
    assert (card is not None) is fires
    if fires:
        assert card["indicator"] == "warning" and "none on record" in card["detail"]
        assert codes(card, "ServiceRequest") == [CALCIUM_LOINC, ALBUMIN_LOINC]
        assert all(r["subject"]["reference"] == f"Patient/{p.patient_id}" for r in created(card, "ServiceRequest"))


@pytest.mark.parametrize("record, unavailable, text", [
    (lambda p: p.ionized_calcium(5, 1.2), None, None),
    (lambda p: p.calcium(5, 9.4, unit="mg/L"), None, "cannot be used: unknown unit ('mg/L')"),
    (lambda p: p.calcium(5, 9.4, albumin=4.1), "calcium", "Calcium results could not be retrieved"),
], ids=["ionized-counts", "unknown-unit", "calcium-not-retrievable"])
def test_calcium_missing_explains_why(post, prefetch_without, record, unavailable, text):
    p, draft = case(calcium=False)
    record(p)
    keys = prefetch_without(unavailable) if unavailable else None
    card = only(post, p, draft, "calcium-data-missing", prefetch_keys=keys)  # no record-incomplete card either
    assert (card is None) is (text is None)
    if text:
        assert text in card["detail"] and codes(card, "ServiceRequest") == [CALCIUM_LOINC, ALBUMIN_LOINC]


# denosumab-renal-hypocalcemia: CrCl or eGFR below 30, or dialysis

def renal(weight: float | None = 70, egfr: float | None = None, dialysis: str | None = None) -> Record:
    def record(p: PatientBuilder) -> None:
        p.creatinine(5, 1.0)  # male, 68 years: CrCl = weight in kg
        if weight is not None:
            p.weight(5, weight)
        if egfr is not None:
            p.egfr(5, egfr)
        if dialysis:
            p.condition("dialysis", status=dialysis)
    return record


@pytest.mark.parametrize("kind, record, text", [
    ("denosumab", renal(29), "CrCl 29.0 mL/min"),
    ("denosumab", renal(30), None),
    ("denosumab", renal(70, egfr=29), "eGFR 29 mL/min"),
    ("denosumab", renal(70, egfr=30), None),
    ("denosumab", renal(None, egfr=29), "eGFR 29.0 mL/min/1.73 m2"),
    ("denosumab", renal(None, egfr=30), None),
    ("denosumab", renal(dialysis="active"), "On dialysis: Dependence on renal dialysis"),
    ("denosumab", renal(dialysis="resolved"), None),
    ("za", renal(dialysis="active"), None),
], ids=["crcl29", "crcl30", "egfr29-crcl70", "egfr30-crcl70", "egfr29-no-weight", "egfr30-no-weight",
        "dialysis", "dialysis-resolved", "za-on-dialysis"])
def test_denosumab_renal_hypocalcemia(post, kind, record, text):
    p, draft = case(kind, sex="male", age=68, renal=False)
    record(p)
    card = only(post, p, draft, "denosumab-renal-hypocalcemia")
    assert (card is None) is (text is None)
    if text is None:
        return
    assert card["indicator"] == "warning"
    assert text in card["detail"] and "below 30 mL/min" in card["detail"]
    [request] = created(card, "ServiceRequest")
    assert request["code"]["coding"][0]["code"] == CALCIUM_LOINC
    period = request["occurrencePeriod"]
    assert period["start"] == ANCHOR_INSTANT.isoformat().replace("+00:00", "Z")
    assert period["end"] == (ANCHOR_INSTANT + timedelta(days=14)).isoformat().replace("+00:00", "Z")


# supplements-missing: no active calcium or vitamin D order; never calcium for a hypercalcemic patient

@pytest.mark.parametrize("kind, indicator, text", [
    ("za", "info", "throughout bisphosphonate therapy"),
    ("denosumab", "warning", "denosumab labels require calcium and vitamin D"),
    ("alendronate", "info", "throughout bisphosphonate therapy"),
], ids=list(ORDERS))
def test_supplements_missing_by_agent(post, kind, indicator, text):
    p, draft = case(kind, supplements=False)
    card = only(post, p, draft, "supplements-missing")
    assert card["indicator"] == indicator and text in card["detail"]
    assert card["summary"].startswith("No calcium and vitamin D supplement")
    assert codes(card, "MedicationRequest") == [CALCIUM_RXNORM, VITAMIN_D3_RXNORM]


@pytest.mark.parametrize("on_record, summary, suggested", [
    ([("calcium-carbonate", "active")], "No vitamin D supplement", [VITAMIN_D3_RXNORM]),
    ([("cholecalciferol", "active")], "No calcium supplement", [CALCIUM_RXNORM]),
    ([("calcium-carbonate", "active"), ("cholecalciferol", "active")], None, None),
    ([("calcium-vitamin-d", "active")], None, None),
    ([("calcium-vitamin-d", "stopped")], "No calcium and vitamin D supplement", [CALCIUM_RXNORM, VITAMIN_D3_RXNORM]),
], ids=["calcium-only", "vitamin-d-only", "both-separately", "combined-product", "combined-stopped"])
def test_supplements_what_is_missing(post, on_record, summary, suggested):
    p, draft = case(supplements=False)
    for key, status in on_record:
        p.medication(key, 60, status=status)
    card = only(post, p, draft, "supplements-missing")
    assert (card is None) is (summary is None)
    if card:
        assert card["summary"].startswith(summary)
        assert codes(card, "MedicationRequest") == suggested


@pytest.mark.parametrize("record, hypercalcemic", [
    (total(10.5, 4.0), True), (total(10.49, 4.0), False),
    (total(2.62, unit="mmol/L"), True), (total(2.61, unit="mmol/L"), False),
    (total(10.0, 3.3), True),  # corrected 10.56
    (total(10.8, 4.5), False),  # corrected 10.4
    (lambda p: p.calcium(5, 9.4, albumin=4.1).condition("hypercalcemia"), True),  # hypercalcemia of malignancy
], ids=["10.5", "10.49", "2.62mmol", "2.61mmol", "10.0-alb3.3", "10.8-alb4.5", "hypercalcemia-of-malignancy"])
def test_no_calcium_suggested_to_hypercalcemic_patient(post, record, hypercalcemic):
    p, draft = case(supplements=False, calcium=False)
    record(p)
    card = only(post, p, draft, "supplements-missing")
    assert (card is None) is hypercalcemic
    if card:
        assert CALCIUM_RXNORM in codes(card, "MedicationRequest")


def test_supplements_not_judged_without_the_medication_list(post, prefetch_without):
    p, draft = case(supplements=False)
    found = rules(post(p, draft, prefetch_keys=prefetch_without("medications")))
    assert set(found) == {"record-incomplete"}
    assert "calcium and vitamin d supplements" in found["record-incomplete"]["detail"].lower()


def test_low_vitamin_d_leaves_repletion_to_its_own_card(post):
    p, draft = case(supplements=False)
    p.vitamin_d(10, 30)
    found = rules(post(p, draft))
    assert set(found) == {"supplements-missing", "vitamin-d-low"}
    assert codes(found["supplements-missing"], "MedicationRequest") == [CALCIUM_RXNORM]
    assert "Vitamin D is low (30 nmol/L" in found["supplements-missing"]["detail"]
    assert codes(found["vitamin-d-low"], "MedicationRequest") == [VITAMIN_D3_RXNORM]


# vitamin-d-low: 25-OH vitamin D below 20 ng/mL (50 nmol/L) within 180 days

@pytest.mark.parametrize("days, value, unit, fires", [
    (100, 19.9, "ng/mL", True), (100, 20, "ng/mL", False), (100, 49.9, "nmol/L", True), (100, 50, "nmol/L", False),
    (100, 49.96, "nmol/L", True), (180, 30, "nmol/L", True), (181, 30, "nmol/L", False),
], ids=["19.9ngml", "20ngml", "49.9nmol", "50nmol", "49.96nmol-not-shown-as-50", "180d", "181d"])
def test_vitamin_d_low(post, days, value, unit, fires):
    p, draft = case()
    p.vitamin_d(days, value, unit=unit)
    card = only(post, p, draft, "vitamin-d-low")
    assert (card is not None) is fires
    if not fires:
        return
    shown = f"{value:g} {unit}"
    assert card["indicator"] == "warning"
    assert card["summary"] == f"Vitamin D low ({shown}): replete it"
    assert f"25-OH vitamin D {shown}" in card["detail"] and "below 20 ng/mL (50 nmol/L)" in card["detail"]
    [request] = created(card, "MedicationRequest")
    assert request["medicationCodeableConcept"]["coding"][0]["code"] == VITAMIN_D3_RXNORM
    assert shown in request["reasonCode"][0]["text"]


# Two bone-agent orders in one request: one card per order

@pytest.mark.parametrize("leave_out, record, rule_id, indicators", [
    ("calcium", None, "calcium-data-missing", {"zoledronic acid": "warning", "denosumab": "warning"}),
    ("calcium", total(8.0, 4.0), "calcium-low", {"zoledronic acid": "critical", "denosumab": "critical"}),
    ("supplements", None, "supplements-missing", {"zoledronic acid": "info", "denosumab": "warning"}),
], ids=["calcium-missing", "calcium-low", "supplements-missing"])
def test_two_orders_get_a_card_each(post, leave_out, record, rule_id, indicators):
    p = metastatic(prepared(new_patient("ca-two"), **{leave_out: False}))
    if record:
        record(p)
    drafts = {"zoledronic acid": order(p, suffix="za"), "denosumab": denosumab_order(p, suffix="dmab")}
    cards = post(p, *drafts.values())
    assert {c["source"]["topic"]["code"] for c in cards} == {rule_id, "duplicate-bone-agent"}
    mine = [c for c in cards if c["source"]["topic"]["code"] == rule_id]
    by_drug = {drug: c for c in mine for drug in drafts if drug in c["detail"].splitlines()[0]}
    assert len(mine) == 2 and {drug: c["indicator"] for drug, c in by_drug.items()} == indicators
    for drug, card in by_drug.items():
        deletes = [a["resourceId"] for a in actions(card, "delete")]
        assert deletes == ([f"MedicationRequest/{drafts[drug]['id']}"] if rule_id == "calcium-low" else [])


@pytest.mark.parametrize("companions, suggested", [
    (["calcium-vitamin-d"], None), (["calcium-carbonate"], [VITAMIN_D3_RXNORM]), ([], [CALCIUM_RXNORM, VITAMIN_D3_RXNORM]),
], ids=["combined-product-signed-together", "calcium-signed-together", "nothing-signed-together"])
def test_supplements_signed_with_the_bone_agent_count(post, companions, suggested):
    """Supplements drafted in the same order-sign request as the bone agent are as good as active ones."""
    p, draft = case(supplements=False)
    drafts = [medication_request(f"{p.patient_id}-draft-{key}", p.patient_id, key, route="oral", every=(1, "d"))
              for key in companions]
    found = rules(post(p, draft, *drafts))
    assert set(found) == ({"supplements-missing"} if suggested else set())
    if suggested:
        assert codes(found["supplements-missing"], "MedicationRequest") == suggested
