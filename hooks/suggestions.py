"""Builders for the FHIR resources that suggestions carry: lab orders, draft updates and draft deletions."""
from __future__ import annotations

import copy
from datetime import datetime
from typing import Any

from hooks.cards import Action, Suggestion
from hooks.knowledge import Knowledge
from hooks.orders import BoneAgentOrder, normalised_draft

LABORATORY_CATEGORY = {"system": "http://snomed.info/sct", "code": "108252007", "display": "Laboratory procedure"}


def order_observation(knowledge: Knowledge, orderable: str, patient_reference: str, requester: str | None,
                      now: datetime, reason: str) -> Suggestion:
    """Suggest a draft ServiceRequest for a measurement named in the knowledge file's orderables."""
    entry = knowledge.raw["orderables"][orderable]
    resource: dict[str, Any] = {
        "resourceType": "ServiceRequest",
        "status": "draft",
        "intent": "order",
        "category": [{"coding": [LABORATORY_CATEGORY]}],
        "code": {"coding": [{"system": knowledge.systems["loinc"], "code": entry["loinc"], "display": entry["display"]}],
                 "text": entry["display"]},
        "subject": {"reference": patient_reference},
        "authoredOn": now.isoformat(timespec="seconds").replace("+00:00", "Z"),
        "reasonCode": [{"text": reason}],
    }
    if requester:
        resource["requester"] = {"reference": requester}
    return Suggestion(f"Order {entry['display'].split(' [')[0].lower()}",
                      (Action("create", f"Create a draft order: {entry['display']}", resource=resource),))


def delete_draft(order: BoneAgentOrder, label: str) -> Suggestion | None:
    """Remove the draft order being signed; impossible when the draft has no id."""
    if order.reference is None:
        return None
    return Suggestion(label, (Action("delete", f"Remove the draft order for {order.describe()}", resource_id=order.reference),))


def update_draft_dose(order: BoneAgentOrder, dose_mg: float, label: str) -> Suggestion | None:
    """The draft order with its dose replaced (whole resource, as CDS Hooks update actions require)."""
    if order.reference is None:
        return None
    updated = normalised_draft(order.resource)
    dosages = updated.setdefault("dosageInstruction", [{}])
    if not dosages:
        dosages.append({})
    first = dosages[0]
    new_dose = {"value": dose_mg, "unit": "mg", "system": "http://unitsofmeasure.org", "code": "mg"}
    rates = first.get("doseAndRate") if isinstance(first.get("doseAndRate"), list) else []
    if rates and isinstance(rates[0], dict):
        rates[0] = {**copy.deepcopy(rates[0]), "doseQuantity": new_dose}
    else:
        rates = [{"doseQuantity": new_dose}]
    first["doseAndRate"] = rates
    if isinstance(first.get("text"), str):
        first["text"] = f"{first['text']} (dose changed to {dose_mg:g} mg)"
    return Suggestion(label, (Action("update", f"Change the dose of the draft order to {dose_mg:g} mg", resource=updated),),
                      is_recommended=True)
