"""Builders for the FHIR resources that suggestions carry: lab and dental orders, supplements, draft
updates, deletions."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from hooks.cards import Action, Suggestion
from hooks.fhir_read import json_copy, object_at
from hooks.knowledge import Knowledge
from hooks.orders import BoneAgentOrder, normalised_draft
from hooks.suggestion_labels import dose_label, every_words, orderable_name, timing_label

LABORATORY_CATEGORY = {
    "system": "http://snomed.info/sct",
    "code": "108252007",
    "display": "Laboratory procedure",
}
ROUTE_CODES = {
    "intravenous": ("47625008", "Intravenous route"),
    "oral": ("26643006", "Oral route"),
    "subcutaneous": ("34206005", "Subcutaneous route"),
}
UCUM = "http://unitsofmeasure.org"
REPLACES = "Replace the draft with"  # how a regimen change describes itself (proposals read it)


def _instant(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def _requested_by(resource: dict[str, Any], requester: str | None) -> dict[str, Any]:
    if requester:
        resource["requester"] = {"reference": requester}
    return resource


def order_observation(
    knowledge: Knowledge,
    orderable: str,
    patient_reference: str,
    requester: str | None,
    now: datetime,
    reason: str,
    within_days: int | None = None,
    repeat: tuple[datetime, dict[str, Any], str] | None = None,
) -> Suggestion:
    """Suggest a draft ServiceRequest for a measurement or examination named in the knowledge file's
    orderables; `repeat` (start, Timing.repeat fields, words) makes it a series such as weekly x
    4."""
    entry = knowledge.raw["orderables"][orderable]
    system = knowledge.systems[entry.get("system", "loinc")]
    code = entry.get("code", entry.get("loinc"))
    resource: dict[str, Any] = {
        "resourceType": "ServiceRequest",
        "status": "draft",
        "intent": "order",
        "category": (
            [{"coding": [LABORATORY_CATEGORY]}]
            if "loinc" in entry
            else [{"text": entry.get("category_text", "Procedure")}]
        ),
        "code": {
            "coding": [{"system": system, "code": code, "display": entry["display"]}],
            "text": entry["display"],
        },
        "subject": {"reference": patient_reference},
        "authoredOn": _instant(now),
        "reasonCode": [{"text": reason}],
    }
    if entry.get("reason"):
        coded = entry["reason"]
        resource["reasonCode"][0]["coding"] = [
            {
                "system": knowledge.systems[coded["system"]],
                "code": coded["code"],
                "display": coded["display"],
            }
        ]
    if within_days is not None:
        resource["occurrencePeriod"] = {
            "start": _instant(now),
            "end": _instant(now + timedelta(days=within_days)),
        }
    if repeat is not None:
        start, fields, _ = repeat
        resource["occurrenceTiming"] = {
            "repeat": {"boundsPeriod": {"start": _instant(start)}, **fields}
        }
    _requested_by(resource, requester)
    when = f" within {within_days} days" if within_days is not None else ""
    when += f" {repeat[2]}" if repeat is not None else ""
    return Suggestion(
        f"Order {orderable_name(entry)}{when}",
        (Action("create", f"Create a draft order: {entry['display']}{when}", resource=resource),),
    )


def delete_draft(order: BoneAgentOrder, label: str = "Remove this order") -> Suggestion | None:
    """Remove a draft order; impossible when the draft has no id."""
    if order.reference is None:
        return None
    return Suggestion(
        label,
        (
            Action(
                "delete",
                f"Remove the draft order for {order.describe()}",
                resource_id=order.reference,
            ),
        ),
    )


def update_draft(
    order: BoneAgentOrder,
    label: str,
    description: str,
    change: Callable[[dict[str, Any]], None],
    recommended: bool = True,
) -> Suggestion | None:
    """The whole draft with one change applied (CDS Hooks update actions carry the complete
    resource)."""
    if order.reference is None:
        return None
    updated = normalised_draft(order.resource)
    dosages = updated.setdefault("dosageInstruction", [{}])
    if not dosages or not isinstance(dosages[0], dict):
        dosages[:1] = [{}]
    change(updated)
    return Suggestion(
        label, (Action("update", description, resource=updated),), is_recommended=recommended
    )


def note_change(dosage: dict[str, Any], change: str) -> None:
    """The sig text, when there is one, says what the suggestion changed (its structured dose and
    timing are what the EHR reads; the text is what a pharmacist reads)."""
    if isinstance(dosage.get("text"), str):
        dosage["text"] = f"{dosage['text']} ({change})"


def set_dose(dosage: dict[str, Any], dose_mg: float) -> None:
    new_dose = {"value": dose_mg, "unit": "mg", "system": UCUM, "code": "mg"}
    rates = dosage.get("doseAndRate") if isinstance(dosage.get("doseAndRate"), list) else []
    if rates and isinstance(rates[0], dict):
        rates[0] = {**json_copy(rates[0]), "doseQuantity": new_dose}
    else:
        rates = [{"doseQuantity": new_dose}]
    dosage["doseAndRate"] = rates


def _repeat(dosage: dict[str, Any]) -> dict[str, Any]:
    timing = object_at(dosage, "timing")
    repeat = object_at(timing, "repeat")
    timing["repeat"] = repeat
    dosage["timing"] = timing
    return repeat


def update_draft_dose(
    order: BoneAgentOrder, dose_mg: float, label: str | None = None
) -> Suggestion | None:
    """Change the draft's dose; the label says to what (dose_label) unless one is given."""

    def change(draft: dict[str, Any]) -> None:
        set_dose(draft["dosageInstruction"][0], dose_mg)
        note_change(draft["dosageInstruction"][0], f"dose changed to {dose_mg:g} mg")

    return update_draft(
        order,
        label or dose_label(order.dose_mg, dose_mg),
        f"Change the dose of the draft order to {dose_mg:g} mg",
        change,
    )


def update_draft_timing(
    order: BoneAgentOrder,
    label: str | None = None,
    every: tuple[float, str] | None = None,
    not_before: datetime | None = None,
    single_dose: bool = False,
) -> Suggestion | None:
    """Set the draft's repeat interval, make it a single dose, and/or make it start no earlier than
    a date; the label says to what (timing_label) unless one is given."""

    def change(draft: dict[str, Any]) -> None:
        repeat = _repeat(draft["dosageInstruction"][0])
        if single_dose:
            for key in (
                "frequency",
                "frequencyMax",
                "period",
                "periodMax",
                "periodUnit",
                "dayOfWeek",
                "timeOfDay",
            ):
                repeat.pop(key, None)
            repeat["count"] = 1
        if every is not None:
            repeat.update(frequency=1, period=every[0], periodUnit=every[1])
        if not_before is not None:
            repeat["boundsPeriod"] = {"start": not_before.date().isoformat()}
        note_change(draft["dosageInstruction"][0], f"timing changed to {', '.join(parts)}")

    parts = (
        (["a single dose"] if single_dose else [])
        + ([every_words(every)] if every else [])
        + ([f"starting {not_before.date().isoformat()}"] if not_before else [])
    )
    return update_draft(
        order,
        label or timing_label(every, not_before, single_dose),
        f"Change the timing of the draft order to {', '.join(parts)}",
        change,
    )


def update_draft_infusion(
    order: BoneAgentOrder, minutes: float, label: str | None = None
) -> Suggestion | None:
    def change(draft: dict[str, Any]) -> None:
        repeat = _repeat(draft["dosageInstruction"][0])
        repeat.update(duration=minutes, durationUnit="min")
        note_change(draft["dosageInstruction"][0], f"infused over at least {minutes:g} minutes")

    return update_draft(
        order,
        label or f"Infuse over {minutes:g} minutes",
        f"Infuse the draft order over {minutes:g} minutes",
        change,
    )


def regimen_medication(knowledge: Knowledge, regimen: dict[str, Any]) -> dict[str, Any]:
    """The CodeableConcept a regimen names: a product of the product table, or a [system key, code,
    display] triple."""
    if "product" in regimen:
        product = knowledge.product_by_rxnorm[regimen["product"]]
        system, code, display = knowledge.systems["rxnorm"], product.rxnorm, product.display
    else:
        key, code, display = regimen["medication"]
        system = knowledge.systems[key]
    return {"coding": [{"system": system, "code": code, "display": display}], "text": display}


def _apply_regimen(knowledge: Knowledge, regimen: dict[str, Any], dosage: dict[str, Any]) -> None:
    set_dose(dosage, regimen["dose_mg"])
    route_code, route_display = ROUTE_CODES[regimen["route"]]
    dosage["route"] = {
        "coding": [
            {"system": knowledge.systems["snomed"], "code": route_code, "display": route_display}
        ]
    }
    repeat = _repeat(dosage)
    for key in (
        "frequency",
        "frequencyMax",
        "period",
        "periodMax",
        "periodUnit",
        "duration",
        "durationUnit",
        "boundsPeriod",
        "count",
        "dayOfWeek",
        "timeOfDay",
    ):
        repeat.pop(key, None)
    dosage.pop("patientInstruction", None)  # another drug's instructions do not carry over
    repeat.update(frequency=1, period=regimen["every"][0], periodUnit=regimen["every"][1])
    if regimen.get("infusion_minutes"):
        repeat.update(duration=regimen["infusion_minutes"], durationUnit="min")
    dosage["text"] = regimen["label"]


def replace_draft_regimen(
    order: BoneAgentOrder,
    knowledge: Knowledge,
    regimen: dict[str, Any],
    recommended: bool,
    fallback: bool = False,
) -> Suggestion | None:
    """Turn the draft into another regimen (product, dose, route, interval, infusion time) in one
    update.

    A draft of the same drug already dosed lower (a renal reduction) keeps its dose.
    """
    dose = regimen["dose_mg"]
    same_drug = order.formulation is not None and order.formulation.id == regimen.get("formulation")
    if same_drug and order.dose_mg is not None and order.dose_mg < dose - 1e-9:
        regimen = {
            **regimen,
            "dose_mg": order.dose_mg,
            "label": regimen["label"].replace(f"{dose:g} mg", f"{order.dose_mg:g} mg"),
        }

    def change(draft: dict[str, Any]) -> None:
        draft.pop("medicationReference", None)
        draft["medicationCodeableConcept"] = regimen_medication(knowledge, regimen)
        _apply_regimen(knowledge, regimen, draft["dosageInstruction"][0])

    suggestion = update_draft(
        order,
        f"Change to {regimen['label']}",
        f"{REPLACES} {regimen['label']}",
        change,
        recommended=recommended,
    )
    return dataclasses.replace(suggestion, fallback=fallback) if suggestion else None


def regimen_entry(knowledge: Knowledge, key: str) -> dict[str, Any]:
    return knowledge.raw["regimens"]["entries"][key]


def prescribe_regimen(
    knowledge: Knowledge,
    regimen_key: str,
    patient_reference: str,
    requester: str | None,
    now: datetime,
    reason: str,
    recommended: bool = False,
) -> Suggestion:
    """Suggest a new draft MedicationRequest for a guideline regimen of the knowledge file (patient-
    view review)."""
    regimen = knowledge.raw["regimens"]["entries"][regimen_key]
    dosage: dict[str, Any] = {}
    _apply_regimen(knowledge, regimen, dosage)
    resource = _requested_by(
        {
            "resourceType": "MedicationRequest",
            "status": "draft",
            "intent": "order",
            "medicationCodeableConcept": regimen_medication(knowledge, regimen),
            "subject": {"reference": patient_reference},
            "authoredOn": _instant(now),
            "reasonCode": [{"text": reason}],
            "dosageInstruction": [dosage],
        },
        requester,
    )
    return Suggestion(
        f"Order {regimen['label']}",
        (Action("create", f"Create a draft order: {regimen['label']}", resource=resource),),
        is_recommended=recommended,
    )
