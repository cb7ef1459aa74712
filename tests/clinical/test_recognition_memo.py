"""What the knowledge remembers between calls (drug recognition, drug classes, dosage readings) and
what each call remembers (renal assessments): equal answers to equal questions, never a stale or
borrowed one, and bounded memory."""

from __future__ import annotations

import copy
import dataclasses
from datetime import UTC, datetime

from hooks.assessments.renal import assess_renal_function
from hooks.drug_recognition import identify_medication
from hooks.facts.build import build_facts
from hooks.facts.medications import read_medication
from hooks.knowledge import load_knowledge
from hooks.knowledge.model import MEMO_LIMIT
from hooks.orders import read_bone_agent_order
from tests.clinical.test_order_reading import ZOMETA_5ML, medication_request

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
NOW = datetime(2026, 10, 15, 10, tzinfo=UTC)


def test_the_same_drug_in_another_key_order_is_one_memo_entry_with_one_answer():
    knowledge = load_knowledge()
    first = [{"coding": [{"system": RXNORM, "code": ZOMETA_5ML[0], "display": ZOMETA_5ML[1]}]}]
    reordered = [{"coding": [{"display": ZOMETA_5ML[1], "code": ZOMETA_5ML[0], "system": RXNORM}]}]
    assert identify_medication(first, knowledge) == identify_medication(reordered, knowledge)
    assert len(knowledge._recognition_memo) == 1


def test_a_changed_dose_in_the_same_request_object_is_read_again():
    knowledge = load_knowledge()
    request = medication_request(*ZOMETA_5ML, 4, "mg", route="intravenous", every=(4, "wk"))
    assert read_bone_agent_order(request, {}, knowledge).dose_mg == 4
    request["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["value"] = 3.5
    again = read_bone_agent_order(request, {}, knowledge)
    assert again.dose_mg == 3.5
    assert again.resource is request  # the order is the request's own, whatever was remembered


def test_remembered_readings_equal_fresh_ones_for_many_shapes():
    remembered = load_knowledge()
    shapes = [
        (*ZOMETA_5ML, 4, "mg", "intravenous", (4, "wk")),
        (*ZOMETA_5ML, 5, "mL", "intravenous", (12, "wk")),
        ("904431", "Alendronic acid 70 MG Oral Tablet", 1, "{pill}", None, (1, "wk")),
        (None, "denosumab 120 MG/1.7 ML Injection", 120, "mg", "subcutaneous", (4, "wk")),
        ("999990001", "ibandronate 150 MG Oral Tablet", 1, "tablet", "oral", (1, "mo")),
    ]
    for code, name, value, unit, route, every in shapes * 3:
        request = medication_request(code, name, value, unit, route=route, every=every)
        fresh = read_bone_agent_order(copy.deepcopy(request), {}, load_knowledge())
        again = read_bone_agent_order(request, {}, remembered)
        assert fresh is not None and again is not None
        assert dataclasses.replace(again, resource={}) == dataclasses.replace(fresh, resource={})


def test_drug_classes_follow_the_route_of_each_request():
    knowledge = load_knowledge()
    gel = {
        "resourceType": "MedicationRequest",
        "status": "active",
        "medicationCodeableConcept": {"text": "diclofenac sodium 10 MG/ML Topical Gel"},
    }
    tablet = {**gel, "medicationCodeableConcept": {"text": "diclofenac sodium 75 MG Oral Tablet"}}
    stated_topical = {**tablet, "dosageInstruction": [{"route": {"text": "topical"}}]}
    assert "nsaid" not in read_medication(gel, {}, knowledge).classes
    assert "nsaid" in read_medication(tablet, {}, knowledge).classes
    # the same drug text, remembered as systemic, given topically: the stated route decides
    assert "nsaid" not in read_medication(stated_topical, {}, knowledge).classes


def test_the_memo_stays_bounded_under_endless_distinct_drugs():
    knowledge = load_knowledge()
    for serial in range(MEMO_LIMIT + 50):
        identify_medication([{"text": f"unknown drug {serial}"}], knowledge)
    assert len(knowledge._recognition_memo) <= MEMO_LIMIT + 1


def test_a_replaced_knowledge_does_not_answer_from_the_originals_memory():
    original = load_knowledge()
    concept = [{"coding": [{"system": RXNORM, "code": ZOMETA_5ML[0], "display": ZOMETA_5ML[1]}]}]
    assert identify_medication(concept, original) is not None
    without_products = dataclasses.replace(
        original, product_by_rxnorm={}, ingredient_by_rxnorm={}, ingredient_name_fragments=()
    )
    assert without_products._recognition_memo == {}
    found = identify_medication(concept, without_products)
    assert found is None or found.recognised_by != "RxNorm product code"


def test_renal_assessments_are_worked_out_once_per_call_and_per_question():
    knowledge = load_knowledge()
    patient = {"resourceType": "Patient", "id": "p", "gender": "female", "birthDate": "1960-01-01"}
    creatinine = {
        "resourceType": "Observation",
        "id": "cr",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "2160-0"}]},
        "effectiveDateTime": "2026-10-10",
        "valueQuantity": {"value": 1.1, "unit": "mg/dL", "code": "mg/dL"},
    }
    weight = {
        **creatinine,
        "id": "wt",
        "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
        "valueQuantity": {"value": 70, "unit": "kg", "code": "kg"},
    }
    facts = build_facts(patient, [creatinine, weight], {}, knowledge, NOW)
    result = facts.results("creatinine")[0]
    first = assess_renal_function(facts, result, 90, 30, current=True)
    assert first.function is not None
    assert assess_renal_function(facts, result, 90, 30, current=True) is first
    other_question = assess_renal_function(facts, result, 1, 30, current=True)
    assert other_question is not first and other_question.function is None  # no weight in 1 day
    fresh = build_facts(patient, [creatinine, weight], {}, knowledge, NOW)
    assert assess_renal_function(fresh, fresh.results("creatinine")[0], 90, 30, current=True) == (
        first
    )
