"""Accept a suggestion and sign again: the harness behind "a suggestion is an order"
(tests/clinical/test_suggestions_resign.py).

A CDS client that shows a card's suggestion and lets the clinician accept it applies the
suggestion's actions to the draft orders and, when the clinician signs, calls order-sign again. This
module plays that client, black-box, through the Flask test client:

- `apply_suggestion(body, suggestion)` applies one suggestion's actions to a request body (a deep
  copy);
- `resign(client, service_id, body)` posts the body, then accepts each suggestion of each card in
  turn (one at a time, each from the original body) and posts the result again, and returns what
  came back per suggestion;
- `suggestion_signature(suggestion)` names what a suggestion orders, to compare suggestions across
  answers.

Which cards "concern" the accepted order (`ResignResult.concerning`)
---------------------------------------------------------------------
Rendered cards do not name the order they are about, so this is decided by a second, *isolated*
sign: when the accepted suggestion creates or updates a bone-agent MedicationRequest, the request is
posted once more with that order as the only bone-agent draft (every other bone-agent
MedicationRequest is taken out of draftOrders; non-bone drafts such as a calcium supplement or a lab
ServiceRequest stay, because the service counts them as companions: calcium drafted alongside, a lab
already ordered). The service evaluates every rule per bone-agent order in draftOrders, so every
card of that isolated answer is a card on the accepted order - including the patient-level ones
(pregnancy, allergy, low calcium, an active bone agent on record), which are exactly the ones a
suggestion must not walk into.

What this deliberately leaves out: a conflict *between two drafts of the same order set*
(duplicate-bone-agent between the accepted order and another bone-agent draft of the same request).
Each of the two drafts gets its own card with its own "remove" suggestion, so a dose change offered
on one is not wrong on its own; whether the other draft stays is the clinician's other decision. The
full re-sign (all remaining drafts) is still posted and kept in `ResignResult.cards` for the "no
identical suggestion offered again" check and for failure messages.

When there is no other bone-agent draft the full re-sign already is the isolated one, and no second
post is made.
For order-select bodies the isolated sign selects only the accepted order.
"""

from __future__ import annotations

import copy
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from fixtures.builder import MEDICATIONS

BONE_AGENT_FRAGMENTS = (
    "zoledron",
    "pamidron",
    "ibandron",
    "alendron",
    "risedron",
    "clodron",
    "etidron",
    "denosumab",
)
BONE_AGENT_RXNORM = frozenset(
    code
    for key, (_system, code, _display) in MEDICATIONS.items()
    if any(fragment in key for fragment in BONE_AGENT_FRAGMENTS)
)
SERVICE_FOR_HOOK = {
    "order-sign": "bonecds-order-sign",
    "order-select": "bonecds-order-select",
    "patient-view": "bonecds-patient-view",
}


# --- reading resources ----------------------------------------------------------------------------


def medication_name(resource: dict) -> str:
    """The medicationCodeableConcept text, else its first coding's display (else code), else ''."""
    concept = resource.get("medicationCodeableConcept") or {}
    if not isinstance(concept, dict):
        return ""
    if isinstance(concept.get("text"), str) and concept["text"]:
        return concept["text"]
    for coding in concept.get("coding") or []:
        if isinstance(coding, dict) and (coding.get("display") or coding.get("code")):
            return str(coding.get("display") or coding.get("code"))
    return ""


def is_bone_agent(resource: Any) -> bool:
    """A MedicationRequest for a bone-modifying agent, by name fragment or by the fixtures' RxNorm
    codes."""
    if not isinstance(resource, dict) or resource.get("resourceType") != "MedicationRequest":
        return False
    concept = resource.get("medicationCodeableConcept") or {}
    names = [concept.get("text")] + [
        c.get("display") for c in concept.get("coding") or [] if isinstance(c, dict)
    ]
    if any(isinstance(n, str) and any(f in n.lower() for f in BONE_AGENT_FRAGMENTS) for n in names):
        return True
    return any(
        isinstance(c, dict) and c.get("code") in BONE_AGENT_RXNORM
        for c in concept.get("coding") or []
    )


def _first_dosage(resource: dict) -> dict:
    dosages = resource.get("dosageInstruction")
    if isinstance(dosages, dict):
        return dosages
    return next((d for d in dosages or [] if isinstance(d, dict)), {})


def _dose_text(resource: dict) -> str:
    rates = _first_dosage(resource).get("doseAndRate") or []
    quantity = rates[0].get("doseQuantity") if rates and isinstance(rates[0], dict) else None
    if not isinstance(quantity, dict) or quantity.get("value") is None:
        return "no dose"
    value = quantity["value"]
    value = (
        f"{value:g}"
        if isinstance(value, (int, float)) and not isinstance(value, bool)
        else str(value)
    )
    return f"{value} {quantity.get('unit') or quantity.get('code') or ''}".strip()


def _timing_text(resource: dict) -> str:
    timing = _first_dosage(resource).get("timing") or {}
    repeat = timing.get("repeat") if isinstance(timing, dict) else None
    if not isinstance(repeat, dict):
        return "once"
    bounds = repeat.get("boundsPeriod") if isinstance(repeat.get("boundsPeriod"), dict) else {}
    start = f" from {bounds['start']}" if bounds.get("start") else ""
    if "period" not in repeat:
        return f"once{start}"
    frequency, period, unit = (
        repeat.get("frequency", 1),
        repeat.get("period"),
        repeat.get("periodUnit", ""),
    )
    period = (
        f"{period:g}"
        if isinstance(period, (int, float)) and not isinstance(period, bool)
        else str(period)
    )
    times = "" if frequency == 1 else f"{frequency}x "
    return f"{times}every {period} {unit}{start}".strip()


def suggestion_signature(suggestion: dict) -> str:
    """What a suggestion orders, short and stable: e.g. 'update MedicationRequest denosumab 120 mg
    every 4 wk', 'create ServiceRequest 2160-0', 'delete MedicationRequest/x' (several actions
    joined with ' + '); a start date set on the timing (boundsPeriod.start) is shown as 'from YYYY-
    MM-DD'.

    A delete names its target (unlike a bare 'delete'), so that removing one draft is not mistaken
    for removing another. The label, uuid, reason and authoredOn are left out: they change from
    answer to answer without changing the order.
    """
    parts = []
    for action in suggestion.get("actions", []):
        kind = action.get("type", "?")
        resource = action.get("resource")
        if kind == "delete":
            parts.append(f"delete {action.get('resourceId', '')}".strip())
        elif not isinstance(resource, dict):
            parts.append(kind)
        elif resource.get("resourceType") == "MedicationRequest":
            parts.append(
                f"{kind} MedicationRequest {medication_name(resource) or 'unnamed'}"
                f" {_dose_text(resource)} {_timing_text(resource)}"
            )
        else:
            codings = (resource.get("code") or {}).get("coding") or [{}]
            parts.append(
                f"{kind} {resource.get('resourceType')} {codings[0].get('code', 'uncoded')}"
            )
    return " + ".join(parts)


def rule_of(card: dict) -> str:
    return card["source"]["topic"]["code"]


def _reference(resource: dict) -> str:
    return f"{resource.get('resourceType')}/{resource.get('id')}"


# --- applying a suggestion ------------------------------------------------------------------------


def _entries(body: dict) -> list[dict]:
    bundle = body["context"].setdefault("draftOrders", {"resourceType": "Bundle", "entry": []})
    return bundle.setdefault("entry", [])


def _new_id(taken: set[str], n: int) -> str:
    while f"accepted-{n}" in taken:
        n += 1
    return f"accepted-{n}"


def apply_suggestion(body: dict, suggestion: dict, *, prefetch: dict | None = None) -> dict:
    """A deep copy of `body` with the suggestion's actions applied to context.draftOrders.

    update: replaces the draft with the action resource's resourceType/id (added when there is none
    to replace); create: adds the resource as a new draft (id 'accepted-<n>' when it has none);
    delete: removes the draft named by resourceId. A patient-view body becomes an order-sign request
    for the same patient, whose draftOrders hold what was created; it keeps the body's prefetch
    unless `prefetch` is given (order-sign asks for more than patient-view: a client honouring its
    templates sends renal, calcium, dental... data too), and fhirServer/fhirAuthorization.
    order-select selections follow the drafts: a created or updated bone agent is selected, a
    deleted selection is replaced by the remaining bone-agent drafts (or by any remaining draft, the
    schema wants one).
    """
    new = copy.deepcopy(body)
    if new.get("hook") == "patient-view":
        new = {
            "hook": "order-sign",
            "hookInstance": str(uuid.uuid4()),
            "context": {
                "userId": body["context"].get("userId"),
                "patientId": body["context"]["patientId"],
                "draftOrders": {"resourceType": "Bundle", "entry": []},
            },
        }
        for key in ("fhirServer", "fhirAuthorization", "prefetch"):
            if key in body:
                new[key] = copy.deepcopy(body[key])
    else:
        new["hookInstance"] = str(uuid.uuid4())
    if prefetch is not None:
        new["prefetch"] = copy.deepcopy(prefetch)
    entries = _entries(new)
    taken = {e["resource"].get("id") for e in entries if isinstance(e.get("resource"), dict)}
    selections = new["context"].get("selections")
    for n, action in enumerate(suggestion.get("actions", []), 1):
        kind = action.get("type")
        resource = copy.deepcopy(action.get("resource"))
        if kind == "delete":
            target = action["resourceId"]
            entries[:] = [
                e
                for e in entries
                if not (isinstance(e.get("resource"), dict) and _reference(e["resource"]) == target)
            ]
            if selections is not None and target in selections:
                selections.remove(target)
        elif kind == "update":
            index = next(
                (
                    i
                    for i, e in enumerate(entries)
                    if isinstance(e.get("resource"), dict)
                    and e["resource"].get("resourceType") == resource.get("resourceType")
                    and e["resource"].get("id") == resource.get("id")
                ),
                None,
            )
            if index is None:
                entries.append({"resource": resource})
            else:
                entries[index] = {**entries[index], "resource": resource}
            if (
                selections is not None
                and is_bone_agent(resource)
                and _reference(resource) not in selections
            ):
                selections.append(_reference(resource))
        elif kind == "create":
            if not resource.get("id"):
                resource["id"] = _new_id(taken, n)
            taken.add(resource["id"])
            entries.append({"resource": resource})
            if selections is not None and is_bone_agent(resource):
                selections.append(_reference(resource))
        else:
            raise AssertionError(
                f"unknown action type {kind!r} in suggestion {suggestion.get('label')!r}"
            )
    if selections is not None and not selections:
        remaining = [
            e["resource"]
            for e in entries
            if isinstance(e.get("resource"), dict) and e["resource"].get("id")
        ]
        bone = [_reference(r) for r in remaining if is_bone_agent(r)]
        selections.extend(
            bone or [_reference(r) for r in remaining[:1]] or ["MedicationRequest/none"]
        )
    return new


def isolate(body: dict, order: dict) -> dict:
    """The same request with `order` as its only bone-agent draft (non-bone drafts stay); order-
    select selects it."""
    new = copy.deepcopy(body)
    new["hookInstance"] = str(uuid.uuid4())
    keep = _reference(order)
    entries = _entries(new)
    entries[:] = [
        e
        for e in entries
        if not is_bone_agent(e.get("resource")) or _reference(e["resource"]) == keep
    ]
    if "selections" in new["context"]:
        new["context"]["selections"] = [keep]
    return new


# --- posting --------------------------------------------------------------------------------------


@dataclass
class ResignResult:
    """One accepted suggestion and what signing again gave."""

    rule_id: str  # the rule whose card offered the suggestion
    label: str
    action_types: tuple[str, ...]
    signature: str
    status: int  # HTTP status of the re-sign
    cards: list[dict]  # cards of the re-sign with all remaining drafts
    new_order: dict | None = (
        None  # the bone-agent MedicationRequest the suggestion created or updated, if any
    )
    # cards on that order (see the module docstring)
    concerning: list[dict] = field(default_factory=list)
    service_id: str = ""
    body: dict | None = None  # the re-signed request, to reproduce a failure
    isolated_body: dict | None = None  # the isolated sign's request, when one was needed
    isolated_status: int | None = None

    @property
    def critical(self) -> list[dict]:
        return [c for c in self.concerning if c.get("indicator") == "critical"]


def post(client, service_id: str, body: dict):
    return client.post(
        f"/cds-services/{service_id}", data=json.dumps(body), content_type="application/json"
    )


def _cards(response) -> list[dict]:
    return response.get_json()["cards"] if response.status_code == 200 else []


def resign(
    client, service_id: str, body: dict, *, order_sign_prefetch: dict | None = None
) -> tuple[list[dict], list[ResignResult]]:
    """Post `body`; then for each card and each of its suggestions: apply it (to the original body),
    sign again and record the answer.

    order-select bodies are re-sent to order-select, the rest to order-sign; `order_sign_prefetch`
    replaces the prefetch when a patient-view body turns into an order-sign request.
    """
    response = post(client, service_id, body)
    assert response.status_code == 200, (
        f"{service_id} answered {response.status_code}: {response.get_data(as_text=True)[:500]}"
    )
    cards = response.get_json()["cards"]
    target_service = (
        "bonecds-order-select" if body.get("hook") == "order-select" else "bonecds-order-sign"
    )
    results: list[ResignResult] = []
    for card in cards:
        for suggestion in card.get("suggestions", []):
            accepted = apply_suggestion(
                body,
                suggestion,
                prefetch=order_sign_prefetch if body.get("hook") == "patient-view" else None,
            )
            again = post(client, target_service, accepted)
            actions = suggestion.get("actions", [])
            result = ResignResult(
                rule_of(card),
                suggestion.get("label", ""),
                tuple(a.get("type") for a in actions),
                suggestion_signature(suggestion),
                again.status_code,
                _cards(again),
                service_id=target_service,
                body=accepted,
            )
            result.new_order = accepted_bone_agent_order(accepted, suggestion)
            if result.new_order is not None:
                reference = _reference(result.new_order)
                others = [
                    e
                    for e in _entries(accepted)
                    if is_bone_agent(e.get("resource")) and _reference(e["resource"]) != reference
                ]
                if others or accepted["context"].get("selections", [reference]) != [reference]:
                    alone = isolate(accepted, result.new_order)
                    isolated = post(client, target_service, alone)
                    result.isolated_body, result.isolated_status = alone, isolated.status_code
                    result.concerning = _cards(isolated)
                else:  # the re-sign already has it as its only bone-agent draft
                    result.concerning = list(result.cards)
            results.append(result)
    return cards, results


def accepted_bone_agent_order(accepted: dict, suggestion: dict) -> dict | None:
    """The bone-agent MedicationRequest a suggestion created or updated, as it stands in the
    accepted body's drafts (with the id a created draft was given), or None when the suggestion
    orders no bone agent."""
    for action in suggestion.get("actions", []):
        resource = action.get("resource")
        if action.get("type") not in ("create", "update") or not is_bone_agent(resource):
            continue
        placed = [
            e["resource"]
            for e in _entries(accepted)
            if isinstance(e.get("resource"), dict)
            and {k: v for k, v in e["resource"].items() if k != "id" or "id" in resource}
            == resource
        ]
        if placed:
            return placed[-1]
    return None


def describe_cards(cards: list[dict]) -> str:
    return (
        "; ".join(f"[{c.get('indicator')}] {rule_of(c)}: {c.get('summary')}" for c in cards)
        or "none"
    )
