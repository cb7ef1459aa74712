"""Recognises bone-modifying-agent orders in draftOrders and reads product, dose, route, interval
and infusion time."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hooks.drug_recognition import (
    Identification,
    decide_formulation,
    identify_medication,
    medication_concepts,
)
from hooks.fhir_read import (
    DAYS_PER_UNIT,
    Quantity,
    as_list,
    bundle_resources,
    codings,
    concept_texts,
    json_copy,
    object_at,
    parse_datetime,
    quantity,
)
from hooks.knowledge import Formulation, Knowledge, Product
from hooks.quick_frozen import quick_frozen

UNIT_WORDS = {
    "s": "second",
    "min": "minute",
    "h": "hour",
    "d": "day",
    "wk": "week",
    "mo": "month",
    "a": "year",
}
MINUTES_PER_UNIT = {"s": 1 / 60, "min": 1.0, "h": 60.0, "d": 1440.0}
MG_PER_UNIT = {"mg": 1.0, "g": 1000.0, "ug": 0.001, "mcg": 0.001, "µg": 0.001}
# A dose given as a count of pieces, with or without UCUM braces ("1 {pill}", "2 tablets", "1
# vial"): the piece's kind.
COUNT_UNITS = {
    "pill": "tablet",
    "tbl": "tablet",
    "tab": "tablet",
    "tablet": "tablet",
    "capsule": "capsule",
    "cap": "capsule",
    "vial": "vial",
    "syringe": "syringe",
    "bottle": "bottle",
}
# Which products a counted piece can be: a tablet count reads only a tablet or capsule product, a
# vial count a vial...
COUNTABLE_AS = {
    "tablet": frozenset({"tablet", "capsule"}),
    "capsule": frozenset({"tablet", "capsule"}),
    "vial": frozenset({"vial", "syringe"}),
    "syringe": frozenset({"vial", "syringe"}),
    "bottle": frozenset({"bottle", "oral liquid"}),
}
VOLUME_UNITS = {"ml": 1.0, "l": 1000.0}
ACTIVE_ORDER_STATUSES = frozenset({"draft", "active", "on-hold", "unknown"})


@quick_frozen
@dataclass(frozen=True)
class Interval:
    """How often the order repeats, as written (every `period` `unit`, `frequency` times) and in
    days."""

    frequency: float
    period: float
    unit: str

    @property
    def days(self) -> float:
        return self.period * DAYS_PER_UNIT[self.unit] / self.frequency

    def describe(self) -> str:
        word = UNIT_WORDS[self.unit]
        period = f"{self.period:g}"
        every = f"every {word}" if self.period == 1 else f"every {period} {word}s"
        return every if self.frequency == 1 else f"{self.frequency:g} times {every}"


@quick_frozen
@dataclass(frozen=True)
class BoneAgentOrder:
    """A draft order for a bone-modifying agent, with what could be read from it."""

    resource: dict[str, Any]
    resource_type: str
    resource_id: str | None
    ingredient: str
    ingredient_display: str
    recognised_by: str
    product: Product | None
    formulation: Formulation | None
    dose_mg: float | None
    route: str | None
    route_from: str | None
    interval: Interval | None
    infusion_minutes: float | None
    starts: datetime | None = (
        None  # timing.repeat.boundsPeriod.start: the first dose is not given before it
    )
    unlisted_codes: tuple[
        str, ...
    ] = ()  # codes the order carries that the knowledge lacks, e.g. "RxNorm 904431"
    dose_text: str | None = (
        None  # the dose as written when it could not be read in mg, e.g. "2 {puff}"
    )

    @property
    def product_description(self) -> str | None:
        """The product as read, e.g. 'alendronate 70 mg oral tablet' (None when only the ingredient
        is known)."""
        return self.product.describe(self.ingredient_display) if self.product else None

    @property
    def reference(self) -> str | None:
        return f"{self.resource_type}/{self.resource_id}" if self.resource_id else None

    @property
    def is_oral(self) -> bool:
        return self.route == "oral"

    @property
    def is_parenteral(self) -> bool:
        return self.route in ("intravenous", "subcutaneous")

    def describe(self) -> str:
        """e.g. 'zoledronic acid 4 mg IV every 12 weeks' for card text."""
        parts = [self.ingredient_display]
        if self.dose_mg is not None:
            parts.append(f"{self.dose_mg:g} mg")
        if self.route:
            parts.append(
                {"intravenous": "IV", "oral": "oral", "subcutaneous": "SC"}.get(
                    self.route, self.route
                )
            )
        if self.interval:
            parts.append(self.interval.describe())
        return " ".join(parts)


def find_bone_agent_orders(draft_orders: Any, knowledge: Knowledge) -> list[BoneAgentOrder]:
    """Every MedicationRequest in draftOrders whose medication is a bone-modifying agent."""
    resources = bundle_resources(draft_orders)
    medications = {
        r["id"]: r
        for r in resources
        if r.get("resourceType") == "Medication" and isinstance(r.get("id"), str)
    }
    orders = []
    for resource in resources:
        if resource.get("resourceType") != "MedicationRequest":
            continue
        order = read_bone_agent_order(resource, medications, knowledge)
        if order is not None:
            orders.append(order)
    return orders


def read_bone_agent_order(
    request: dict, bundled_medications: dict[str, dict], knowledge: Knowledge
) -> BoneAgentOrder | None:
    concepts = medication_concepts(request, bundled_medications)
    identified = identify_medication(concepts, knowledge)
    if identified is None:
        return None
    dosage = next((d for d in as_list(request.get("dosageInstruction")) if isinstance(d, dict)), {})
    reading: dict[str, Any] = knowledge.recognised(
        "dosage", (concepts, dosage), lambda: _read_dosage(identified, dosage, knowledge)
    )
    return BoneAgentOrder(
        resource=request,
        resource_type="MedicationRequest",
        resource_id=request.get("id") if isinstance(request.get("id"), str) else None,
        ingredient=identified.ingredient,
        ingredient_display=knowledge.ingredient_display[identified.ingredient],
        recognised_by=identified.recognised_by,
        product=identified.product,
        unlisted_codes=identified.unlisted_codes,
        **reading,
    )


def _read_dosage(identified: Identification, dosage: dict, knowledge: Knowledge) -> dict[str, Any]:
    """Dose, route, interval, infusion time and formulation as the drug and its dosage instruction
    state them: the same for every order of that drug written the same way, so remembered by the
    knowledge (the caller must not change the dict)."""
    ingredient, product = identified.ingredient, identified.product
    dose = _dose_quantity(dosage)
    dose_mg = _dose_mg(dose, product)
    route, route_from = _route(dosage, product, ingredient, knowledge, dose)
    dose_for_match = dose_mg if dose_mg is not None else (product.strength_mg if product else None)
    timing = object_at(dosage, "timing")
    repeat = object_at(timing, "repeat")
    interval = _interval(repeat)
    formulation = decide_formulation(
        ingredient, route, dose_for_match, knowledge, product, interval.days if interval else None
    )
    return {
        "formulation": formulation,
        "dose_mg": dose_mg,
        "route": route,
        "route_from": route_from,
        "interval": interval,
        "infusion_minutes": _infusion_minutes(repeat),
        "starts": _starts(repeat),
        "dose_text": (
            f"{dose.value:g} {dose.unit or ''}".strip()
            if dose is not None and dose_mg is None
            else None
        ),
    }


def _dose_quantity(dosage: dict) -> Quantity | None:
    for dose_and_rate in as_list(dosage.get("doseAndRate")):
        if isinstance(dose_and_rate, dict):
            dose = quantity(dose_and_rate.get("doseQuantity"))
            if dose is not None:
                return dose
    return None


def count_unit(unit: str | None) -> str | None:
    """The kind of piece a dose unit counts ("{pill}" -> tablet, "Vials" -> vial), or None."""
    if not unit:
        return None
    word = unit.strip().strip("{}").strip().lower()
    if word.endswith("s") and word[:-1] in COUNT_UNITS:
        word = word[:-1]
    return COUNT_UNITS.get(word)


def _dose_mg(dose: Quantity | None, product: Product | None) -> float | None:
    """The dose in mg: a mass; a count of pieces x the product's strength per piece; a volume x its
    concentration.

    Anything else (or a product whose strength is not known) stays None: never the labelled dose.
    """
    if dose is None or not dose.unit:
        return None
    unit = dose.unit.strip()
    if unit.lower() in MG_PER_UNIT:
        return dose.value * MG_PER_UNIT[unit.lower()]
    piece = count_unit(unit)
    if piece is not None:
        if (
            product is None
            or product.strength_mg is None
            or product.unit not in COUNTABLE_AS[piece]
        ):
            return None
        return round(dose.value * product.strength_mg, 6)
    if unit.lower() in VOLUME_UNITS:
        if product is None:
            return None
        return product.mg_for_volume(dose.value * VOLUME_UNITS[unit.lower()])
    return None


def _route(
    dosage: dict,
    product: Product | None,
    ingredient: str,
    knowledge: Knowledge,
    dose: Quantity | None = None,
) -> tuple[str | None, str | None]:
    """The order's route; else the product's dose form; else a counted tablet or capsule (taken by
    mouth); else the ingredient's only route.

    Otherwise unknown: never assumed intravenous.
    """
    stated = stated_route(dosage.get("route"), knowledge)
    if stated:
        return stated, "order"
    if product and product.route:
        return product.route, "product"
    if dose is not None and count_unit(dose.unit) in ("tablet", "capsule"):
        return "oral", "dose unit"
    routes = knowledge.ingredient_routes.get(ingredient, ())
    if len(routes) == 1:
        return routes[0], "ingredient"
    return None, None


def stated_route(route_concept: Any, knowledge: Knowledge) -> str | None:
    """The route a dosage's route concept names, by its SNOMED CT code, else its text ("PO", "by
    mouth", "IV infusion"), as the knowledge's route table reads them; None when it names none."""
    for system, code, _display in codings(route_concept):
        if system == knowledge.systems["snomed"] and code in knowledge.route_by_snomed:
            return knowledge.route_by_snomed[code]
    for text in concept_texts(route_concept):
        route = knowledge.route_by_text.get(text.strip().lower())
        if route is None:
            route = next(
                (r for t, r in knowledge.route_by_text.items() if len(t) > 3 and t in text.lower()),
                None,
            )
        if route:
            return route
    return None


def in_setting(order: BoneAgentOrder, setting: str, knowledge: Knowledge) -> BoneAgentOrder:
    """The order with its formulation decided again now that the clinical setting is known (an IV
    ibandronate order without a product code is the oncology product in hypercalcemia of
    malignancy)."""
    if order.formulation is None or not any(
        "settings" in f.raw.get("chosen_when", {})
        for f in knowledge.formulations_for(order.ingredient)
    ):
        return order
    dose = (
        order.dose_mg
        if order.dose_mg is not None
        else (order.product.strength_mg if order.product else None)
    )
    days = order.interval.days if order.interval else None
    formulation = decide_formulation(
        order.ingredient, order.route, dose, knowledge, order.product, days, setting
    )
    if formulation is None or formulation == order.formulation:
        return order
    return dataclasses.replace(order, formulation=formulation)


def _interval(repeat: dict) -> Interval | None:
    period, unit = repeat.get("period"), repeat.get("periodUnit")
    unit = unit if isinstance(unit, str) else None
    if (
        not isinstance(period, (int, float))
        or isinstance(period, bool)
        or period <= 0
        or unit not in DAYS_PER_UNIT
    ):
        return None
    frequency = repeat.get("frequency", 1)
    if not isinstance(frequency, (int, float)) or isinstance(frequency, bool) or frequency <= 0:
        frequency = 1
    return Interval(float(frequency), float(period), unit)


def _starts(repeat: dict) -> datetime | None:
    bounds = object_at(repeat, "boundsPeriod")
    return parse_datetime(bounds.get("start"))


def _infusion_minutes(repeat: dict) -> float | None:
    duration, unit = repeat.get("duration"), repeat.get("durationUnit")
    unit = unit if isinstance(unit, str) else None
    if (
        not isinstance(duration, (int, float))
        or isinstance(duration, bool)
        or unit not in MINUTES_PER_UNIT
    ):
        return None
    return float(duration) * MINUTES_PER_UNIT[unit]


def normalised_draft(resource: dict) -> dict:
    """A copy of a draft order with known client deviations from R4 repaired, as the base of an
    update suggestion."""
    fixed = json_copy(resource)
    for key in ("category", "dosageInstruction", "note", "reasonCode", "identifier", "contained"):
        if key in fixed and not isinstance(fixed[key], list):
            fixed[key] = as_list(fixed[key])
    return fixed
