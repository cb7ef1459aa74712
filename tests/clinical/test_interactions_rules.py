"""Nephrotoxic co-medication through the whole HTTP path (clock frozen at the anchor): zoledronic
acid or pamidronate with aminoglycosides and loop diuretics (calcium and magnesium) or NSAIDs,
cisplatin and other nephrotoxic drugs (creatinine), on both sides of every window and limit.

Every test starts from a prepared patient whose order gets no card and adds one thing.
"""

from __future__ import annotations

import pytest

from fixtures.builder import RXNORM, PatientBuilder, medication_request
from tests.support.order_sign_http import (
    actions,
    denosumab_order,
    metastatic,
    new_patient,
    order,
    prepared,
    rules,
)

RULE = "nephrotoxic-comedication"


def patient(*, labs_days: float = 3, magnesium: float | None = 2.0) -> PatientBuilder:
    """Bone metastases, everything prepared; calcium (with albumin), magnesium and creatinine
    `labs_days` old."""
    p = prepared(metastatic(new_patient("nephro")), calcium=False, renal=False)
    p.creatinine(175, 0.8).weight(175, 68)
    p.calcium(labs_days, 9.3, albumin=4.0).creatinine(labs_days, 0.85).weight(labs_days, 68)
    if magnesium is not None:
        p.magnesium(labs_days, magnesium)
    return p


def drug(p: PatientBuilder, key: str, *, status: str = "active", route: str = "oral") -> None:
    p.medication(key, 20, status=status, route=route, every=(1, "d"))


def created(card: dict) -> list[str]:
    return [a["resource"]["code"]["coding"][0]["code"] for a in actions(card, "create")]


def test_prepared_patient_without_interacting_drugs_is_quiet(post):
    p = patient()
    assert rules(post(p, order(p))) == {}


@pytest.mark.parametrize("key", ["furosemide", "gentamicin"])
@pytest.mark.parametrize("days, fires", [(7, False), (8, True)], ids=["7-days", "8-days"])
def test_calcium_and_magnesium_within_7_days(post, key, days, fires):
    """A loop diuretic or aminoglycoside: quiet while calcium and magnesium are at most 7 days old
    and normal; a week and a day and the card orders both."""
    p = patient(labs_days=days)
    drug(p, key, route="intravenous" if key == "gentamicin" else "oral")
    found = rules(post(p, order(p)))
    if not fires:
        assert RULE not in found
        return
    card = found[RULE]
    assert card["indicator"] == "warning"
    assert card["summary"].startswith(key.capitalize() + " with zoledronic acid: check serum")
    assert "hydrate before the dose" in card["detail"]
    assert len(card["suggestions"]) == 1  # one finding, one suggestion with both tests
    assert created(card) == ["17861-6", "19123-9"]


def test_only_the_stale_test_is_ordered(post):
    p = patient()
    p.magnesium(8, 2.0)
    p.resources = [
        r
        for r in p.resources
        if not (
            r["resourceType"] == "Observation"
            and r["code"]["coding"][0]["code"] == "19123-9"
            and r["effectiveDateTime"].startswith("2026-10-12")
        )
    ]
    drug(p, "furosemide")
    card = rules(post(p, order(p)))[RULE]
    assert created(card) == ["19123-9"]
    assert "Magnesium: none within 7 days; the latest is 2 mg/dL on 2026-10-07" in card["detail"]
    assert "not low" in card["detail"]  # the fresh calcium is shown as checked


@pytest.mark.parametrize(
    "value, unit, fires",
    [(1.7, "mg/dL", False), (1.69, "mg/dL", True), (0.70, "mmol/L", False), (0.69, "mmol/L", True)],
)
def test_magnesium_below_the_reference_range_keeps_the_card(post, value, unit, fires):
    p = patient(magnesium=None)
    p.magnesium(3, value, unit)
    drug(p, "furosemide")
    found = rules(post(p, order(p)))
    assert (RULE in found) is fires
    if fires:
        card = found[RULE]
        assert "below the lower reference limit 1.7 mg/dL" in card["detail"]
        assert card["summary"].startswith("Magnesium ")
        assert "suggestions" not in card or not card["suggestions"]  # nothing left to order


@pytest.mark.parametrize("days, fires", [(7, False), (8, True)])
def test_nsaid_needs_a_creatinine_within_7_days(post, days, fires):
    p = prepared(metastatic(new_patient("nsaid")), renal=False)
    p.creatinine(175, 0.8).weight(175, 68).creatinine(days, 0.85).weight(days, 68)
    drug(p, "ibuprofen")
    found = rules(post(p, order(p)))
    assert (RULE in found) is fires
    if fires:
        card = found[RULE]
        assert (
            card["summary"]
            == "Ibuprofen with zoledronic acid: check serum creatinine before the dose"
        )
        assert created(card) == ["2160-0"]
        assert "kidney risk" in card["detail"]


@pytest.mark.parametrize("latest, fires", [(1.29, False), (1.3, True)])
def test_creatinine_risen_as_in_renal_deterioration_keeps_the_card(post, latest, fires):
    """Baseline 0.8 mg/dL (normal): a rise of 0.5 mg/dL is the label's withhold threshold."""
    p = prepared(metastatic(new_patient("nsaid-rise")), renal=False)
    p.creatinine(175, 0.8).weight(175, 68).creatinine(3, latest).weight(3, 68)
    drug(p, "cisplatin", route="intravenous")
    found = rules(post(p, order(p)))
    assert (RULE in found) is fires
    if fires:
        assert "has risen by 0.50 mg/dL" in found[RULE]["detail"]
        assert found[RULE]["summary"].startswith("Creatinine up 0.50 mg/dL with cisplatin")


@pytest.mark.parametrize(
    "status, fires",
    [("active", True), ("on-hold", True), ("stopped", False), ("completed", False)],
)
def test_active_or_on_hold_orders_count(post, status, fires):
    p = patient(magnesium=None)
    drug(p, "furosemide", status=status)
    assert (RULE in rules(post(p, order(p)))) is fires


@pytest.mark.parametrize("days, fires", [(7, True), (8, False)])
def test_a_completed_order_counts_as_a_dose_on_its_date(post, days, fires):
    p = patient(magnesium=None)
    p.medication("gentamicin", days, status="completed", route="intravenous")
    assert (RULE in rules(post(p, order(p)))) is fires


@pytest.mark.parametrize("days, fires", [(7, True), (8, False)])
def test_an_administration_within_7_days_counts(post, days, fires):
    p = patient(magnesium=None)
    p.administration("gentamicin", days)
    found = rules(post(p, order(p)))
    assert (RULE in found) is fires
    if fires:
        assert "gentamicin (given" in found[RULE]["detail"]


def test_a_loop_diuretic_drafted_with_the_dose_counts(post):
    p = patient(magnesium=None)
    furosemide = medication_request(
        f"{p.patient_id}-draft-furosemide", p.patient_id, "furosemide", dose_mg=40, route="oral"
    )
    card = rules(post(p, order(p), furosemide))[RULE]
    assert "furosemide (being ordered now)" in card["detail"]


def test_low_dose_aspirin_and_topical_nsaids_do_not_count(post):
    p = patient()
    drug(p, "ibuprofen")
    p.resources[-1]["medicationCodeableConcept"] = {
        "coding": [{"system": RXNORM, "code": "1191", "display": "aspirin"}],
        "text": "aspirin 81 MG Oral Tablet",
    }
    drug(p, "ibuprofen")
    p.resources[-1]["medicationCodeableConcept"] = {"text": "diclofenac 10 MG/ML Topical Gel"}
    p.resources[-1]["dosageInstruction"][0]["route"] = {"text": "Topical"}
    p.creatinine(8, 0.85)  # stale: a counted NSAID would fire
    p.resources = [
        r
        for r in p.resources
        if not (r["resourceType"] == "Observation" and r["code"]["coding"][0]["code"] == "2160-0")
        or not r["effectiveDateTime"].startswith("2026-10-12")
    ]
    assert RULE not in rules(post(p, order(p)))


def test_an_nsaid_recognised_by_atc_only(post):
    p = patient()
    drug(p, "ibuprofen")
    p.resources[-1]["medicationCodeableConcept"] = {
        "coding": [{"system": "http://www.whocc.no/atc", "code": "M01AC06"}],
        "text": "Mobic",
    }
    p.resources = [
        r
        for r in p.resources
        if not (r["resourceType"] == "Observation" and r["code"]["coding"][0]["code"] == "2160-0")
    ]
    p.creatinine(175, 0.8).creatinine(9, 0.85)
    assert RULE in rules(post(p, order(p)))


def test_both_findings_make_one_card_with_one_suggestion_each(post):
    p = prepared(metastatic(new_patient("both")), calcium=False, renal=False)
    p.creatinine(175, 0.8).weight(175, 68).creatinine(10, 0.85).weight(10, 68)
    drug(p, "furosemide")
    drug(p, "ibuprofen")
    card = rules(post(p, order(p)))[RULE]
    assert [created({"suggestions": [s]}) for s in card["suggestions"]] == [
        ["17861-6", "19123-9"],
        ["2160-0"],
    ]
    assert card["selectionBehavior"] == "any"
    assert card["summary"] == (
        "Furosemide and ibuprofen with zoledronic acid: check serum calcium, serum magnesium and"
        " serum creatinine before the dose"
    )


def test_pamidronate_gets_the_class_caution(post):
    p = patient(magnesium=None)
    drug(p, "furosemide")
    draft = order(p, "pamidronate-90mg", dose_mg=90, every=(4, "wk"), infusion_minutes=120)
    card = rules(post(p, draft))[RULE]
    assert (
        "For pamidronate, the Zometa label's caution for these drug classes is applied by"
        in (card["detail"])
    )


def test_denosumab_is_not_concerned(post):
    p = patient(magnesium=None)
    drug(p, "furosemide")
    assert RULE not in rules(post(p, denosumab_order(p)))


def test_magnesium_not_retrieved_is_said_and_ordered(post, frozen_order_sign_app):
    p = patient()
    drug(p, "furosemide")
    keys = [
        k.key
        for k in frozen_order_sign_app.extensions["bonecds"].prefetch_keys
        if k.key != "magnesium"
    ]
    found = rules(post(p, order(p), prefetch_keys=keys))
    card = found[RULE]
    assert "Magnesium could not be retrieved from the EHR" in card["detail"]
    assert created(card) == ["19123-9"]
    assert "record-incomplete" not in found  # the card said it itself


@pytest.mark.parametrize("calcium, hcm", [(12.5, True), (10.0, False)])
def test_loop_diuretic_in_hypercalcemia_of_malignancy_after_rehydration(post, calcium, hcm):
    """Corrected calcium >= 12 mg/dL this week makes the setting hypercalcemia of malignancy: the
    card adds that the loop diuretic comes only after rehydration (Zometa PI 5.1)."""
    p = prepared(metastatic(new_patient("nephro-hcm")), calcium=False)
    p.calcium(2, calcium, albumin=4.0)
    drug(p, "furosemide")
    card = rules(post(p, order(p, every=None)))[RULE]
    assert ("only after the patient is rehydrated" in card["detail"]) is hcm
    assert created(card) == ["19123-9"]


def test_scd_named_products_as_synthea_sends_them_without_a_route(post):
    """Synthea writes no route and names products by their RxNorm SCD: an oral NSAID tablet counts,
    a topical gel (the dose form in its name) does not, nor does a drug whose name merely contains
    a route word ("otic" in "antibiotic")."""
    p = patient(labs_days=10)  # creatinine 10 days old: an NSAID draws the card
    p.medication("ibuprofen-200mg-tablet", 20, status="active", every=(1, "d"))
    card = rules(post(p, order(p)))[RULE]
    assert "Ibuprofen 200 MG Oral Tablet" in card["detail"]

    q = patient(labs_days=10)
    gel = medication_request("gel-1", q.patient_id, "ibuprofen", status="active")
    gel["medicationCodeableConcept"] = {"text": "diclofenac sodium 10 MG/ML Topical Gel"}
    gel["authoredOn"] = "2026-10-01T09:00:00Z"
    q.resources.append(gel)
    antibiotic = medication_request("ab-1", q.patient_id, "gentamicin", status="active")
    antibiotic["medicationCodeableConcept"] = {"text": "gentamicin (aminoglycoside antibiotic)"}
    antibiotic["authoredOn"] = "2026-10-01T09:00:00Z"
    q.resources.append(antibiotic)
    found = rules(post(q, order(q)))
    assert RULE in found  # the aminoglycoside counts: "antibiotic" is not the otic route
    assert "diclofenac" not in found[RULE]["detail"]
    assert "gentamicin" in found[RULE]["detail"]


def test_local_corticosteroid_is_not_systemic():
    """The dose form in the name decides when no route is stated: dexamethasone eye drops are not a
    systemic corticosteroid (a bone-loss risk factor), dexamethasone tablets are."""
    from hooks.facts.medications import read_medication
    from hooks.knowledge import load_knowledge

    knowledge = load_knowledge()

    def classes(display: str) -> frozenset[str]:
        request = {
            "resourceType": "MedicationRequest",
            "status": "active",
            "medicationCodeableConcept": {"text": display},
        }
        return read_medication(request, {}, knowledge).classes

    assert "systemic-corticosteroid" not in classes("dexamethasone 1 MG/ML Ophthalmic Suspension")
    assert "systemic-corticosteroid" in classes("dexamethasone 4 MG Oral Tablet")


def test_a_low_magnesium_is_to_be_corrected_not_checked_again_first(post):
    p = patient(magnesium=None)
    p.magnesium(3, 1.5, "mg/dL")
    drug(p, "furosemide")
    card = rules(post(p, order(p)))[RULE]
    assert (
        "Correct the magnesium 1.5 mg/dL and hydrate before the dose, then check calcium and"
        " magnesium again (within 7 days)." in card["detail"]
    )
    assert "Check calcium and magnesium (within" not in card["detail"]


@pytest.mark.parametrize(
    "route, systemic",
    [
        ({"text": "PO"}, False),
        ({"text": "By mouth"}, False),
        ({"coding": [{"system": "http://snomed.info/sct", "code": "26643006"}]}, False),
        ({"text": "IV"}, True),
        ({"coding": [{"system": "http://snomed.info/sct", "code": "47625008"}]}, True),
    ],
    ids=["PO", "by-mouth", "snomed-oral", "IV", "snomed-iv"],
)
def test_a_route_given_as_code_or_abbreviation_decides_the_drug_class(route, systemic):
    """Oral vancomycin stays in the gut: only a stated parenteral route makes it a nephrotoxic drug,
    whether the route is written 'PO', 'by mouth' or coded."""
    from hooks.facts.medications import read_medication
    from hooks.knowledge import load_knowledge

    request = {
        "resourceType": "MedicationRequest",
        "status": "active",
        "medicationCodeableConcept": {
            "coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "11124"}],
            "text": "vancomycin",
        },
        "dosageInstruction": [{"route": route}],
    }
    classes = read_medication(request, {}, load_knowledge()).classes
    assert ("nephrotoxic-other" in classes) is systemic
