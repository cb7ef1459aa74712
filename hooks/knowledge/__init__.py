"""Loads the versioned clinical knowledge file and builds the lookup indexes the rules read."""
from __future__ import annotations

import json
import re
from functools import cached_property, lru_cache
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Callable, Iterable

DEFAULT_KNOWLEDGE_FILE = "bone-agents.json"
SCHEMA_FILE = "bone-agents.schema.json"
BUNDLED_KNOWLEDGE = "bundled knowledge file"
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
    """Load the bundled knowledge file, or an operator-supplied one at `path`, checked against its JSON Schema and
    its cross references first. Any problem raises KnowledgeError, one line naming the file, the place and the
    problem."""
    where = path or BUNDLED_KNOWLEDGE
    try:
        if path:
            with open(path, "rb") as handle:
                data = handle.read()
        else:
            data = resources.files(__package__).joinpath(DEFAULT_KNOWLEDGE_FILE).read_bytes()
    except FileNotFoundError:
        raise KnowledgeError(where, "no such file") from None
    except OSError as error:
        raise KnowledgeError(where, f"cannot be read ({error.strerror or error})") from None
    try:
        raw = json.loads(data)
    except json.JSONDecodeError as error:
        problem = f"not valid JSON (line {error.lineno}, column {error.colno}: {error.msg})"
        raise KnowledgeError(where, problem) from None
    except UnicodeDecodeError as error:
        raise KnowledgeError(where, f"not valid JSON (not UTF-8 text: byte {error.start})") from None
    return build_knowledge(raw, where)


def build_knowledge(raw: dict[str, Any], where: str = "knowledge document") -> Knowledge:
    """The Knowledge of a parsed knowledge document; `where` names it in errors (a path, or the bundled file)."""
    validate_knowledge(raw, where)
    systems = raw["systems"]
    ingredients = raw["ingredients"]
    ingredient_by_rxnorm = {code: key for key, entry in ingredients.items() for code in entry["rxnorm"]}
    ingredient_by_atc = {code: key for key, entry in ingredients.items() for code in entry["atc"]}
    fragments = tuple((fragment.lower(), key) for key, entry in ingredients.items()
                      for fragment in dict.fromkeys([*entry["names"], *entry.get("synonyms", [])]))
    products = {entry["rxnorm"]: _product(entry) for entry in raw["products"]}
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


# --- checking a knowledge document ------------------------------------------------------------------------------------

class KnowledgeError(ValueError):
    """The knowledge file cannot be used. str() is one line: '<file>: at <path>: <problem>' for a schema or
    cross-reference violation ('<file>: <problem>' when the file cannot be read or parsed); `where` and `problem` hold
    the two parts."""

    def __init__(self, where: str, problem: str) -> None:
        self.where = where
        self.problem = problem.replace("\r", " ").replace("\n", " ")
        super().__init__(f"{where}: {self.problem}")


def validate_knowledge(raw: Any, where: str = "knowledge document") -> None:
    """Raise KnowledgeError at the first violation of bone-agents.schema.json (in file order), else at the first broken
    cross reference (a source, ingredient, formulation, regimen, value set or class named but not defined)."""
    found = knowledge_schema().first_error(raw)
    if found is not None:
        raise KnowledgeError(where, f"at {found[0]}: {found[1]}")
    _check_references(raw, where)


@lru_cache(maxsize=1)
def knowledge_schema() -> "KnowledgeSchema":
    """The bundled schema, read and prepared once per process."""
    return KnowledgeSchema(json.loads(resources.files(__package__).joinpath(SCHEMA_FILE).read_bytes()))


def _is_type(value: Any, name: str) -> bool:
    if name == "number":
        return _is_number(value)
    if name == "integer":
        return _is_number(value) and (isinstance(value, int) or value.is_integer())
    return isinstance(value, _JSON_TYPES[name])


def _same(a: Any, b: Any) -> bool:
    """JSON equality: true is not 1."""
    return isinstance(a, bool) == isinstance(b, bool) and a == b


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _show(value: Any) -> str:
    """A value as jsonschema shows it (repr), cut to keep the message on a short line."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def path_text(path: Iterable[str | int]) -> str:
    """('products', 12, 'strength_mg') -> 'products[12].strength_mg'; keys that are not plain names are quoted."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        elif _PLAIN_KEY.fullmatch(part):
            text += f".{part}" if text else part
        else:
            text += f"[{part!r}]"
    return text or "top level"


_JSON_TYPES: dict[str, type | tuple[type, ...]] = {
    "object": dict, "array": list, "string": str, "boolean": bool, "null": type(None)}
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_$-]+")
_Violation = tuple[tuple[Any, ...], str]


class KnowledgeSchema:
    """A draft-07 JSON Schema checked by walking it, with jsonschema's messages (an unexpected key is always reported
    as "Additional properties are not allowed"). It covers the keywords the knowledge schema uses and refuses any
    other, so an edit to the schema cannot be silently ignored. (fastjsonschema compiles this schema to about 1 MB of
    Python, some 250 ms per process before the first check; the walk takes about 7 ms.) The tests check it agrees
    with the jsonschema package."""

    ANNOTATIONS = frozenset({"$schema", "$id", "$comment", "title", "description", "definitions", "default",
                             "examples"})

    def __init__(self, schema: dict[str, Any]) -> None:
        if schema.get("$schema") != "http://json-schema.org/draft-07/schema#":
            raise ValueError("the knowledge schema must declare $schema http://json-schema.org/draft-07/schema#")
        self.schema = schema
        self._regex: dict[str, re.Pattern[str]] = {}
        self._prepare(schema, "#")

    def first_error(self, instance: Any) -> tuple[str, str] | None:
        """(path, message) of the violation that comes first in the document, or None when it conforms."""
        errors: list[_Violation] = []
        self._check(instance, self.schema, (), errors)
        if not errors:
            return None
        path, message = min(errors, key=lambda error: _document_order(instance, error[0]))
        return path_text(path), message

    def errors(self, instance: Any) -> list[tuple[str, str]]:
        """Every violation as (path, message), in document order."""
        errors: list[_Violation] = []
        self._check(instance, self.schema, (), errors)
        errors.sort(key=lambda error: _document_order(instance, error[0]))
        return [(path_text(path), message) for path, message in errors]

    # The walk. Each keyword applies to its own type only, as in JSON Schema.

    def _check(self, value: Any, schema: Any, path: tuple[Any, ...], errors: list[_Violation]) -> None:
        if schema is True:
            return
        if schema is False:
            errors.append((path, f"False schema does not allow {_show(value)}"))
            return
        if "$ref" in schema:  # draft-07: $ref replaces its sibling keywords
            self._check(value, self._resolve(schema["$ref"]), path, errors)
            return
        for keyword, argument in schema.items():
            check = self._CHECKS.get(keyword)
            if check is not None:
                check(self, value, argument, schema, path, errors)

    def _valid(self, value: Any, schema: Any, path: tuple[Any, ...]) -> bool:
        errors: list[_Violation] = []
        self._check(value, schema, path, errors)
        return not errors

    def _type(self, value, argument, schema, path, errors) -> None:
        types = argument if isinstance(argument, list) else [argument]
        if not any(_is_type(value, name) for name in types):
            errors.append((path, f"{_show(value)} is not of type {', '.join(map(repr, types))}"))

    def _enum(self, value, argument, schema, path, errors) -> None:
        if not any(_same(value, option) for option in argument):
            errors.append((path, f"{_show(value)} is not one of {argument!r}"))

    def _pattern(self, value, argument, schema, path, errors) -> None:
        if isinstance(value, str) and not self._regex[argument].search(value):
            errors.append((path, f"{_show(value)} does not match {argument!r}"))

    def _min_length(self, value, argument, schema, path, errors) -> None:
        if isinstance(value, str) and len(value) < argument:
            errors.append((path, f"{_show(value)} {'should be non-empty' if argument == 1 else 'is too short'}"))

    def _minimum(self, value, argument, schema, path, errors) -> None:
        if _is_number(value) and value < argument:
            errors.append((path, f"{value!r} is less than the minimum of {argument!r}"))

    def _exclusive_minimum(self, value, argument, schema, path, errors) -> None:
        if _is_number(value) and value <= argument:
            errors.append((path, f"{value!r} is less than or equal to the minimum of {argument!r}"))

    def _maximum(self, value, argument, schema, path, errors) -> None:
        if _is_number(value) and value > argument:
            errors.append((path, f"{value!r} is greater than the maximum of {argument!r}"))

    def _min_items(self, value, argument, schema, path, errors) -> None:
        if isinstance(value, list) and len(value) < argument:
            errors.append((path, f"{_show(value)} {'should be non-empty' if argument == 1 else 'is too short'}"))

    def _max_items(self, value, argument, schema, path, errors) -> None:
        if isinstance(value, list) and len(value) > argument:
            errors.append((path, f"{_show(value)} is too long"))

    def _items(self, value, argument, schema, path, errors) -> None:
        if not isinstance(value, list):
            return
        if isinstance(argument, list):
            for index, (item, item_schema) in enumerate(zip(value, argument)):
                self._check(item, item_schema, (*path, index), errors)
            if schema.get("additionalItems") is False and len(value) > len(argument):
                extra = ", ".join(map(_show, value[len(argument):]))
                verb = "was" if len(value) == len(argument) + 1 else "were"
                errors.append((path, f"Additional items are not allowed ({extra} {verb} unexpected)"))
        else:
            for index, item in enumerate(value):
                self._check(item, argument, (*path, index), errors)

    def _required(self, value, argument, schema, path, errors) -> None:
        if isinstance(value, dict):
            errors.extend((path, f"{key!r} is a required property") for key in argument if key not in value)

    def _properties(self, value, argument, schema, path, errors) -> None:
        if isinstance(value, dict):
            for key, sub in argument.items():
                if key in value:
                    self._check(value[key], sub, (*path, key), errors)

    def _pattern_properties(self, value, argument, schema, path, errors) -> None:
        if isinstance(value, dict):
            for pattern, sub in argument.items():
                regex = self._regex[pattern]
                for key, item in value.items():
                    if regex.search(key):
                        self._check(item, sub, (*path, key), errors)

    def _additional_properties(self, value, argument, schema, path, errors) -> None:
        if not isinstance(value, dict):
            return
        known = schema.get("properties", {})
        patterns = [self._regex[p] for p in schema.get("patternProperties", {})]
        extra = [key for key in value if key not in known and not any(p.search(key) for p in patterns)]
        if not extra:
            return
        if argument is False:
            verb = "was" if len(extra) == 1 else "were"
            errors.append((path, f"Additional properties are not allowed ({', '.join(map(repr, extra))} {verb} "
                                 "unexpected)"))
        else:
            for key in extra:
                self._check(value[key], argument, (*path, key), errors)

    def _property_names(self, value, argument, schema, path, errors) -> None:
        if isinstance(value, dict):
            for key in value:
                self._check(key, argument, path, errors)

    def _dependencies(self, value, argument, schema, path, errors) -> None:
        if not isinstance(value, dict):
            return
        for key, needed in argument.items():
            if key not in value:
                continue
            if isinstance(needed, list):
                errors.extend((path, f"{other!r} is a dependency of {key!r}") for other in needed if other not in value)
            else:
                self._check(value, needed, path, errors)

    def _all_of(self, value, argument, schema, path, errors) -> None:
        for sub in argument:
            self._check(value, sub, path, errors)

    def _any_of(self, value, argument, schema, path, errors) -> None:
        if not any(self._valid(value, sub, path) for sub in argument):
            errors.append((path, f"{_show(value)} is not valid under any of the given schemas"))

    def _one_of(self, value, argument, schema, path, errors) -> None:
        matches = sum(self._valid(value, sub, path) for sub in argument)
        if matches == 0:
            errors.append((path, f"{_show(value)} is not valid under any of the given schemas"))
        elif matches > 1:
            errors.append((path, f"{_show(value)} is valid under more than one of the given schemas"))

    def _not(self, value, argument, schema, path, errors) -> None:
        if self._valid(value, argument, path):
            errors.append((path, f"{_show(value)} should not be valid under {argument!r}"))

    _CHECKS: dict[str, Callable[..., None]] = {
        "type": _type, "enum": _enum, "pattern": _pattern, "minLength": _min_length,
        "minimum": _minimum, "exclusiveMinimum": _exclusive_minimum, "maximum": _maximum, "minItems": _min_items,
        "maxItems": _max_items, "items": _items, "additionalItems": None, "required": _required,
        "properties": _properties, "patternProperties": _pattern_properties,
        "additionalProperties": _additional_properties, "propertyNames": _property_names,
        "dependencies": _dependencies, "allOf": _all_of, "anyOf": _any_of, "oneOf": _one_of, "not": _not,
    }

    # Preparation: every keyword known, every pattern compiled, every $ref resolvable.

    def _resolve(self, ref: str) -> Any:
        if not ref.startswith("#/"):
            raise ValueError(f"the knowledge schema may only use local $ref, not {ref!r}")
        node: Any = self.schema
        for part in ref[2:].split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        return node

    def _compile(self, pattern: str) -> None:
        if pattern not in self._regex:
            self._regex[pattern] = re.compile(pattern)

    def _prepare(self, schema: Any, where: str) -> None:
        if isinstance(schema, bool):
            return
        if not isinstance(schema, dict):
            raise ValueError(f"knowledge schema {where}: a schema must be an object or a boolean")
        unknown = set(schema) - set(self._CHECKS) - self.ANNOTATIONS - {"$ref"}
        if unknown:
            raise ValueError(f"knowledge schema {where}: keyword {sorted(unknown)[0]!r} is not supported")
        if "$ref" in schema:
            try:
                self._resolve(schema["$ref"])
            except (KeyError, TypeError):
                raise ValueError(f"knowledge schema {where}: $ref {schema['$ref']!r} does not resolve") from None
        if "pattern" in schema:
            self._compile(schema["pattern"])
        for pattern in schema.get("patternProperties", {}):
            self._compile(pattern)
        for keyword in ("properties", "patternProperties", "definitions"):
            for key, sub in schema.get(keyword, {}).items():
                self._prepare(sub, f"{where}/{keyword}/{key}")
        for keyword in ("additionalProperties", "additionalItems", "propertyNames", "not"):
            if keyword in schema:
                self._prepare(schema[keyword], f"{where}/{keyword}")
        for keyword in ("allOf", "anyOf", "oneOf"):
            for index, sub in enumerate(schema.get(keyword, [])):
                self._prepare(sub, f"{where}/{keyword}/{index}")
        items = schema.get("items")
        for index, sub in enumerate(items if isinstance(items, list) else [items] if items is not None else []):
            self._prepare(sub, f"{where}/items" + (f"/{index}" if isinstance(items, list) else ""))
        for key, needed in schema.get("dependencies", {}).items():
            if not isinstance(needed, list):
                self._prepare(needed, f"{where}/dependencies/{key}")


def _document_order(instance: Any, path: tuple[Any, ...]) -> tuple[int, ...]:
    """Where a path lies in the document: keys by their position in the file, items by index (a parent before its
    children), so the error reported is the first one a reader meets."""
    order = []
    for part in path:
        if isinstance(instance, dict) and part in instance:
            order.append(list(instance).index(part))
            instance = instance[part]
        elif isinstance(instance, list) and isinstance(part, int) and part < len(instance):
            order.append(part)
            instance = instance[part]
        else:
            break
    return tuple(order)


# --- cross references -------------------------------------------------------------------------------------------------



def _check_references(raw: dict[str, Any], where: str) -> None:
    """Fail at start-up, not mid-request, when the knowledge file names a source, ingredient, formulation, route,
    regimen, value set, medication class or override reason it does not define, lists a code twice or writes a dose
    range backwards (otherwise: a KeyError mid-request, or a rule that silently never matches). Runs after the
    schema."""
    for path, problem in _reference_problems(raw):
        raise KnowledgeError(where, f"at {path_text(path)}: {problem}")


def _unknown(path: tuple[Any, ...], value: Any, defined: Any, what: str) -> Iterable[_Violation]:
    if value is not None and value not in defined:
        yield path, f"unknown {what} {value!r}"


def _each(path: tuple[Any, ...], values: Iterable[Any], defined: Any, what: str) -> Iterable[_Violation]:
    for index, value in enumerate(values):
        yield from _unknown((*path, index), value, defined, what)


def _backwards(path: tuple[Any, ...], entry: dict[str, Any]) -> Iterable[_Violation]:
    low, high = entry.get("dose_mg_range") or (0, 0)
    if low > high:
        yield (*path, "dose_mg_range"), f"lowest dose {low!r} is above highest dose {high!r}"


def _twice(path: tuple[Any, ...], value: str, seen: dict[str, tuple[Any, ...]], what: str) -> Iterable[_Violation]:
    if value in seen:
        yield path, f"{what} {value!r} is listed twice (also at {path_text(seen[value])})"
    seen.setdefault(value, path)


def _reference_problems(raw: dict[str, Any]) -> Iterable[_Violation]:
    """Each broken cross reference as (path, problem), sections in file order (the document conforms to the schema)."""
    sources, ingredients, routes = raw["sources"], raw["ingredients"], raw["routes"]
    formulations = {entry["id"] for entry in raw["formulations"]}
    for key, entry in ingredients.items():
        for name in ("default_route", "parenteral_route"):
            yield from _unknown(("ingredients", key, name), entry.get(name), routes, "route")
        yield from _each(("ingredients", key, "routes"), entry["routes"], routes, "route")
    seen: dict[str, tuple[Any, ...]] = {}
    for index, product in enumerate(raw["products"]):
        path = ("products", index)
        yield from _twice((*path, "rxnorm"), product["rxnorm"], seen, "RxNorm code")
        yield from _unknown((*path, "ingredient"), product["ingredient"], ingredients, "ingredient")
        yield from _unknown((*path, "route"), product["route"], routes, "route")
    seen = {}
    for index, formulation in enumerate(raw["formulations"]):
        path = ("formulations", index)
        yield from _twice((*path, "id"), formulation["id"], seen, "formulation")
        yield from _unknown((*path, "ingredient"), formulation["ingredient"], ingredients, "ingredient")
        yield from _backwards(path, formulation)
        for name in ("infusion_source", "max_dose_source", "label_source"):
            yield from _unknown((*path, name), formulation.get(name), sources, "source")
        renal = formulation.get("renal", {})
        yield from _unknown((*path, "renal", "source"), renal.get("source"), sources, "source")
        yield from _unknown((*path, "renal", "dose_table", "source"), renal.get("dose_table", {}).get("source"),
                            sources, "source")
    for kind, entry in raw["observations"].items():
        try:
            re.compile(entry.get("value_text_pattern", ""))
        except re.error as error:
            yield ("observations", kind, "value_text_pattern"), f"not a valid regular expression ({error})"
    for table, entry in raw["units"].items():
        if isinstance(entry, dict):
            yield from _unknown(("units", table, "source"), entry.get("source"), sources, "source")
    yield from _threshold_problems(raw, formulations)
    for key, rule in raw["rules"].items():
        path = ("rules", key)
        yield from _each((*path, "sources"), rule["sources"], sources, "source")
        yield from _each((*path, "override_reasons"), rule["override_reasons"], raw["override_reasons"],
                         "override reason")
        yield from _each((*path, "applies_to"), rule["applies_to"], ORDER_SCOPES, "order scope")
        yield from _each((*path, "needs"), rule["needs"], FACT_GROUPS, "fact group")
    yield from _unknown(("dental_examination", "encounter_condition_set"),
                        raw["dental_examination"]["encounter_condition_set"], raw["conditions"], "condition value set")
    yield from _supplement_problems(raw, formulations)
    menopause = raw["menopause"]
    for key in menopause["status_answers"]:
        yield from _unknown(("menopause", "status_answers", key), key, raw["conditions"], "condition value set")
    yield from _unknown(("menopause", "ovarian_suppression_class"), menopause["ovarian_suppression_class"],
                        raw["medication_classes"], "medication class")
    for key, regimen in raw["regimens"]["entries"].items():
        path = ("regimens", "entries", key)
        yield from _unknown((*path, "medication", 0), regimen["medication"][0], raw["systems"], "code system")
        yield from _unknown((*path, "route"), regimen["route"], routes, "route")
        yield from _unknown((*path, "formulation"), regimen.get("formulation"), formulations, "formulation")
    for index, entry in enumerate(raw.get("administration_texts", {}).get("entries", [])):
        path = ("administration_texts", "entries", index)
        yield from _unknown((*path, "ingredient"), entry["ingredient"], ingredients, "ingredient")
        yield from _unknown((*path, "source"), entry["source"], sources, "source")
        yield from _backwards(path, entry)


def _threshold_problems(raw: dict[str, Any], formulations: set[str]) -> Iterable[_Violation]:
    sources, ingredients, thresholds = raw["sources"], raw["ingredients"], raw["thresholds"]
    regimens, base = raw["regimens"]["entries"], ("thresholds",)
    deterioration = thresholds["renal_deterioration"]
    yield from _each((*base, "renal_deterioration", "ingredients"), deterioration["ingredients"], ingredients,
                     "ingredient")
    yield from _unknown((*base, "renal_deterioration", "source"), deterioration["source"], sources, "source")
    for table in ("minimum_intervals", "oral_bisphosphonate_regimens", "metastatic_inappropriate_regimens"):
        if table == "metastatic_inappropriate_regimens":  # cited on its cards, so a key of 'sources'
            yield from _unknown((*base, table, "source"), thresholds[table]["source"], sources, "source")
        for index, entry in enumerate(thresholds[table]["entries"]):
            path = (*base, table, "entries", index)
            yield from _unknown((*path, "formulation"), entry.get("formulation"), formulations, "formulation")
            yield from _unknown((*path, "ingredient"), entry.get("ingredient"), ingredients, "ingredient")
            yield from _unknown((*path, "source"), entry.get("source"), sources, "source")
            yield from _backwards(path, entry)
    offered, path = thresholds["metastatic_regimen_suggestions"], (*base, "metastatic_regimen_suggestions")
    for formulation, keys in offered["by_formulation"].items():
        yield from _unknown((*path, "by_formulation", formulation), formulation, formulations, "formulation")
        yield from _each((*path, "by_formulation", formulation), keys, regimens, "regimen")
    yield from _each((*path, "default"), offered["default"], regimens, "regimen")
    yield from _unknown((*path, "recommended"), offered["recommended"], regimens, "regimen")
    yield from _each((*path, "fallback"), offered["fallback"], regimens, "regimen")
    yield from _each((*base, "endocrine_therapy_classes", "value"), thresholds["endocrine_therapy_classes"]["value"],
                     raw["medication_classes"], "medication class")
    yield from _unknown((*base, "adjuvant_denosumab", "formulation"), thresholds["adjuvant_denosumab"]["formulation"],
                        formulations, "formulation")
    hcm = thresholds["pamidronate_hcm_dose"]
    yield from _unknown((*base, "pamidronate_hcm_dose", "formulation"), hcm["formulation"], formulations, "formulation")
    yield from _unknown((*base, "pamidronate_hcm_dose", "source"), hcm["source"], sources, "source")


def _supplement_problems(raw: dict[str, Any], formulations: set[str]) -> Iterable[_Violation]:
    sources, supplements, base = raw["sources"], raw["supplements"], ("supplements",)
    calcium, vitamin_d, spacing = supplements["calcium"], supplements["vitamin-d"], supplements["calcium_spacing"]
    yield from _unknown((*base, "calcium", "product"), calcium["product"], supplements["products"],
                        "supplement product")
    for index, regimen in enumerate(calcium["regimens"]):
        path = (*base, "calcium", "regimens", index)
        yield from _each((*path, "formulations"), regimen.get("formulations", []), formulations, "formulation")
        yield from _each((*path, "sources"), regimen["sources"], sources, "source")
    if {"formulations", "settings"} & set(calcium["regimens"][-1]):
        yield ((*base, "calcium", "regimens", len(calcium["regimens"]) - 1),
               "the last calcium regimen must be the default for any other order (no formulations, no settings)")
    yield from _unknown((*base, "vitamin-d", "product"), vitamin_d["product"], supplements["products"],
                        "supplement product")
    yield from _each((*base, "vitamin-d", "sources"), vitamin_d["sources"], sources, "source")
    for key in spacing["by_ingredient"]:
        yield from _unknown((*base, "calcium_spacing", "by_ingredient", key), key, raw["ingredients"], "ingredient")
    yield from _each((*base, "calcium_spacing", "sources"), spacing["sources"], sources, "source")
