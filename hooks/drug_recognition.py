"""Recognises which bone-modifying agent and product a medication names: by code first, then by its
name."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from hooks.fhir_read import DAYS_PER_UNIT, as_list, codings, concept_texts
from hooks.knowledge import Formulation, Knowledge, Product
from hooks.product_names import ProductName, parse_product_name


def medication_concepts(request: dict, bundled_medications: dict[str, dict]) -> list[Any]:
    """The CodeableConcepts that name what a MedicationRequest orders: its own, or the referenced
    Medication's."""
    concepts: list[Any] = []
    if request.get("medicationCodeableConcept") is not None:
        concepts.append(request["medicationCodeableConcept"])
    reference = request.get("medicationReference")
    if isinstance(reference, dict):
        medication = _resolve_medication(reference, request, bundled_medications)
        if medication:
            concepts.append(medication.get("code"))
            for ingredient in as_list(medication.get("ingredient")):
                if isinstance(ingredient, dict):
                    concepts.append(ingredient.get("itemCodeableConcept"))
        if reference.get("display"):
            concepts.append({"text": reference["display"]})
    return [c for c in concepts if c is not None]


def _resolve_medication(reference: dict, request: dict, bundled: dict[str, dict]) -> dict | None:
    target = reference.get("reference")
    if not isinstance(target, str):
        return None
    if target.startswith("#"):
        for contained in as_list(request.get("contained")):
            if isinstance(contained, dict) and contained.get("id") == target[1:]:
                return contained
        return None
    return bundled.get(target.rstrip("/").split("/")[-1])


@dataclass(frozen=True)
class Identification:
    """How a medication was recognised as a bone-modifying agent."""

    ingredient: str
    recognised_by: str  # "RxNorm product code", "RxNorm ingredient code", "ATC code" or "name"
    product: Product | None  # from the product table, or read from the drug's name (status "name")
    unlisted_codes: tuple[str, ...] = ()


def identify_ingredient(
    concepts: list[Any], knowledge: Knowledge
) -> tuple[str, str, Product | None] | None:
    """(ingredient, how it was recognised, product) from codes first; a name match is the last
    resort."""
    found = identify_medication(concepts, knowledge)
    return (found.ingredient, found.recognised_by, found.product) if found else None


def identify_medication(concepts: list[Any], knowledge: Knowledge) -> Identification | None:
    """How the concepts name a bone-modifying agent (see `_identify_medication`), remembered per
    concept by the knowledge: the same products recur in every request."""
    return knowledge.recognised(
        "identify", concepts, lambda: _identify_medication(concepts, knowledge)
    )


def _identify_medication(concepts: list[Any], knowledge: Knowledge) -> Identification | None:
    """A product code of the table first; then, for a code the table does not list (or none), the
    drug's name read the RxNorm way ("alendronic acid 70 MG Oral Tablet"); then an ingredient RxNorm
    or ATC code; then name fragments.

    A product from the name only adds strength and form to an ingredient code of the same
    ingredient.
    """
    rxnorm, atc = knowledge.systems["rxnorm"], knowledge.systems["atc"]
    coded = [(system, code) for concept in concepts for system, code, _ in codings(concept) if code]
    texts = [text for concept in concepts for text in concept_texts(concept)]
    for system, code in coded:
        if system == rxnorm and code in knowledge.product_by_rxnorm:
            product = knowledge.product_by_rxnorm[code]
            # a candidate code: the order's own text, when it reads, says more
            if not product.verified:
                named = _product_from_names(texts, knowledge, product.ingredient, code)
                if named is not None:
                    product = _merge_unverified(product, named)
            return Identification(product.ingredient, "RxNorm product code", product)
    by_code: tuple[str, str] | None = None
    for system, code in coded:
        if system == rxnorm and code in knowledge.ingredient_by_rxnorm:
            by_code = by_code or (knowledge.ingredient_by_rxnorm[code], "RxNorm ingredient code")
        elif system == atc and code in knowledge.ingredient_by_atc:
            by_code = by_code or (knowledge.ingredient_by_atc[code], "ATC code")
    unlisted = tuple(
        dict.fromkeys(
            _code_label(system, code, knowledge)
            for system, code in coded
            if not _listed(system, code, knowledge)
        )
    )
    named_code = next((code for system, code in coded if system == rxnorm), None)
    if by_code:
        ingredient, how = by_code
        return Identification(
            ingredient, how, _product_from_names(texts, knowledge, ingredient, named_code), unlisted
        )
    named = _product_from_names(texts, knowledge, None, named_code)
    if named is not None:
        return Identification(named.ingredient, "name", named, unlisted)
    for text in texts:
        lowered = text.lower()
        for fragment, ingredient in knowledge.ingredient_name_fragments:
            if fragment in lowered:
                return Identification(ingredient, "name", None, unlisted)
    return None


def _listed(system: str | None, code: str, knowledge: Knowledge) -> bool:
    if system == knowledge.systems["rxnorm"]:
        return code in knowledge.product_by_rxnorm or code in knowledge.ingredient_by_rxnorm
    if system == knowledge.systems["atc"]:
        return code in knowledge.ingredient_by_atc
    return False


def _code_label(system: str | None, code: str, knowledge: Knowledge) -> str:
    labels = {
        knowledge.systems["rxnorm"]: "RxNorm",
        knowledge.systems["atc"]: "ATC",
        knowledge.systems["snomed"]: "SNOMED CT",
        "http://hl7.org/fhir/sid/ndc": "NDC",
    }
    if system in labels:
        return f"{labels[system]} {code}"
    return f"Code {code} ({system})" if system else f"Code {code} (no code system)"


def ingredient_of_name(name: str, knowledge: Knowledge) -> str | None:
    """The knowledge ingredient a drug name's ingredient part names ("alendronic acid", "Zometa",
    "denosumab-bbdz")."""
    lowered = name.lower()
    return next(
        (
            ingredient
            for fragment, ingredient in knowledge.ingredient_name_fragments
            if fragment in lowered
        ),
        None,
    )


def product_from_name(
    parsed: ProductName,
    knowledge: Knowledge,
    code: str | None = None,
    ingredient: str | None = None,
) -> Product | None:
    """A Product (status "name") from a parsed drug name whose ingredient is a bone-modifying
    agent."""
    for component in parsed.components:
        found = ingredient_of_name(component.name, knowledge)
        if found is None and parsed.brand:
            found = ingredient_of_name(parsed.brand, knowledge)
        if found is None or (ingredient is not None and found != ingredient):
            continue
        route = None
        if parsed.route_kind == "oral":
            route = "oral"
        elif parsed.route_kind == "parenteral":
            route = knowledge.ingredient_parenteral_route.get(found)
        unit = {"injection": "vial", "oral liquid": "bottle"}.get(parsed.unit or "", parsed.unit)
        if unit is None and parsed.dose_form is None and component.per_amount is not None:
            unit = "vial"  # "Zometa 4 mg/5 mL": a container of a solution
        if (
            unit == "vial"
            and parsed.container_ml(component) is None
            and component.per_unit is not None
        ):
            # "zoledronic acid 0.8 MG/ML Injectable Solution": no container, so no strength per vial
            unit = None
        return Product(
            rxnorm=code or "",
            display=parsed.text,
            ingredient=found,
            route=route,
            strength_mg=parsed.strength_mg(component),
            tty=None,
            unit=unit,
            concentration_mg_per_ml=parsed.concentration_mg_per_ml(component),
            volume_ml=parsed.container_ml(component),
            dose_form=parsed.dose_form,
            brand=parsed.brand,
            status="name",
            source="the order's drug name",
        )
    return None


def _product_from_names(
    texts: list[str], knowledge: Knowledge, ingredient: str | None, code: str | None
) -> Product | None:
    for text in texts:
        parsed = parse_product_name(text)
        product = product_from_name(parsed, knowledge, code, ingredient) if parsed else None
        if product is not None:
            return product
    return None


def _merge_unverified(listed: Product, named: Product) -> Product:
    """An UNVERIFIED table entry read together with the order's own name: what the name states
    wins."""
    return dataclasses.replace(
        listed,
        strength_mg=named.strength_mg if named.strength_mg is not None else listed.strength_mg,
        concentration_mg_per_ml=(
            named.concentration_mg_per_ml
            if named.concentration_mg_per_ml is not None
            else listed.concentration_mg_per_ml
        ),
        volume_ml=named.volume_ml if named.volume_ml is not None else listed.volume_ml,
        unit=named.unit or listed.unit,
        dose_form=named.dose_form or listed.dose_form,
        route=named.route or listed.route,
        brand=named.brand or listed.brand,
    )


def decide_formulation(
    ingredient: str,
    route: str | None,
    dose_mg: float | None,
    knowledge: Knowledge,
    product: Product | None = None,
    interval_days: float | None = None,
    setting: str | None = None,
) -> Formulation | None:
    """The formulation of the ordered product's strength when there is one (5 mg of the 4 mg
    oncology product is an overdose of it, not the osteoporosis strength); else one whose
    `chosen_when` holds (ibandronate 6 mg IV above 3 mg, more often than every 3 months, or in
    hypercalcemia of malignancy); else the first other formulation in the knowledge file that
    admits this route and dose (file order encodes precedence)."""
    formulations = knowledge.formulations_for(ingredient)
    if product is not None and product.strength_mg is not None:
        own = next(
            (
                f
                for f in formulations
                if f.strength_mg == product.strength_mg and f.admits(route, None)
            ),
            None,
        )
        if own is not None:
            return own
    chosen = next(
        (
            f
            for f in formulations
            if "chosen_when" in f.raw
            and f.admits(route, None)
            and _chosen(f.raw["chosen_when"], dose_mg, interval_days, setting)
        ),
        None,
    )
    if chosen is not None:
        return chosen
    return next(
        (f for f in formulations if "chosen_when" not in f.raw and f.admits(route, dose_mg)), None
    )


def _chosen(
    when: dict[str, Any], dose_mg: float | None, interval_days: float | None, setting: str | None
) -> bool:
    """Whether an order without a product code is of a formulation chosen by dose, interval or
    setting."""
    if dose_mg is not None:
        if "dose_mg_above" in when and dose_mg > when["dose_mg_above"] + 1e-9:
            return True
        low, high = when.get("dose_mg_range", (None, None))
        if low is not None and low <= dose_mg <= high:
            return True
    if interval_days is not None and "interval_shorter_than" in when:
        period, unit = when["interval_shorter_than"]
        if interval_days < period * DAYS_PER_UNIT[unit] - 1e-9:
            return True
    return setting is not None and setting in when.get("settings", ())
