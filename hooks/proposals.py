"""Proposed bone-agent orders, their trials, and the rewording of a suggestion the gate offers."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from hooks.cards import Finding, Suggestion
from hooks.knowledge import Knowledge
from hooks.orders import BoneAgentOrder
from hooks.suggestions import REPLACES


@dataclass(frozen=True)
class Proposal:
    """A bone-agent order that a suggestion would create or turn a draft into."""

    resource: dict[str, Any]
    replaces: BoneAgentOrder | None
    order: BoneAgentOrder | None  # the resource read back as an order, once (None: unreadable)


@dataclass(frozen=True)
class Trial:
    """What the rules say about a proposed order, evaluated as if it had been signed."""

    order: BoneAgentOrder | None
    findings: tuple[Finding, ...]

    @property
    def blocking(self) -> list[Finding]:
        """Critical findings, and checks that could not be completed (an order not fully checked is
        not offered)."""
        return [f for f in self.findings if f.indicator == "critical" or f.rule_id == "rule-error"]


def administration_text(knowledge: Knowledge, order: BoneAgentOrder) -> str | None:
    """The knowledge's administration text for an oral bisphosphonate (by ingredient and dose
    range)."""
    dose = (
        order.dose_mg
        if order.dose_mg is not None
        else (order.product.strength_mg if order.product else None)
    )
    for entry in knowledge.raw.get("administration_texts", {}).get("entries", []):
        if entry["ingredient"] != order.ingredient:
            continue
        low, high = entry.get("dose_mg_range", (0, float("inf")))
        if dose is None and "dose_mg_range" in entry:
            continue
        if dose is None or low <= dose <= high:
            return str(entry["text"])
    return None


def what_it_orders(suggestion: Suggestion) -> str:
    """What a suggestion orders, for a sentence: 'Change to zoledronic acid ...' -> 'zoledronic acid
    ...'; a change of the draft's dose or timing keeps its label ('Change to once weekly')."""
    label = suggestion.label
    if label.startswith("Order "):
        return label.removeprefix("Order ")
    replaces = any(a.description.startswith(f"{REPLACES} ") for a in suggestion.actions)
    return label.removeprefix("Change to ") if replaces else label


def with_description_note(suggestion: Suggestion, note: str) -> Suggestion:
    actions = tuple(
        dataclasses.replace(a, description=f"{a.description} ({note})") if a.resource else a
        for a in suggestion.actions
    )
    return dataclasses.replace(suggestion, actions=actions)


def redosed(
    suggestion: Suggestion,
    before: dict[str, Any],
    after: dict[str, Any],
    old: float | None,
    new: float,
) -> Suggestion:
    """The suggestion with its order at the new dose, and its label, description and dosage text
    saying so."""

    def reword(text: str) -> str:
        if old is not None and f"{old:g} mg" in text:
            return text.replace(f"{old:g} mg", f"{new:g} mg")
        return f"{text} at {new:g} mg"

    dosage = after["dosageInstruction"][0]
    if isinstance(dosage.get("text"), str):
        dosage["text"] = reword(dosage["text"])
    actions = tuple(
        (
            dataclasses.replace(a, resource=after, description=reword(a.description))
            if a.resource is before
            else a
        )
        for a in suggestion.actions
    )
    return dataclasses.replace(suggestion, label=reword(suggestion.label), actions=actions)
