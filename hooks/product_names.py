"""Reads RxNorm-style drug names ("5 ML zoledronic acid 0.8 MG/ML Injection") into ingredient,
strength and form."""

from __future__ import annotations

import re
from dataclasses import dataclass

# Dose forms, longest first so "Delayed Release Oral Tablet" wins over "Oral Tablet". Each maps to
# its kind: a solid
# counted by the piece ("tablet", "capsule"), a liquid taken by mouth ("oral liquid"), or a
# parenteral form
# ("injection", "syringe").
DOSE_FORMS: tuple[tuple[str, str, str], ...] = tuple(
    sorted(
        (
            ("Delayed Release Oral Tablet", "oral", "tablet"),
            ("Extended Release Oral Tablet", "oral", "tablet"),
            ("Effervescent Oral Tablet", "oral", "tablet"),
            ("Disintegrating Oral Tablet", "oral", "tablet"),
            ("Chewable Tablet", "oral", "tablet"),
            ("Oral Tablet", "oral", "tablet"),
            ("Oral Capsule", "oral", "capsule"),
            ("Oral Solution", "oral", "oral liquid"),
            ("Oral Suspension", "oral", "oral liquid"),
            ("Injectable Solution", "parenteral", "injection"),
            ("Injectable Suspension", "parenteral", "injection"),
            ("Injection", "parenteral", "injection"),
            ("Prefilled Syringe", "parenteral", "syringe"),
            ("Auto-Injector", "parenteral", "syringe"),
            ("Cartridge", "parenteral", "syringe"),
            ("Intravenous Solution", "parenteral", "injection"),
            ("Solution for Infusion", "parenteral", "injection"),
            ("Concentrate for Infusion", "parenteral", "injection"),
            # Plain words seen in local order texts and in RxNorm's dose form groups ("Alendronate
            # Pill").
            ("Tablet", "oral", "tablet"),
            ("Capsule", "oral", "capsule"),
            ("Pill", "oral", "tablet"),
            ("Infusion", "parenteral", "injection"),
        ),
        key=lambda form: -len(form[0]),
    )
)

_NUMBER = r"\d+(?:\.\d+)?|\.\d+"
_LEADING_VOLUME = re.compile(rf"^\s*(?P<volume>{_NUMBER})\s*ML\s+", re.IGNORECASE)
_LEADING_DURATION = re.compile(rf"^\s*(?:{_NUMBER})\s*(?:HR|DAY)\s+", re.IGNORECASE)
_BRAND = re.compile(r"\s*\[(?P<brand>[^\[\]]+)\]\s*$")
# An RxNorm pack of one product: "{4 (risedronate sodium 35 MG Delayed Release Oral Tablet) } Pack
# [Atelvia]".
_PACK = re.compile(
    r"^\s*\{\s*\d+\s*\((?P<inner>[^()]*(?:\([^()]*\)[^()]*)*)\)\s*\}\s*Pack\b", re.IGNORECASE
)
# "<name> <amount> <unit>[ /|per|in [<amount>] <unit>]": "alendronic acid 70 MG", "zoledronic acid
# 0.8 MG/ML",
# "alendronic acid 70 MG per 75 ML", "denosumab 120 MG in 1.7 ML", "zoledronic acid 4 mg/5 mL".
_COMPONENT = re.compile(
    rf"^(?P<name>.+?)\s+(?P<amount>{_NUMBER})\s*(?P<unit>MG|MCG|G|UNT|MEQ)\b"
    rf"(?:\s*(?:/|\bper\b|\bin\b)\s*(?P<per_amount>{_NUMBER})?\s*(?P<per_unit>ML|ACTUAT|HR)\b)?\s*$",
    re.IGNORECASE,
)
_MG_PER_UNIT = {"MG": 1.0, "MCG": 0.001, "G": 1000.0}


@dataclass(frozen=True)
class Component:
    """One ingredient of a name: "zoledronic acid 0.8 MG/ML" is 0.8 mg per mL; "alendronic acid 70
    MG" is 70 mg."""

    name: str
    amount: float
    unit: str  # MG, MCG, G, UNT, MEQ (upper case)
    per_unit: str | None = None  # ML when the amount is per volume
    per_amount: float | None = None  # "4 MG/5 ML": 5; "0.8 MG/ML": None (per 1 mL)

    @property
    def mg(self) -> float | None:
        """The amount in mg (None for units, mEq)."""
        factor = _MG_PER_UNIT.get(self.unit)
        return None if factor is None else self.amount * factor


@dataclass(frozen=True)
class ProductName:
    """What a drug name says: the container volume, the ingredients with their strengths, the dose
    form, the brand."""

    text: str
    components: tuple[Component, ...]
    volume_ml: float | None = None
    dose_form: str | None = None  # as RxNorm writes it, e.g. "Oral Tablet"
    route_kind: str | None = None  # "oral" or "parenteral", from the dose form
    unit: str | None = (
        None  # what one piece is: "tablet", "capsule", "syringe", "injection", "oral liquid"
    )
    brand: str | None = None

    def component(self, matches) -> Component | None:
        """The first component whose name satisfies `matches(lowercase name)`."""
        return next((c for c in self.components if matches(c.name.lower())), None)

    def strength_mg(self, component: Component) -> float | None:
        """Mg in one piece (tablet, vial, syringe): the strength itself, or concentration x the
        container volume."""
        mg = component.mg
        if mg is None:
            return None
        if component.per_unit is None:
            return mg
        if component.per_unit.upper() != "ML":
            return None
        if component.per_amount is not None:  # "4 MG/5 ML": the whole container holds 4 mg
            return mg
        return round(mg * self.volume_ml, 6) if self.volume_ml is not None else None

    def concentration_mg_per_ml(self, component: Component) -> float | None:
        mg = component.mg
        if mg is None or component.per_unit is None or component.per_unit.upper() != "ML":
            if mg is not None and component.per_unit is None and self.volume_ml:
                # "5 ML zoledronic acid 4 MG ...": 4 mg in a 5 mL container
                return round(mg / self.volume_ml, 6)
            return None
        return round(mg / component.per_amount, 6) if component.per_amount else mg

    def container_ml(self, component: Component) -> float | None:
        if component.per_amount is not None and (component.per_unit or "").upper() == "ML":
            return component.per_amount
        return self.volume_ml


def parse_product_name(text: str | None) -> ProductName | None:
    """Parse `[<volume> ML ]<ingredient> <strength> <unit>[/ML][ / <ingredient> ...][ <dose form>][
    [<brand>]]`.

    Returns None when the text has no ingredient with a strength (a bare "alendronate" is a name,
    not a product).
    """
    if not isinstance(text, str) or not text.strip() or len(text) > 500:
        return None
    rest = " ".join(text.split())
    brand = None
    found = _BRAND.search(rest)
    if found:
        brand = found.group("brand").strip()
        rest = rest[: found.start()]
    pack = _PACK.match(rest)
    if pack:
        inner = parse_product_name(pack.group("inner"))
        if inner is None:
            return None
        return ProductName(
            text=text,
            components=inner.components,
            volume_ml=inner.volume_ml,
            dose_form=inner.dose_form,
            route_kind=inner.route_kind,
            unit=inner.unit,
            brand=brand or inner.brand,
        )
    rest = _LEADING_DURATION.sub("", rest)
    volume = None
    found = _LEADING_VOLUME.match(rest)
    if found:
        volume = float(found.group("volume"))
        rest = rest[found.end() :]
    dose_form = route_kind = unit = None
    lowered = rest.lower()
    for form, kind, piece in DOSE_FORMS:
        if lowered.endswith(" " + form.lower()) or lowered == form.lower():
            dose_form, route_kind, unit = form, kind, piece
            rest = rest[: len(rest) - len(form)].rstrip()
            break
    components = []
    for part in re.split(r"\s+/\s+", rest):
        match = _COMPONENT.match(part.strip())
        if match is None or not re.search(r"[A-Za-z]", match.group("name")):
            return None
        per_amount = match.group("per_amount")
        components.append(
            Component(
                name=match.group("name").strip(),
                amount=float(match.group("amount")),
                unit=match.group("unit").upper(),
                per_unit=match.group("per_unit").upper() if match.group("per_unit") else None,
                per_amount=float(per_amount) if per_amount else None,
            )
        )
    if not components:
        return None
    return ProductName(
        text=text,
        components=tuple(components),
        volume_ml=volume,
        dose_form=dose_form,
        route_kind=route_kind,
        unit=unit,
        brand=brand,
    )
