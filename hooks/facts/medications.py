"""Reads MedicationRequests and MedicationAdministrations into classified medications and bone-agent
doses."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

from hooks.drug_recognition import medication_concepts
from hooks.facts.model import DoseEvent, MedicationFact, PatientFacts
from hooks.fhir_read import (
    as_list,
    codings,
    concept_texts,
    effective_datetime,
    parse_datetime,
    status_of,
)
from hooks.knowledge import Knowledge
from hooks.orders import BoneAgentOrder, read_bone_agent_order, stated_route

GIVEN_REQUEST_STATUS = frozenset({"active", "completed", "stopped", "on-hold"})
GIVEN_ADMINISTRATION_STATUS = frozenset({"completed", "in-progress"})


# How a MedicationRequest reads as a bone-agent order (None when it orders none); build_facts
# passes one that reads each request once per call: the medication list and dose history both ask.
OrderReader = Callable[[dict], BoneAgentOrder | None]


def read_medication(
    request: dict,
    medications: dict[str, dict],
    knowledge: Knowledge,
    read_order: OrderReader | None = None,
) -> MedicationFact:
    concepts = medication_concepts(request, medications)
    as_order = (read_order or _order_reader(medications, knowledge))(request)
    dosage = next((d for d in as_list(request.get("dosageInstruction")) if isinstance(d, dict)), {})
    route = dosage.get("route")
    drug: _DrugReading = knowledge.recognised(
        "drug", (concepts, route), lambda: _read_drug(concepts, route, knowledge)
    )
    status = request.get("status") if isinstance(request.get("status"), str) else None
    return MedicationFact(
        request.get("id") if isinstance(request.get("id"), str) else None,
        drug.label,
        status,
        parse_datetime(request.get("authoredOn")),
        drug.classes,
        as_order.ingredient if as_order else None,
        route_text=drug.route_texts,
        formulation=as_order.formulation.id if as_order and as_order.formulation else None,
        dose_mg=as_order.dose_mg if as_order else None,
        interval=as_order.interval if as_order else None,
    )


class _DrugReading(NamedTuple):
    label: str
    route_texts: str
    classes: frozenset[str]


def _read_drug(concepts: list[Any], route: Any, knowledge: Knowledge) -> _DrugReading:
    """What a drug and its route say, whoever it is ordered for: its name, the route as written
    plus the route the knowledge reads from its code or text ("PO" and SNOMED 26643006 are "oral",
    which the drug classes' route exclusions name), and its drug classes; remembered per drug and
    route by the knowledge."""
    route_texts = (
        " ".join([*concept_texts(route), stated_route(route, knowledge) or ""]).lower().strip()
    )
    label = next(
        (text for concept in concepts for text in concept_texts(concept)), "unnamed medication"
    )
    return _DrugReading(label, route_texts, _classes(concepts, route_texts, knowledge))


def _classes(concepts: list[Any], route_texts: str, knowledge: Knowledge) -> frozenset[str]:
    """The knowledge's drug classes (NSAID, aminoglycoside, ...) a medication belongs to, given
    systemically."""
    # Codes and names are read once per drug, then matched against every class.
    coded = [(system, code) for concept in concepts for system, code, _ in codings(concept) if code]
    names = [text.lower() for concept in concepts for text in concept_texts(concept)]
    # The route that decides "systemic": the one stated; else the dose form in the drug's name, as
    # RxNorm names end ("... Topical Gel", "... Metered Dose Inhaler") and Synthea states no route.
    route_evidence = route_texts or " ".join(names)
    return frozenset(
        name
        for name, drug_class in knowledge.medication_classes.items()
        if _in_class(coded, names, drug_class, knowledge)
        and not _excluded_route(route_evidence, drug_class.excluded_routes)
    )


def _order_reader(medications: dict[str, dict], knowledge: Knowledge) -> OrderReader:
    return lambda request: read_bone_agent_order(request, medications, knowledge)


def _product_and_dose(read: BoneAgentOrder | None) -> tuple[str | None, float | None]:
    if read is None:
        return None, None
    return (read.formulation.id if read.formulation else None), read.dose_mg


def _administration_as_order(
    administration: dict, medications: dict[str, dict], knowledge: Knowledge
) -> BoneAgentOrder | None:
    """A given dose read as an order is read: the administration's dosage.dose and route stand in
    for the order's dosage instruction."""
    given = administration.get("dosage")
    dosage: dict[str, Any] = given if isinstance(given, dict) else {}
    instruction: dict[str, Any] = {"doseAndRate": [{"doseQuantity": dosage.get("dose")}]}
    if dosage.get("route") is not None:
        instruction["route"] = dosage["route"]
    return read_bone_agent_order(
        {**administration, "dosageInstruction": [instruction]}, medications, knowledge
    )


def _excluded_route(evidence: str, routes: frozenset[str]) -> bool:
    """A route word at the start of a word ("otic" in "Otic Solution", not in "antibiotic")."""
    return any(re.search(rf"\b{re.escape(word)}", evidence) for word in routes)


def _in_class(
    coded: list[tuple[str | None, str]], names: list[str], drug_class: Any, knowledge: Knowledge
) -> bool:
    """By RxNorm or ATC code (or ATC group), else by a name fragment in the drug's text."""
    rxnorm, atc = knowledge.systems["rxnorm"], knowledge.systems["atc"]
    for system, code in coded:
        if system == rxnorm and code in drug_class.rxnorm:
            return True
        if system == atc and (code in drug_class.atc or code.startswith(drug_class.atc_prefixes)):
            return True
    pattern = drug_class.name_pattern
    return pattern is not None and any(pattern.search(name) for name in names)


def read_doses(
    facts: PatientFacts,
    requests: Iterable[dict],
    administrations: Iterable[dict],
    medications: dict[str, dict],
    knowledge: Knowledge,
    read_order: OrderReader | None = None,
) -> None:
    read_order = read_order or _order_reader(medications, knowledge)
    from_administrations: list[DoseEvent] = []
    for administration in administrations:
        if status_of(administration) not in GIVEN_ADMINISTRATION_STATUS:
            continue
        given = _administration_as_order(administration, medications, knowledge)
        when = effective_datetime(administration)
        if given and when:
            from_administrations.append(
                DoseEvent(
                    given.ingredient, when, "administration recorded", *_product_and_dose(given)
                )
            )
    administered = {d.ingredient for d in from_administrations}
    from_requests: list[DoseEvent] = []
    for request in requests:
        if status_of(request) not in GIVEN_REQUEST_STATUS:
            continue
        order = read_order(request)
        when = parse_datetime(request.get("authoredOn"))
        if order and when and order.ingredient not in administered and when <= facts.now:
            from_requests.append(
                DoseEvent(
                    order.ingredient,
                    when,
                    f"order {request.get('status')}",
                    *_product_and_dose(order),
                )
            )
    facts.bone_agent_doses = sorted(
        from_administrations + from_requests, key=lambda d: d.when, reverse=True
    )
