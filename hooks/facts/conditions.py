"""Reads Conditions (by the knowledge's value sets) and AllergyIntolerances (by ingredient or class)
into facts."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from hooks.drug_recognition import identify_ingredient
from hooks.facts.model import AllergyFact, ConditionFact, PatientFacts
from hooks.fhir_read import as_list, codings, concept_label, concept_texts, parse_datetime
from hooks.knowledge import Knowledge

INACTIVE_CLINICAL_STATUS = frozenset({"inactive", "remission", "resolved"})
EXCLUDED_VERIFICATION = frozenset({"refuted", "entered-in-error"})


def _condition_status(concept: Any) -> str | None:
    return next((code for _system, code, _ in codings(concept) if code), None)


def read_conditions(facts: PatientFacts, conditions: Iterable[dict], knowledge: Knowledge) -> None:
    for condition in conditions:
        if _condition_status(condition.get("verificationStatus")) in EXCLUDED_VERIFICATION:
            continue
        matched = frozenset().union(
            *(
                knowledge.value_sets_of(system, code)
                for system, code, _ in codings(condition.get("code"))
            )
        )
        if not matched:
            continue
        clinical = _condition_status(condition.get("clinicalStatus"))
        active = (
            clinical not in INACTIVE_CLINICAL_STATUS and condition.get("abatementDateTime") is None
        )
        onset = parse_datetime(condition.get("onsetDateTime")) or parse_datetime(
            condition.get("recordedDate")
        )
        facts.conditions.append(
            ConditionFact(
                matched,
                active,
                concept_label(condition.get("code"), "condition"),
                onset,
                clinical or "no clinical status",
            )
        )


def read_allergy(allergy: dict, knowledge: Knowledge) -> AllergyFact | None:
    verification = _condition_status(allergy.get("verificationStatus"))
    clinical = _condition_status(allergy.get("clinicalStatus"))
    if verification in EXCLUDED_VERIFICATION or clinical in INACTIVE_CLINICAL_STATUS:
        return None
    concepts = [allergy.get("code")] + [
        r.get("substance") for r in as_list(allergy.get("reaction")) if isinstance(r, dict)
    ]
    concepts = [c for c in concepts if c is not None]
    ingredients = frozenset(
        found[0] for c in concepts if (found := identify_ingredient([c], knowledge))
    )
    atc, bisphosphonate_atc = (
        knowledge.systems["atc"],
        knowledge.class_atc_prefixes["bisphosphonate"],
    )
    by_code = any(
        system == atc and code and code.startswith(bisphosphonate_atc)
        for c in concepts
        for system, code, _ in codings(c)
    )
    # "biphosphonate" is a common misspelling in free-text allergy entries.
    by_text = any(
        word in text.lower()
        for c in concepts
        for text in concept_texts(c)
        for word in ("bisphosphonate", "biphosphonate")
    )
    by_ingredient = any(knowledge.ingredient_class[i] == "bisphosphonate" for i in ingredients)
    if not ingredients and not (by_code or by_text):
        return None
    criticality = (
        allergy.get("criticality") if isinstance(allergy.get("criticality"), str) else None
    )
    return AllergyFact(
        concept_label(allergy.get("code"), "unnamed substance"),
        ingredients,
        by_code or by_text or by_ingredient,
        criticality,
        verification,
    )
