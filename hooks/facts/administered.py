"""Reads administrations of drugs the rules classify (not bone agents: those are doses)."""

from __future__ import annotations

from collections.abc import Iterable

from hooks.facts.medications import read_medication
from hooks.facts.model import AdministeredDrug
from hooks.fhir_read import effective_datetime, status_of
from hooks.knowledge import Knowledge

GIVEN_STATUS = frozenset({"completed", "in-progress"})


def read_administered(
    administrations: Iterable[dict], medications: dict[str, dict], knowledge: Knowledge
) -> list[AdministeredDrug]:
    """Given administrations of a drug of a knowledge class, newest first; the route of the
    administration excludes a class as an order's route does (a topical NSAID is not systemic)."""
    found = []
    for administration in administrations:
        when = effective_datetime(administration)
        if status_of(administration) not in GIVEN_STATUS or when is None:
            continue
        dosage = administration.get("dosage")
        route = dosage.get("route") if isinstance(dosage, dict) else None
        # Read like an order: the administration's route stands in for the dosage instruction's.
        as_request = {**administration, "dosageInstruction": [{"route": route}] if route else []}
        drug = read_medication(as_request, medications, knowledge)
        if drug.bone_agent is None and drug.classes:
            found.append(AdministeredDrug(drug.label, when, drug.classes))
    return sorted(found, key=lambda d: d.when, reverse=True)
