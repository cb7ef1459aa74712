"""Validation of the FHIR resources a card suggests, against fhir.resources' R4B models."""

from __future__ import annotations

import threading
import typing
from typing import Any

import orjson
from fhir.resources.R4B import get_fhir_model_class

# The elements of a suggested order that say what is ordered and how (product concept, dosage, lab
# code, category): the same for every patient given the same product and dose, so each distinct one
# is validated once per process. What names the patient, the encounter, the author or a date is
# validated with the whole resource every time, and never fills the memo.
RECURRING_ELEMENTS = frozenset(
    {"medicationCodeableConcept", "dosageInstruction", "code", "category", "dispenseRequest"}
)
MEMO_LIMIT = 512  # distinct elements; a product table's products times its doses stay well below
# Free text a clinician may write into an element ("give after dialysis on Tuesdays"): an element
# carrying it is validated on every call and not kept, so no text about a patient outlives the call.
# (A concept's text is the drug's or the test's name.)
CLINICIAN_TEXT = {"dosageInstruction": frozenset({"text", "patientInstruction"})}


def validate_fhir_resource(resource: dict[str, Any]) -> dict[str, Any]:
    """Check a resource against the R4B model and return it unchanged; raises if invalid."""
    get_fhir_model_class(resource["resourceType"]).model_validate(resource)
    return resource


class SuggestionValidator:
    """Validates suggested resources as `validate_fhir_resource` does, with the recurring elements
    checked once per process: a model accepts an already validated element as it is, and an element
    is checked on its own exactly as it is inside its resource (no FHIR rule reaches across them).
    """

    def __init__(self, limit: int = MEMO_LIMIT) -> None:
        self.limit = limit
        self._validated: dict[tuple[str, bytes], Any] = {}
        self._element_models: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()

    def validate(self, resource: dict[str, Any]) -> dict[str, Any]:
        """Check a resource against the R4B model and return it unchanged; raises if invalid."""
        model = get_fhir_model_class(resource["resourceType"])
        checked = dict(resource)
        for name in RECURRING_ELEMENTS.intersection(resource):
            key = (resource["resourceType"], name)
            if key not in self._element_models:
                self._element_models[key] = _element_model(model, name)
            element_model = self._element_models[key]
            value = resource[name]
            if element_model is None or value is None:
                continue
            free_text = CLINICIAN_TEXT.get(name, frozenset())
            if isinstance(value, list):
                checked[name] = [self._element(element_model, item, free_text) for item in value]
            else:
                checked[name] = self._element(element_model, value, free_text)
        model.model_validate(checked)
        return resource

    def _element(self, model: Any, value: Any, free_text: frozenset[str]) -> Any:
        if not isinstance(value, dict):
            return value  # left to the resource's own validation, which refuses it
        key = _memo_key(model, value) if free_text.isdisjoint(value) else None
        if key is None:
            return model.model_validate(value)  # checked, not kept
        found = self._validated.get(key)
        if found is None:
            found = model.model_validate(value)  # raises for an invalid element: nothing kept
            with self._lock:
                if len(self._validated) >= self.limit:
                    self._validated.clear()
                self._validated[key] = found
        return found

    def __len__(self) -> int:
        return len(self._validated)


def _memo_key(model: Any, value: dict[str, Any]) -> tuple[str, bytes] | None:
    """The element's model and its JSON with sorted keys; None when it is not JSON-shaped (a
    non-string key)."""
    try:
        return model.__name__, orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError:
        return None


def _element_model(model: Any, name: str) -> Any:
    """The R4B model of a resource's complex element (`Dosage` for `dosageInstruction`), or None."""
    field = model.model_fields.get(name)
    if field is None:
        return None
    pending = [field.annotation]
    while pending:
        candidate = pending.pop()
        klass = getattr(candidate, "get_model_klass", None)
        if klass is not None:
            return klass()
        pending.extend(typing.get_args(candidate))
    return None
