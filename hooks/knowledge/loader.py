"""Loads the knowledge file (bundled or an operator's), checks schema and cross references, builds
Knowledge."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

from hooks.knowledge.errors import KnowledgeError
from hooks.knowledge.model import (
    BUNDLED_KNOWLEDGE,
    ConditionValueSet,
    Formulation,
    Knowledge,
    MedicationClass,
    Product,
    Source,
    normalise_icd,
)
from hooks.knowledge.references import check_references
from hooks.knowledge.schema import knowledge_schema

DEFAULT_KNOWLEDGE_FILE = "bone-agents.json"


def load_knowledge(path: str | None = None) -> Knowledge:
    """Load the bundled knowledge file, or an operator-supplied one at `path`, checked against its
    JSON Schema and its cross references first.

    Any problem raises KnowledgeError, one line naming the file, the place and the problem.
    """
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
        raise KnowledgeError(
            where, f"not valid JSON (not UTF-8 text: byte {error.start})"
        ) from None
    return build_knowledge(raw, where)


def build_knowledge(raw: dict[str, Any], where: str = "knowledge document") -> Knowledge:
    """The Knowledge of a parsed knowledge document; `where` names it in errors (a path, or the
    bundled file)."""
    validate_knowledge(raw, where)
    systems = raw["systems"]
    ingredients = raw["ingredients"]
    ingredient_by_rxnorm = {
        code: key for key, entry in ingredients.items() for code in entry["rxnorm"]
    }
    ingredient_by_atc = {code: key for key, entry in ingredients.items() for code in entry["atc"]}
    fragments = tuple(
        (fragment.lower(), key)
        for key, entry in ingredients.items()
        for fragment in dict.fromkeys([*entry["names"], *entry.get("synonyms", [])])
    )
    products = {entry["rxnorm"]: _product(entry) for entry in raw["products"]}
    formulations = tuple(
        Formulation(
            id=entry["id"],
            display=entry["display"],
            ingredient=entry["ingredient"],
            routes=tuple(entry["routes"]),
            dose_mg_range=tuple(entry["dose_mg_range"]) if entry.get("dose_mg_range") else None,
            strength_mg=entry.get("strength_mg"),
            renal=entry.get("renal", {}),
            label_source=entry.get("label_source"),
            min_infusion_minutes=entry.get("min_infusion_minutes"),
            max_dose_mg=entry.get("max_dose_mg"),
            raw=entry,
        )
        for entry in raw["formulations"]
    )
    route_by_snomed = {
        code: route for route, entry in raw["routes"].items() for code in entry["snomed"]
    }
    route_by_text = {
        text: route for route, entry in raw["routes"].items() for text in entry["text"]
    }
    observation_kind = {
        code: kind for kind, entry in raw["observations"].items() for code in entry["loinc"]
    }
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
            name=name,
            display=entry["display"],
            rxnorm=frozenset(entry.get("rxnorm", [])),
            atc=frozenset(entry.get("atc", [])),
            atc_prefixes=tuple(entry.get("atc_prefixes", [])),
            name_fragments=tuple(n.lower() for n in entry.get("names", [])),
            excluded_routes=frozenset(entry.get("excluded_routes", [])),
        )
        for name, entry in raw["medication_classes"].items()
    }
    sources = {
        key: Source(
            key, entry["label"], entry.get("url"), entry.get("status", ""), entry.get("short")
        )
        for key, entry in raw["sources"].items()
    }
    return Knowledge(
        version=raw["version"],
        raw=raw,
        systems=systems,
        sources=sources,
        ingredient_display={k: v["display"] for k, v in ingredients.items()},
        ingredient_class={k: v["class"] for k, v in ingredients.items()},
        ingredient_default_route={
            k: v["default_route"] for k, v in ingredients.items() if v.get("default_route")
        },
        ingredient_routes={
            k: tuple(v.get("routes", [v["default_route"]] if v.get("default_route") else []))
            for k, v in ingredients.items()
        },
        ingredient_parenteral_route={
            k: v["parenteral_route"] for k, v in ingredients.items() if v.get("parenteral_route")
        },
        ingredient_by_rxnorm=ingredient_by_rxnorm,
        ingredient_by_atc=ingredient_by_atc,
        ingredient_name_fragments=fragments,
        class_atc_prefixes={k: tuple(v) for k, v in raw["class_atc_prefixes"].items()},
        product_by_rxnorm=products,
        formulations=formulations,
        route_by_snomed=route_by_snomed,
        route_by_text=route_by_text,
        observation_kind_by_loinc=observation_kind,
        condition_sets=condition_sets,
        medication_classes=medication_classes,
        thresholds=raw["thresholds"],
        origin=where,
    )


def _product(entry: dict[str, Any]) -> Product:
    return Product(
        rxnorm=entry["rxnorm"],
        display=entry["display"],
        ingredient=entry["ingredient"],
        route=entry.get("route"),
        strength_mg=entry.get("strength_mg"),
        tty=entry.get("tty"),
        unit=entry.get("unit"),
        concentration_mg_per_ml=entry.get("concentration_mg_per_ml"),
        volume_ml=entry.get("volume_ml"),
        dose_form=entry.get("dose_form"),
        brand=entry.get("brand"),
        status=entry.get("status", ""),
        source=entry.get("source"),
    )


def validate_knowledge(raw: Any, where: str = "knowledge document") -> None:
    """Raise KnowledgeError at the first violation of bone-agents.schema.json (in file order), else
    at the first broken cross reference (a source, ingredient, formulation, regimen, value set or
    class named but not defined)."""
    found = knowledge_schema().first_error(raw)
    if found is not None:
        raise KnowledgeError(where, f"at {found[0]}: {found[1]}")
    check_references(raw, where)
