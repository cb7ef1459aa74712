"""The suggestion validator refuses exactly what fhir.resources refuses, while each recurring
element (product concept, dosage, code) is checked once per process and patient-specific parts are
never kept."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from hooks.fhir_validation import SuggestionValidator, validate_fhir_resource


def dose_update(patient: str = "p1", dose: Any = 3.3) -> dict[str, Any]:
    """A zoledronic acid draft at a reduced dose, in the shape the renal-band suggestion sends."""
    return {
        "resourceType": "MedicationRequest",
        "id": f"{patient}-draft",
        "status": "draft",
        "intent": "order",
        "medicationCodeableConcept": {
            "coding": [
                {
                    "system": "http://www.nlm.nih.gov/research/umls/rxnorm",
                    "code": "1865665",
                    "display": "zoledronic acid 4 MG Injection",
                }
            ],
            "text": "zoledronic acid 4 MG Injection",
        },
        "subject": {"reference": f"Patient/{patient}"},
        "authoredOn": "2026-10-15",
        "dosageInstruction": [
            {
                "timing": {"repeat": {"frequency": 1, "period": 12, "periodUnit": "wk"}},
                "route": {"coding": [{"system": "http://snomed.info/sct", "code": "47625008"}]},
                "doseAndRate": [
                    {
                        "doseQuantity": {
                            "value": dose,
                            "unit": "mg",
                            "system": "http://unitsofmeasure.org",
                            "code": "mg",
                        }
                    }
                ],
            }
        ],
    }


def lab_order(patient: str = "p1") -> dict[str, Any]:
    return {
        "resourceType": "ServiceRequest",
        "status": "draft",
        "intent": "order",
        "category": [{"coding": [{"system": "http://snomed.info/sct", "code": "108252007"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "2160-0"}]},
        "subject": {"reference": f"Patient/{patient}"},
    }


def changed(resource: dict[str, Any], change) -> dict[str, Any]:
    copied = copy.deepcopy(resource)
    change(copied)
    return copied


def _set(path: list[Any], value: Any):
    def change(resource: dict[str, Any]) -> None:
        target = resource
        for step in path[:-1]:
            target = target[step]
        target[path[-1]] = value

    return change


def _drop(key: str):
    return lambda resource: resource.pop(key)


DOSE = ["dosageInstruction", 0, "doseAndRate", 0, "doseQuantity"]
VARIANTS = [
    ("valid", lambda r: None),
    ("dose as text", _set([*DOSE, "value"], "three")),
    ("unknown period unit", _set(["dosageInstruction", 0, "timing", "repeat", "periodUnit"], 5)),
    ("null dose-and-rate item", _set(["dosageInstruction", 0, "doseAndRate"], [None])),
    ("null dosage", _set(["dosageInstruction"], [None])),
    ("dosage not a list", _set(["dosageInstruction"], {"text": "once"})),
    ("dosage a string", _set(["dosageInstruction"], ["once"])),
    ("unknown dosage element", _set(["dosageInstruction", 0, "strength"], "4 mg")),
    ("coding not a list", _set(["medicationCodeableConcept", "coding"], {"code": "1"})),
    ("two medication choices", _set(["medicationReference"], {"reference": "Medication/m"})),
    ("no medication", _drop("medicationCodeableConcept")),
    ("no subject", _drop("subject")),
    ("bad status type", _set(["status"], 7)),
    ("bad date", _set(["authoredOn"], "15/10/2026")),
    ("unknown element", _set(["dosage"], [])),
]


def refused(validate, resource: dict[str, Any]) -> bool:
    try:
        validate(resource)
    except Exception:
        return True
    return False


@pytest.mark.parametrize(("name", "change"), VARIANTS, ids=[name for name, _ in VARIANTS])
def test_refuses_what_fhir_resources_refuses(name, change):
    resource = changed(dose_update(), change)
    expected = refused(validate_fhir_resource, resource)
    assert expected is (name != "valid")
    # a fresh validator, and one that has already checked the valid elements of the same order
    warm = SuggestionValidator()
    warm.validate(dose_update())
    for validator in (SuggestionValidator(), warm):
        assert refused(validator.validate, copy.deepcopy(resource)) is expected
        assert refused(validator.validate, copy.deepcopy(resource)) is expected  # and again


def test_returns_the_resource_unchanged():
    resource = dose_update()
    before = copy.deepcopy(resource)
    assert SuggestionValidator().validate(resource) is resource
    assert resource == before


def test_recurring_elements_are_kept_once_and_patient_parts_never():
    validator = SuggestionValidator()
    for patient in range(40):
        validator.validate(dose_update(f"p{patient}"))
        validator.validate(lab_order(f"p{patient}"))
    # medication concept and dosage of the order; category and code of the lab order
    assert len(validator) == 4
    validator.validate(dose_update(dose=2.0))  # another dose: one more dosage
    assert len(validator) == 5


def test_an_invalid_element_is_never_kept():
    validator = SuggestionValidator()
    bad = changed(dose_update(), _set([*DOSE, "value"], "three"))
    for _ in range(2):
        with pytest.raises(ValueError):
            validator.validate(bad)
    assert len(validator) <= 1  # the medication concept, if it was checked before the dosage
    validator.validate(dose_update())
    assert len(validator) == 2  # the concept and the valid dosage: the invalid one was not kept


def test_the_memo_stays_within_its_limit():
    validator = SuggestionValidator(limit=3)
    for dose in range(1, 20):
        validator.validate(dose_update(dose=float(dose)))
        assert len(validator) <= 3
    assert not refused(validator.validate, dose_update(dose=4.0))


def test_a_dosage_with_the_clinicians_text_is_checked_every_time_and_never_kept():
    validator = SuggestionValidator()
    written = changed(
        dose_update(), _set(["dosageInstruction", 0, "text"], "after dialysis on Tuesdays")
    )
    instructed = changed(
        dose_update(), _set(["dosageInstruction", 0, "patientInstruction"], "sit upright")
    )
    for resource in (written, instructed):
        validator.validate(resource)
    assert len(validator) == 1  # the medication concept only
    bad = changed(written, _set([*DOSE, "value"], "three"))
    assert refused(validator.validate, bad) and refused(validate_fhir_resource, bad)
