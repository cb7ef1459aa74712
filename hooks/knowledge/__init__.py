"""Loads the versioned clinical knowledge file and builds the lookup indexes the rules read."""
from __future__ import annotations

import json
import re
from functools import cached_property
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Iterable

DEFAULT_KNOWLEDGE_FILE = "bone-agents.json"
MEMO_LIMIT = 10_000


@dataclass(frozen=True)
class Product:
    """A product of the knowledge's product table (an RxNorm SCD, SBD or pack), or one read from a drug's name.

    strength_mg is per unit (tablet, vial, syringe); concentration_mg_per_ml and volume_ml are given for solutions.
    status is "V" when the code was seen with its name in a public source, "UNVERIFIED" when not, "name" when the
    product was read from the order's text rather than the table."""
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
        """mg in `ml` of this product: the whole container is its labelled strength, else mL x concentration."""
        if self.volume_ml is not None and self.strength_mg is not None and abs(ml - self.volume_ml) < 1e-9:
            return float(self.strength_mg)
        if self.concentration_mg_per_ml is None:
            return None
        return round(ml * self.concentration_mg_per_ml, 6)

    def describe(self, ingredient_display: str) -> str:
        """e.g. 'alendronate 70 mg oral tablet' or 'zoledronic acid 4 mg/5 mL injection' for card text."""
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


ORDER_SCOPES = frozenset({"any", "parenteral", "oral-bisphosphonate", "bisphosphonate", "denosumab"})
FACT_GROUPS = frozenset({"creatinine", "egfr", "body_weight", "calcium", "vitamin_d", "pregnancy_status", "medications",
                         "administrations", "conditions", "allergies", "dental_exams", "bone_density", "menopause",
                         "procedures", "dialysis_procedures", "cancer_stage"})


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
        """SNOMED by code; ICD-10-CM codes also match WHO ICD-10 data, but WHO-only codes (K10.2) never match -CM data."""
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
    """A drug class the rules ask about (supplements, anti-angiogenics...), recognised by code, then by name."""
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
        return re.compile("|".join(map(re.escape, self.name_fragments))) if self.name_fragments else None


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
    _value_set_memo: dict[tuple[str | None, str | None], frozenset[str]] = field(
        default_factory=dict, repr=False, compare=False)

    def threshold(self, name: str) -> Any:
        entry = self.thresholds[name]
        return entry["value"] if isinstance(entry, dict) and "value" in entry else entry

    def formulation(self, formulation_id: str) -> Formulation:
        return next(f for f in self.formulations if f.id == formulation_id)

    def formulations_for(self, ingredient: str) -> Iterable[Formulation]:
        return (f for f in self.formulations if f.ingredient == ingredient)

    def loinc_codes(self, kind: str) -> list[str]:
        return list(self.raw["observations"][kind]["loinc"])

    def rule_meta(self, rule_id: str) -> dict[str, Any]:
        return self.raw["rules"][rule_id]

    def value_sets_of(self, system: str | None, code: str | None) -> frozenset[str]:
        """The condition value sets a coding belongs to, memoised: every Condition of every request asks this."""
        key = (system, code)
        found = self._value_set_memo.get(key)
        if found is None:
            found = frozenset(name for name, value_set in self.condition_sets.items()
                              if value_set.matches(system, code, self.systems))
            if len(self._value_set_memo) > MEMO_LIMIT:
                self._value_set_memo.clear()  # hostile input with endless distinct codes must not grow memory
            self._value_set_memo[key] = found
        return found

    def coding_in(self, pairs: Iterable[Iterable[str]], system: str | None, code: str | None) -> bool:
        """Whether (system, code) is one of the knowledge file's [system key, code] pairs."""
        return any(system == self.systems[key] and code == value for key, value in pairs)

    def override_reason(self, key: str) -> dict[str, str]:
        entry = self.raw["override_reasons"][key]
        return {"system": self.systems[entry["system"]], "code": entry["code"], "display": entry["display"]}

    def unit_factor(self, table: str, unit: str | None) -> float | None:
        if not unit:
            return None
        factors = self.raw["units"][table]
        factor = factors.get(unit.strip())
        return factor if isinstance(factor, (int, float)) else None


def load_knowledge(path: str | None = None) -> Knowledge:
    """Load the bundled knowledge file, or an operator-supplied one at `path`."""
    if path:
        with open(path, "rb") as handle:
            raw = json.load(handle)
    else:
        raw = json.loads(resources.files(__package__).joinpath(DEFAULT_KNOWLEDGE_FILE).read_bytes())
    return build_knowledge(raw)


def build_knowledge(raw: dict[str, Any]) -> Knowledge:
    systems = raw["systems"]
    ingredients = raw["ingredients"]
    ingredient_by_rxnorm = {code: key for key, entry in ingredients.items() for code in entry["rxnorm"]}
    ingredient_by_atc = {code: key for key, entry in ingredients.items() for code in entry["atc"]}
    fragments = tuple((fragment.lower(), key) for key, entry in ingredients.items()
                      for fragment in dict.fromkeys([*entry["names"], *entry.get("synonyms", [])]))
    products = {entry["rxnorm"]: _product(entry) for entry in raw["products"]}
    if len(products) != len(raw["products"]):
        raise ValueError("the product table lists an RxNorm code twice")
    formulations = tuple(
        Formulation(
            id=entry["id"], display=entry["display"], ingredient=entry["ingredient"], routes=tuple(entry["routes"]),
            dose_mg_range=tuple(entry["dose_mg_range"]) if entry.get("dose_mg_range") else None,
            strength_mg=entry.get("strength_mg"), renal=entry.get("renal", {}), label_source=entry.get("label_source"),
            min_infusion_minutes=entry.get("min_infusion_minutes"), max_dose_mg=entry.get("max_dose_mg"), raw=entry,
        )
        for entry in raw["formulations"]
    )
    route_by_snomed = {code: route for route, entry in raw["routes"].items() for code in entry["snomed"]}
    route_by_text = {text: route for route, entry in raw["routes"].items() for text in entry["text"]}
    observation_kind = {code: kind for kind, entry in raw["observations"].items() for code in entry["loinc"]}
    condition_sets = {
        name: ConditionValueSet(
            name=name,
            snomed=frozenset(entry.get("snomed", [])),
            icd_codes=frozenset(normalise_icd(c) for c in entry.get("icd10cm", [])),
            icd_prefixes=tuple(normalise_icd(p) for p in entry.get("icd10cm_prefixes", [])),
            who_icd_codes=frozenset(normalise_icd(c) for c in entry.get("icd10_who", [])),
        )
        for name, entry in raw["conditions"].items()
    }
    medication_classes = {
        name: MedicationClass(
            name=name, display=entry["display"], rxnorm=frozenset(entry.get("rxnorm", [])), atc=frozenset(entry.get("atc", [])),
            atc_prefixes=tuple(entry.get("atc_prefixes", [])), name_fragments=tuple(n.lower() for n in entry.get("names", [])),
            excluded_routes=frozenset(entry.get("excluded_routes", [])),
        )
        for name, entry in raw["medication_classes"].items()
    }
    sources = {key: Source(key, entry["label"], entry.get("url"), entry.get("status", "")) for key, entry in raw["sources"].items()}
    _check_references(raw, sources, formulations)
    return Knowledge(
        version=raw["version"], raw=raw, systems=systems, sources=sources,
        ingredient_display={k: v["display"] for k, v in ingredients.items()},
        ingredient_class={k: v["class"] for k, v in ingredients.items()},
        ingredient_default_route={k: v["default_route"] for k, v in ingredients.items() if v.get("default_route")},
        ingredient_routes={k: tuple(v.get("routes", [v["default_route"]] if v.get("default_route") else []))
                           for k, v in ingredients.items()},
        ingredient_parenteral_route={k: v["parenteral_route"] for k, v in ingredients.items()
                                     if v.get("parenteral_route")},
        ingredient_by_rxnorm=ingredient_by_rxnorm, ingredient_by_atc=ingredient_by_atc,
        ingredient_name_fragments=fragments,
        class_atc_prefixes={k: tuple(v) for k, v in raw["class_atc_prefixes"].items()},
        product_by_rxnorm=products, formulations=formulations,
        route_by_snomed=route_by_snomed, route_by_text=route_by_text,
        observation_kind_by_loinc=observation_kind, condition_sets=condition_sets,
        medication_classes=medication_classes, thresholds=raw["thresholds"],
    )


def _product(entry: dict[str, Any]) -> Product:
    return Product(
        rxnorm=entry["rxnorm"], display=entry["display"], ingredient=entry["ingredient"], route=entry.get("route"),
        strength_mg=entry.get("strength_mg"), tty=entry.get("tty"), unit=entry.get("unit"),
        concentration_mg_per_ml=entry.get("concentration_mg_per_ml"), volume_ml=entry.get("volume_ml"),
        dose_form=entry.get("dose_form"), brand=entry.get("brand"), status=entry.get("status", ""),
        source=entry.get("source"))


def _check_references(raw: dict[str, Any], sources: dict[str, Source], formulations: tuple[Formulation, ...]) -> None:
    """Fail at start-up, not mid-request, when the knowledge file cites a source or ingredient it does not define."""
    ingredients = raw["ingredients"]
    for product in raw["products"]:
        if product["ingredient"] not in ingredients:
            raise ValueError(f"product {product['rxnorm']} names unknown ingredient {product['ingredient']}")
        if product.get("route") is not None and product["route"] not in raw["routes"]:
            raise ValueError(f"product {product['rxnorm']} names unknown route {product['route']}")
        if not product.get("status"):
            raise ValueError(f"product {product['rxnorm']} has no verification status")
    for key, entry in ingredients.items():
        named = [*entry.get("routes", []), entry.get("parenteral_route"), entry.get("default_route")]
        for route in filter(None, named):
            if route not in raw["routes"]:
                raise ValueError(f"ingredient {key} names unknown route {route}")
    for formulation in formulations:
        if formulation.ingredient not in ingredients:
            raise ValueError(f"formulation {formulation.id} names unknown ingredient")
        cited = [formulation.renal.get("source"), formulation.renal.get("dose_table", {}).get("source")]
        for key in filter(None, cited):
            if key not in sources:
                raise ValueError(f"formulation {formulation.id} cites unknown source {key}")
    for rule_id, meta in raw["rules"].items():
        for key in meta["sources"]:
            if key not in sources:
                raise ValueError(f"rule {rule_id} cites unknown source {key}")
        for reason in meta["override_reasons"]:
            if reason not in raw["override_reasons"]:
                raise ValueError(f"rule {rule_id} names unknown override reason {reason}")
        if not set(meta["applies_to"]) <= ORDER_SCOPES or not set(meta["needs"]) <= FACT_GROUPS:
            raise ValueError(f"rule {rule_id} has an unknown scope or fact group")
    formulation_ids = {f.id for f in formulations}
    thresholds = raw["thresholds"]
    for table in ("minimum_intervals", "oral_bisphosphonate_regimens", "metastatic_inappropriate_regimens"):
        for entry in thresholds[table]["entries"]:
            if entry.get("formulation") and entry["formulation"] not in formulation_ids:
                raise ValueError(f"{table} names unknown formulation {entry['formulation']}")
            if entry.get("ingredient") and entry["ingredient"] not in ingredients:
                raise ValueError(f"{table} names unknown ingredient {entry['ingredient']}")
            if entry.get("source") and entry["source"] not in sources:
                raise ValueError(f"{table} cites unknown source {entry['source']}")
    for name, regimen in raw["regimens"]["entries"].items():
        system, _code, _display = regimen["medication"]
        if system not in raw["systems"] or regimen["route"] not in raw["routes"]:
            raise ValueError(f"regimen {name} names an unknown code system or route")
    regimens = raw["regimens"]["entries"]
    for name, regimen in regimens.items():
        if regimen.get("formulation") and regimen["formulation"] not in formulation_ids:
            raise ValueError(f"regimen {name} names unknown formulation {regimen['formulation']}")
    offered = thresholds["metastatic_regimen_suggestions"]
    for key in [*offered["default"], *offered["fallback"], offered["recommended"],
                *(k for keys in offered["by_formulation"].values() for k in keys)]:
        if key not in regimens:
            raise ValueError(f"metastatic_regimen_suggestions names unknown regimen {key}")
    for entry in raw.get("administration_texts", {}).get("entries", []):
        if entry["ingredient"] not in ingredients or entry["source"] not in sources:
            raise ValueError(f"administration text for {entry['ingredient']} names an unknown ingredient or source")
    for formulation in raw["formulations"]:
        for key in ("infusion_source", "max_dose_source", "label_source"):
            if formulation.get(key) and formulation[key] not in sources:
                raise ValueError(f"formulation {formulation['id']} cites unknown source {formulation[key]}")
