"""The knowledge as the rules read it: products, formulations, sources, value sets, classes, the
Knowledge view."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import orjson

BUNDLED_KNOWLEDGE = "bundled knowledge file"
MEMO_LIMIT = 10_000


@dataclass(frozen=True)
class Product:
    """A product of the knowledge's product table (an RxNorm SCD, SBD or pack), or one read from a
    drug's name.

    strength_mg is per unit (tablet, vial, syringe); concentration_mg_per_ml and volume_ml are given
    for solutions. status is "V" when the code was seen with its name in a public source,
    "UNVERIFIED" when not, "name" when the product was read from the order's text rather than the
    table.
    """

    rxnorm: str
    display: str
    ingredient: str
    route: str | None
    strength_mg: float | None
    tty: str | None = None
    unit: str | None = None
    concentration_mg_per_ml: float | None = None
    volume_ml: float | None = None
    dose_form: str | None = None
    brand: str | None = None
    status: str = ""
    source: str | None = field(default=None, compare=False)

    @property
    def verified(self) -> bool:
        return self.status == "V"

    def mg_for_volume(self, ml: float) -> float | None:
        """Mg in `ml` of this product: the whole container is its labelled strength, else mL x
        concentration."""
        if (
            self.volume_ml is not None
            and self.strength_mg is not None
            and abs(ml - self.volume_ml) < 1e-9
        ):
            return float(self.strength_mg)
        if self.concentration_mg_per_ml is None:
            return None
        return round(ml * self.concentration_mg_per_ml, 6)

    def describe(self, ingredient_display: str) -> str:
        """e.g. 'alendronate 70 mg oral tablet' or 'zoledronic acid 4 mg/5 mL injection' for card
        text."""
        parts = [ingredient_display]
        if self.strength_mg is not None:
            if self.volume_ml is not None and self.unit not in ("tablet", "capsule"):
                parts.append(f"{self.strength_mg:g} mg/{self.volume_ml:g} mL")
            else:
                parts.append(f"{self.strength_mg:g} mg")
        elif self.concentration_mg_per_ml is not None:
            parts.append(f"{self.concentration_mg_per_ml:g} mg/mL")
        if self.dose_form:
            parts.append(self.dose_form.lower())
        if self.brand:
            parts.append(f"({self.brand})")
        return " ".join(parts)


@dataclass(frozen=True)
class Formulation:
    id: str
    display: str
    ingredient: str
    routes: tuple[str, ...]
    dose_mg_range: tuple[float, float] | None
    strength_mg: float | None
    renal: dict[str, Any]
    label_source: str | None = None
    min_infusion_minutes: float | None = None
    max_dose_mg: float | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def admits(self, route: str | None, dose_mg: float | None) -> bool:
        if route is not None and route not in self.routes:
            return False
        if dose_mg is not None and self.dose_mg_range is not None:
            low, high = self.dose_mg_range
            return low <= dose_mg <= high
        return True


@dataclass(frozen=True)
class Source:
    key: str
    label: str
    url: str | None
    status: str
    short: str | None = None  # the citation a card's source line shows ('Zometa PI (label)')


def normalise_icd(code: str) -> str:
    """ICD-10 codes arrive with and without the dot; compare them dotless and upper-case."""
    return code.replace(".", "").strip().upper()


@dataclass(frozen=True)
class ConditionValueSet:
    name: str
    snomed: frozenset[str]
    icd_codes: frozenset[str]
    icd_prefixes: tuple[str, ...]
    who_icd_codes: frozenset[str] = frozenset()

    def matches(self, system: str | None, code: str | None, systems: dict[str, str]) -> bool:
        """SNOMED by code; ICD-10-CM codes also match WHO ICD-10 data, but WHO-only codes (K10.2)
        never match -CM data."""
        if not code:
            return False
        if system == systems["snomed"]:
            return code in self.snomed
        if system in (systems["icd10cm"], systems["icd10"]):
            dotless = normalise_icd(code)
            if dotless in self.icd_codes or dotless.startswith(self.icd_prefixes):
                return True
            return system == systems["icd10"] and dotless in self.who_icd_codes
        return False


@dataclass(frozen=True)
class MedicationClass:
    """A drug class the rules ask about (supplements, anti-angiogenics...), recognised by code, then
    by name."""

    name: str
    display: str
    rxnorm: frozenset[str]
    atc: frozenset[str]
    atc_prefixes: tuple[str, ...]
    name_fragments: tuple[str, ...]
    excluded_routes: frozenset[str]

    @cached_property
    def name_pattern(self) -> re.Pattern[str] | None:
        """One compiled search for all name fragments (names are matched in lower case)."""
        return (
            re.compile("|".join(map(re.escape, self.name_fragments)))
            if self.name_fragments
            else None
        )


@dataclass(frozen=True)
class Knowledge:
    """Read-only view of the knowledge file; every rule threshold comes from here."""

    version: str
    raw: dict[str, Any]
    systems: dict[str, str]
    sources: dict[str, Source]
    ingredient_display: dict[str, str]
    ingredient_class: dict[str, str]
    ingredient_default_route: dict[str, str]
    ingredient_routes: dict[str, tuple[str, ...]]
    ingredient_parenteral_route: dict[str, str]
    ingredient_by_rxnorm: dict[str, str]
    ingredient_by_atc: dict[str, str]
    ingredient_name_fragments: tuple[tuple[str, str], ...]
    class_atc_prefixes: dict[str, tuple[str, ...]]
    product_by_rxnorm: dict[str, Product]
    formulations: tuple[Formulation, ...]
    route_by_snomed: dict[str, str]
    route_by_text: dict[str, str]
    observation_kind_by_loinc: dict[str, str]
    condition_sets: dict[str, ConditionValueSet]
    medication_classes: dict[str, MedicationClass]
    thresholds: dict[str, Any] = field(repr=False)
    # Memos start empty in every Knowledge, a dataclasses.replace()d variant included (init=False):
    # a variant with another product table must not answer from the original's memory.
    _value_set_memo: dict[tuple[str | None, str | None], frozenset[str]] = field(
        default_factory=dict, repr=False, compare=False, init=False
    )
    _recognition_memo: dict[tuple[str, bytes], Any] = field(
        default_factory=dict, repr=False, compare=False, init=False
    )
    # the file it came from, as errors name it
    origin: str = field(default=BUNDLED_KNOWLEDGE, compare=False)
    # Each threshold's value ({"value": ..., "source": ...} entries unwrapped), worked out once: the
    # rules ask for one about fifty times a call, the suggestion gate's trials included.
    _threshold_values: dict[str, Any] = field(
        default_factory=dict, repr=False, compare=False, init=False
    )

    def __post_init__(self) -> None:
        self._threshold_values.update(
            (name, entry["value"] if isinstance(entry, dict) and "value" in entry else entry)
            for name, entry in self.thresholds.items()
        )

    def threshold(self, name: str) -> Any:
        return self._threshold_values[name]

    def formulation(self, formulation_id: str) -> Formulation:
        return next(f for f in self.formulations if f.id == formulation_id)

    def formulations_for(self, ingredient: str) -> tuple[Formulation, ...]:
        """The ingredient's formulations in file order (file order encodes precedence)."""
        return self._formulations_by_ingredient.get(ingredient, ())

    @cached_property
    def _formulations_by_ingredient(self) -> dict[str, tuple[Formulation, ...]]:
        index: dict[str, list[Formulation]] = {}
        for formulation in self.formulations:
            index.setdefault(formulation.ingredient, []).append(formulation)
        return {ingredient: tuple(found) for ingredient, found in index.items()}

    def recognised(self, question: str, about: Any, compute: Callable[[], Any]) -> Any:
        """What `question` about a drug (or a kind of order) gave before for the same JSON `about`
        (its concepts, its dosage; compared with sorted keys), else `compute()` remembered: the same
        few products recur in every request, and recognising them (names parsed, classes matched,
        dosage read, rules in scope) is a pure function of that JSON and this knowledge. Bounded
        like the value-set memo; a race only computes twice; what JSON cannot encode is computed
        every time."""
        try:
            key = (question, orjson.dumps(about, option=orjson.OPT_SORT_KEYS))
        except (TypeError, orjson.JSONEncodeError):
            return compute()
        memo = self._recognition_memo
        try:
            return memo[key]
        except KeyError:
            pass
        found = compute()
        if len(memo) > MEMO_LIMIT:
            memo.clear()  # hostile input with endless distinct drugs must not grow memory
        memo[key] = found
        return found

    def loinc_codes(self, kind: str) -> list[str]:
        return list(self.raw["observations"][kind]["loinc"])

    def rule_meta(self, rule_id: str) -> dict[str, Any]:
        return self.raw["rules"][rule_id]

    def rule_scope(self, rule_id: str) -> tuple[frozenset[str], frozenset[str]]:
        """A rule's `applies_to` kinds of order and its `only_for` ingredients or formulations."""
        return self._rule_scopes[rule_id]

    @cached_property
    def _rule_scopes(self) -> dict[str, tuple[frozenset[str], frozenset[str]]]:
        return {
            rule_id: (frozenset(meta["applies_to"]), frozenset(meta.get("only_for", ())))
            for rule_id, meta in self.raw["rules"].items()
        }

    def value_sets_of(self, system: str | None, code: str | None) -> frozenset[str]:
        """The condition value sets a coding belongs to, memoised: every Condition of every request
        asks this."""
        key = (system, code)
        found = self._value_set_memo.get(key)
        if found is None:
            found = frozenset(
                name
                for name, value_set in self.condition_sets.items()
                if value_set.matches(system, code, self.systems)
            )
            if len(self._value_set_memo) > MEMO_LIMIT:
                # hostile input with endless distinct codes must not grow memory
                self._value_set_memo.clear()
            self._value_set_memo[key] = found
        return found

    def coding_in(
        self, pairs: Iterable[Iterable[str]], system: str | None, code: str | None
    ) -> bool:
        """Whether (system, code) is one of the knowledge file's [system key, code] pairs."""
        return any(system == self.systems[key] and code == value for key, value in pairs)

    def override_reason(self, key: str) -> dict[str, str]:
        entry = self.raw["override_reasons"][key]
        return {
            "system": self.systems[entry["system"]],
            "code": entry["code"],
            "display": entry["display"],
        }

    def unit_factor(self, table: str, unit: str | None) -> float | None:
        if not unit:
            return None
        factors = self.raw["units"][table]
        factor = factors.get(unit.strip())
        return factor if isinstance(factor, (int, float)) else None
