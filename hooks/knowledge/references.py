"""Cross-reference checks of a schema-valid knowledge document: every name it uses defined, once,
ranges ordered."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from hooks.facts.groups import FACT_GROUPS
from hooks.knowledge.errors import KnowledgeError, Violation, path_text

ORDER_SCOPES = frozenset(
    {"any", "parenteral", "oral-bisphosphonate", "bisphosphonate", "denosumab"}
)


def check_references(raw: dict[str, Any], where: str) -> None:
    """Fail at start-up, not mid-request, when the knowledge file names a source, ingredient,
    formulation, route, regimen, value set, medication class or override reason it does not define,
    lists a code twice or writes a dose range backwards (otherwise: a KeyError mid-request, or a
    rule that silently never matches).

    Runs after the schema.
    """
    for path, problem in _reference_problems(raw):
        raise KnowledgeError(where, f"at {path_text(path)}: {problem}")


def _unknown(path: tuple[Any, ...], value: Any, defined: Any, what: str) -> Iterable[Violation]:
    if value is not None and value not in defined:
        yield path, f"unknown {what} {value!r}"


def _each(
    path: tuple[Any, ...], values: Iterable[Any], defined: Any, what: str
) -> Iterable[Violation]:
    for index, value in enumerate(values):
        yield from _unknown((*path, index), value, defined, what)


def _backwards(path: tuple[Any, ...], entry: dict[str, Any]) -> Iterable[Violation]:
    low, high = entry.get("dose_mg_range") or (0, 0)
    if low > high:
        yield (*path, "dose_mg_range"), f"lowest dose {low!r} is above highest dose {high!r}"


def _twice(
    path: tuple[Any, ...], value: str, seen: dict[str, tuple[Any, ...]], what: str
) -> Iterable[Violation]:
    if value in seen:
        yield path, f"{what} {value!r} is listed twice (also at {path_text(seen[value])})"
    seen.setdefault(value, path)


def _reference_problems(raw: dict[str, Any]) -> Iterable[Violation]:
    """Each broken cross reference as (path, problem), sections in file order (the document conforms
    to the schema)."""
    sources, ingredients, routes = raw["sources"], raw["ingredients"], raw["routes"]
    formulations = {entry["id"] for entry in raw["formulations"]}
    for key, entry in ingredients.items():
        for name in ("default_route", "parenteral_route"):
            yield from _unknown(("ingredients", key, name), entry.get(name), routes, "route")
        yield from _each(("ingredients", key, "routes"), entry["routes"], routes, "route")
    seen: dict[str, tuple[Any, ...]] = {}
    for index, product in enumerate(raw["products"]):
        path: tuple[Any, ...] = ("products", index)
        yield from _twice((*path, "rxnorm"), product["rxnorm"], seen, "RxNorm code")
        yield from _unknown((*path, "ingredient"), product["ingredient"], ingredients, "ingredient")
        yield from _unknown((*path, "route"), product["route"], routes, "route")
    seen = {}
    for index, formulation in enumerate(raw["formulations"]):
        path = ("formulations", index)
        yield from _twice((*path, "id"), formulation["id"], seen, "formulation")
        yield from _unknown(
            (*path, "ingredient"), formulation["ingredient"], ingredients, "ingredient"
        )
        yield from _backwards(path, formulation)
        for name in ("infusion_source", "max_dose_source", "label_source"):
            yield from _unknown((*path, name), formulation.get(name), sources, "source")
        renal = formulation.get("renal", {})
        yield from _unknown((*path, "renal", "source"), renal.get("source"), sources, "source")
        yield from _unknown(
            (*path, "renal", "dose_table", "source"),
            renal.get("dose_table", {}).get("source"),
            sources,
            "source",
        )
    for kind, entry in raw["observations"].items():
        try:
            re.compile(entry.get("value_text_pattern", ""))
        except re.error as error:
            yield (
                (
                    "observations",
                    kind,
                    "value_text_pattern",
                ),
                f"not a valid regular expression ({error})",
            )
    for table, entry in raw["units"].items():
        if isinstance(entry, dict):
            yield from _unknown(("units", table, "source"), entry.get("source"), sources, "source")
    yield from _threshold_problems(raw, formulations)
    for key, rule in raw["rules"].items():
        path = ("rules", key)
        yield from _each((*path, "sources"), rule["sources"], sources, "source")
        yield from _each(
            (*path, "override_reasons"),
            rule["override_reasons"],
            raw["override_reasons"],
            "override reason",
        )
        yield from _each((*path, "applies_to"), rule["applies_to"], ORDER_SCOPES, "order scope")
        yield from _each(
            (*path, "only_for"),
            rule.get("only_for", []),
            {*ingredients, *formulations},
            "ingredient or formulation",
        )
        yield from _each((*path, "needs"), rule["needs"], FACT_GROUPS, "fact group")
    yield from _unknown(
        ("dental_examination", "encounter_condition_set"),
        raw["dental_examination"]["encounter_condition_set"],
        raw["conditions"],
        "condition value set",
    )
    yield from _supplement_problems(raw, formulations)
    menopause = raw["menopause"]
    for key in menopause["status_answers"]:
        yield from _unknown(
            ("menopause", "status_answers", key), key, raw["conditions"], "condition value set"
        )
    yield from _unknown(
        ("menopause", "ovarian_suppression_class"),
        menopause["ovarian_suppression_class"],
        raw["medication_classes"],
        "medication class",
    )
    for key, regimen in raw["regimens"]["entries"].items():
        path = ("regimens", "entries", key)
        yield from _unknown(
            (*path, "medication", 0), regimen["medication"][0], raw["systems"], "code system"
        )
        yield from _unknown((*path, "route"), regimen["route"], routes, "route")
        yield from _unknown(
            (*path, "formulation"), regimen.get("formulation"), formulations, "formulation"
        )
    for index, entry in enumerate(raw.get("administration_texts", {}).get("entries", [])):
        path = ("administration_texts", "entries", index)
        yield from _unknown((*path, "ingredient"), entry["ingredient"], ingredients, "ingredient")
        yield from _unknown((*path, "source"), entry["source"], sources, "source")
        yield from _backwards(path, entry)


def _threshold_problems(raw: dict[str, Any], formulations: set[str]) -> Iterable[Violation]:
    sources, ingredients, thresholds = raw["sources"], raw["ingredients"], raw["thresholds"]
    regimens, base = raw["regimens"]["entries"], ("thresholds",)
    deterioration = thresholds["renal_deterioration"]
    yield from _each(
        (*base, "renal_deterioration", "ingredients"),
        deterioration["ingredients"],
        ingredients,
        "ingredient",
    )
    yield from _unknown(
        (*base, "renal_deterioration", "source"), deterioration["source"], sources, "source"
    )
    by_ingredient = (*base, "renal_deterioration", "source_by_ingredient")
    for ingredient, source in deterioration.get("source_by_ingredient", {}).items():
        yield from _unknown((*by_ingredient, ingredient), ingredient, ingredients, "ingredient")
        yield from _unknown((*by_ingredient, ingredient), source, sources, "source")
    for table in (
        "minimum_intervals",
        "oral_bisphosphonate_regimens",
        "metastatic_inappropriate_regimens",
    ):
        # cited on its cards, so a key of 'sources'
        if table == "metastatic_inappropriate_regimens":
            yield from _unknown(
                (*base, table, "source"), thresholds[table]["source"], sources, "source"
            )
        for index, entry in enumerate(thresholds[table]["entries"]):
            path: tuple[Any, ...] = (*base, table, "entries", index)
            yield from _unknown(
                (*path, "formulation"), entry.get("formulation"), formulations, "formulation"
            )
            yield from _unknown(
                (*path, "ingredient"), entry.get("ingredient"), ingredients, "ingredient"
            )
            yield from _unknown((*path, "source"), entry.get("source"), sources, "source")
            yield from _backwards(path, entry)
    offered, path = (
        thresholds["metastatic_regimen_suggestions"],
        (
            *base,
            "metastatic_regimen_suggestions",
        ),
    )
    for formulation, keys in offered["by_formulation"].items():
        yield from _unknown(
            (*path, "by_formulation", formulation), formulation, formulations, "formulation"
        )
        yield from _each((*path, "by_formulation", formulation), keys, regimens, "regimen")
    yield from _each((*path, "default"), offered["default"], regimens, "regimen")
    yield from _unknown((*path, "recommended"), offered["recommended"], regimens, "regimen")
    yield from _each((*path, "fallback"), offered["fallback"], regimens, "regimen")
    yield from _each(
        (*base, "endocrine_therapy_classes", "value"),
        thresholds["endocrine_therapy_classes"]["value"],
        raw["medication_classes"],
        "medication class",
    )
    yield from _unknown(
        (*base, "adjuvant_denosumab", "formulation"),
        thresholds["adjuvant_denosumab"]["formulation"],
        formulations,
        "formulation",
    )
    hcm = thresholds["pamidronate_hcm_dose"]
    yield from _unknown(
        (*base, "pamidronate_hcm_dose", "formulation"),
        hcm["formulation"],
        formulations,
        "formulation",
    )
    yield from _unknown((*base, "pamidronate_hcm_dose", "source"), hcm["source"], sources, "source")
    strength, path = (
        thresholds["denosumab_strength_schedule"],
        (*base, "denosumab_strength_schedule"),
    )
    for index, entry in enumerate(strength["entries"]):
        yield from _unknown(
            (*path, "entries", index, "formulation"),
            entry["formulation"],
            formulations,
            "formulation",
        )
        yield from _unknown((*path, "entries", index, "source"), entry["source"], sources, "source")
    for setting, key in strength["regimen_by_setting"].items():
        yield from _unknown((*path, "regimen_by_setting", setting), key, regimens, "regimen")
    follow_on = thresholds["denosumab_follow_on"]
    yield from _unknown(
        (*base, "denosumab_follow_on", "formulation"),
        follow_on["formulation"],
        formulations,
        "formulation",
    )


def _supplement_problems(raw: dict[str, Any], formulations: set[str]) -> Iterable[Violation]:
    sources, supplements, base = raw["sources"], raw["supplements"], ("supplements",)
    calcium, vitamin_d, spacing = (
        supplements["calcium"],
        supplements["vitamin-d"],
        supplements["calcium_spacing"],
    )
    yield from _unknown(
        (*base, "calcium", "product"),
        calcium["product"],
        supplements["products"],
        "supplement product",
    )
    for index, regimen in enumerate(calcium["regimens"]):
        path = (*base, "calcium", "regimens", index)
        yield from _each(
            (*path, "formulations"), regimen.get("formulations", []), formulations, "formulation"
        )
        yield from _each((*path, "sources"), regimen["sources"], sources, "source")
    if {"formulations", "settings"} & set(calcium["regimens"][-1]):
        yield (
            (*base, "calcium", "regimens", len(calcium["regimens"]) - 1),
            (
                "the last calcium regimen must be the default for any other order (no formulations,"
                " no settings)"
            ),
        )
    yield from _unknown(
        (*base, "vitamin-d", "product"),
        vitamin_d["product"],
        supplements["products"],
        "supplement product",
    )
    yield from _each((*base, "vitamin-d", "sources"), vitamin_d["sources"], sources, "source")
    for key in spacing["by_ingredient"]:
        yield from _unknown(
            (*base, "calcium_spacing", "by_ingredient", key), key, raw["ingredients"], "ingredient"
        )
    yield from _each((*base, "calcium_spacing", "sources"), spacing["sources"], sources, "source")
