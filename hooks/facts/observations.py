"""Reads Observations into facts: results in the rules' units, T-scores, stage, pregnancy,
menopause, smoking."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime
from typing import Any, NamedTuple

from hooks.facts.coded_observations import (
    read_menopause_observation,
    read_pregnancy_status,
    read_smoking_status,
    read_stage,
)
from hooks.facts.model import (
    LabResult,
    PatientFacts,
    TScore,
    UnreadableResult,
)
from hooks.fhir_read import (
    _str,
    codings,
    id_of,
    object_at,
    parse_datetime,
    status_of,
)
from hooks.knowledge import Knowledge

# Catalog "Reading the record": final, amended, corrected and preliminary results count; these are
# never read; any
# other status counts when the Observation has a value.
IGNORED_OBSERVATION_STATUS = frozenset({"entered-in-error", "cancelled", "registered"})
COMPARATORS = frozenset({"<", "<=", ">", ">="})
# A string value such as ">60", "<0.5", "<= 0.3 mg/dL" or "22": comparator, number, unit text.
STRING_VALUE = re.compile(r"^\s*(<=|>=|<|>|≤|≥)?\s*([0-9]+(?:\.[0-9]+)?)\s*(\S.*)?$")
UNICODE_COMPARATORS = {"≤": "<=", "≥": ">="}
# Results whose bound (a censored value) the rules can reason about; a censored value of any other
# kind is not used.
CENSORABLE_KINDS = frozenset(
    {"creatinine", "egfr", "calcium_total", "calcium_corrected", "calcium_ionized", "vitamin_d"}
)
STAGE_KINDS = ("distant_metastasis_stage", "stage_group")
UNIT_TABLES = {
    "creatinine": ("creatinine_to_mg_dl", "mg/dL"),
    "body_weight": ("weight_to_kg", "kg"),
    "calcium_total": ("calcium_to_mg_dl", "mg/dL"),
    "calcium_corrected": ("calcium_to_mg_dl", "mg/dL"),
    "calcium_ionized": ("ionized_calcium_to_mmol_l", "mmol/L"),
    "albumin": ("albumin_to_g_dl", "g/dL"),
    "vitamin_d": ("vitamin_d_to_ng_ml", "ng/mL"),
    "phosphate": ("phosphate_to_mg_dl", "mg/dL"),
    "pth": ("pth_to_pg_ml", "pg/mL"),
    "magnesium": ("magnesium_to_mg_dl", "mg/dL"),
    "body_height": ("height_to_cm", "cm"),
}
# Results whose unit is checked against a list (no conversion): kind -> (knowledge units list, unit
# the rules use).
UNIT_LISTS = {
    "egfr": ("egfr_units", "mL/min/1.73 m²"),
    "bmi": ("bmi_units", "kg/m2"),
    "dxa_t_score": ("t_score_units", "T-score"),
}
MOLAR_UNITS = frozenset({"mmol/L", "mmol/l"})
UNREADABLE_COMPARATOR = "unreadable"


def observation_datetime(observation: dict) -> datetime | None:
    """When a result was taken (catalog "Reading the record"): effectiveDateTime, else
    effectivePeriod.start, else effectiveInstant, else issued."""
    period = object_at(observation, "effectivePeriod")
    return (
        parse_datetime(observation.get("effectiveDateTime"))
        or parse_datetime(period.get("start"))
        or parse_datetime(observation.get("effectiveInstant"))
        or parse_datetime(observation.get("issued"))
    )


class _Value(NamedTuple):
    value: float
    unit: str | None
    comparator: str | None


def _observation_value(observation: dict, kind: str, knowledge: Knowledge) -> _Value | None:
    """The numeric value of a result: valueQuantity (with its comparator), or a string value such as
    '>60', '<0.5 mg/dL' or '22' (an eGFR string carries no unit: the eGFR codes fix it)."""
    measured: Any = observation.get("valueQuantity")
    number_and_unit = _number_and_unit(measured)
    if number_and_unit is not None:
        comparator = measured.get("comparator")
        if comparator.__class__ is not str:
            # junk there (a list, a number) may stand for a bound: never read as exact
            comparator = None if comparator is None else UNREADABLE_COMPARATOR
        elif comparator not in COMPARATORS:
            comparator = None  # 'ad' and other codes that bound nothing
        return _Value(*number_and_unit, comparator)
    text = observation.get("valueString")
    if not isinstance(text, str):
        return None
    match = STRING_VALUE.match(text)
    if not match:
        return None
    comparator = UNICODE_COMPARATORS.get(match.group(1) or "", match.group(1))
    unit = (match.group(3) or "").strip() or knowledge.raw["observations"][kind].get(
        "string_value_unit"
    )
    return _Value(float(match.group(2)), unit, comparator)


def _number_and_unit(measured: Any) -> tuple[float, str | None] | None:
    """A valueQuantity's number and unit (the UCUM code, else the unit text; None when neither), or
    None when it holds no number (bool is not one: its class is bool, not int)."""
    if measured.__class__ is not dict:
        return None
    number = measured.get("value")
    if number.__class__ is not float and number.__class__ is not int:
        return None
    return float(number), _str(measured.get("code")) or _str(measured.get("unit"))


def _unit_factor(
    factors: dict[tuple[str, str | None], float | None],
    table: str,
    unit: str | None,
    knowledge: Knowledge,
) -> float | None:
    """The knowledge's factor from `unit` to the rules' unit, read once per call and unit."""
    key = (table, unit)
    if key not in factors:
        factors[key] = knowledge.unit_factor(table, unit)
    return factors[key]


def _plain_result(
    observation: dict,
    kind: str,
    code: str | None,
    when: datetime,
    factors: dict[tuple[str, str | None], float | None],
    knowledge: Knowledge,
) -> LabResult | None:
    """The result when its valueQuantity is a number with a unit (code, else unit) and no
    comparator, in a unit the knowledge converts for its kind; None for anything else (the general
    reading then says what is wrong with it)."""
    measured: Any = observation.get("valueQuantity")
    number_and_unit = _number_and_unit(measured)
    if number_and_unit is None or "comparator" in measured:
        return None
    value, unit = number_and_unit
    if unit is None:
        return None
    table, rule_unit = UNIT_TABLES[kind]
    factor = _unit_factor(factors, table, unit, knowledge)
    if factor is None:
        return None
    return LabResult(
        kind, value * factor, rule_unit, value, unit, when, id_of(observation), None, code, ""
    )


def _observation_kind(
    observation: dict, knowledge: Knowledge, loinc: str, by_loinc: dict[str, str]
) -> tuple[str | None, str | None]:
    """The knowledge's kind of result by LOINC code (stage Observations also by their SNOMED
    observable), and the code; `loinc` and `by_loinc` are the knowledge's, looked up once per
    record."""
    concept = observation.get("code")
    # The shape nearly every result has ({"coding": [{"system": LOINC, "code": ...}]}) is looked up
    # directly: a long history has thousands of them. Anything else takes the lenient reading.
    if concept.__class__ is dict and concept.get("coding").__class__ is list:
        for coding in concept["coding"]:
            if coding.__class__ is dict and coding.get("system") == loinc:
                code = coding.get("code")
                if code.__class__ is str and code in by_loinc:
                    return by_loinc[code], code
    coded = list(codings(concept))
    for system, code, _ in coded:
        if system == loinc and code in by_loinc:
            return by_loinc[code], code
    snomed = knowledge.systems["snomed"]
    for system, code, _ in coded:
        if system == snomed and code:
            kind = next(
                (
                    k
                    for k in STAGE_KINDS
                    if code in knowledge.raw["observations"].get(k, {}).get("snomed", [])
                ),
                None,
            )
            if kind:
                return kind, None
    return None, None


def read_observations(
    facts: PatientFacts, observations: Iterable[dict], knowledge: Knowledge
) -> None:
    # A long history repeats each draw's date across its panel and a few units across thousands of
    # results: each is read once per call (and never kept past it).
    dates: dict[str, datetime | None] = {}
    factors: dict[tuple[str, str | None], float | None] = {}
    loinc, by_loinc = knowledge.systems["loinc"], knowledge.observation_kind_by_loinc
    for observation in observations:
        if status_of(observation) in IGNORED_OBSERVATION_STATUS:
            continue
        kind, code = _observation_kind(observation, knowledge, loinc, by_loinc)
        if kind is None:
            read_pregnancy_status(facts, observation, knowledge)
            read_menopause_observation(facts, observation, knowledge)
            continue
        effective = observation.get("effectiveDateTime")
        when = None
        if effective.__class__ is str:
            if effective in dates:
                when = dates[effective]
            else:
                when = dates[effective] = parse_datetime(effective)
        if when is None:
            when = observation_datetime(observation)
        if kind in STAGE_KINDS:
            read_stage(facts, observation, kind, when, knowledge)
            continue
        if kind == "smoking_status":
            read_smoking_status(facts, observation, when, knowledge)
            continue
        if when is not None and kind in UNIT_TABLES:
            # Nearly every result: a dated number with a unit and no comparator, in a unit the
            # knowledge converts. Read here in one step; anything else takes the general reading.
            plain = _plain_result(observation, kind, code, when, factors, knowledge)
            if plain is not None:
                facts.labs.setdefault(kind, []).append(plain)
                continue
        measured = _observation_value(observation, kind, knowledge)
        if kind == "dxa_t_score" and measured is not None and measured.unit is None:
            measured = measured._replace(unit="")  # T-scores are often sent without a unit
        if measured is None or when is None:
            reason = "no date" if when is None else "no numeric value"
            facts.unreadable.setdefault(kind, []).append(UnreadableResult(kind, when, None, reason))
            continue
        if measured.comparator == UNREADABLE_COMPARATOR:
            facts.unreadable.setdefault(kind, []).append(
                UnreadableResult(kind, when, measured.unit, "a comparator that cannot be read")
            )
            continue
        if measured.comparator and kind not in CENSORABLE_KINDS:
            facts.unreadable.setdefault(kind, []).append(
                UnreadableResult(
                    kind,
                    when,
                    measured.unit,
                    f"censored value ({measured.comparator}{measured.value:g})",
                )
            )
            continue
        note = ""
        if kind in UNIT_LISTS:
            units_key, unit = UNIT_LISTS[kind]
            # short lists in the knowledge file: looked up as they are, not copied per result
            accepted = knowledge.raw["units"][units_key]
            without_surface = (
                knowledge.raw["units"].get("egfr_units_without_body_surface", [])
                if kind == "egfr"
                else []
            )
            if measured.unit in without_surface:
                note = f"reported in {measured.unit}, read as mL/min/1.73 m²"
            elif measured.unit not in accepted:
                facts.unreadable.setdefault(kind, []).append(
                    UnreadableResult(kind, when, measured.unit, "unknown unit")
                )
                continue
            value = measured.value
            if kind == "dxa_t_score":
                spec = knowledge.raw["observations"]["dxa_t_score"]
                site = spec["sites"].get(code or "", "DXA")
                if code in spec.get("not_used", []):
                    facts.forearm_t_scores.append(TScore(value, site, when))
                    continue
                facts.t_scores.append(TScore(value, site, when))
        else:
            table, unit = UNIT_TABLES[kind]
            factor = _unit_factor(factors, table, measured.unit, knowledge)
            if factor is None:
                facts.unreadable.setdefault(kind, []).append(
                    UnreadableResult(kind, when, measured.unit, "unknown unit")
                )
                continue
            value = measured.value * factor
        facts.labs.setdefault(kind, []).append(
            LabResult(
                kind,
                value,
                unit,
                measured.value,
                measured.unit,
                when,
                id_of(observation),
                measured.comparator,
                code,
                note,
            )
        )
    for results in facts.labs.values():
        results.sort(key=lambda r: r.when, reverse=True)
    if "vitamin_d" in facts.labs:
        facts.labs["vitamin_d"] = _total_vitamin_d_first(facts.labs["vitamin_d"], knowledge)
    for unreadable in facts.unreadable.values():
        unreadable.sort(
            key=lambda r: r.when or datetime.min.replace(tzinfo=facts.now.tzinfo), reverse=True
        )
    facts.pregnancy_statuses.sort(key=lambda p: p.when, reverse=True)
    facts.t_scores.sort(key=lambda t: t.when, reverse=True)
    facts.forearm_t_scores.sort(key=lambda t: t.when, reverse=True)
    for findings in (facts.menopause_observations, facts.smoking_statuses, facts.stage_findings):
        findings.sort(key=lambda f: f.when.timestamp() if f.when else 0, reverse=True)


def _total_vitamin_d_first(results: list[LabResult], knowledge: Knowledge) -> list[LabResult]:
    """25-OH vitamin D total (D2+D3); a D3-only result counts only on a day without a total
    (catalog: D3 where only D3 is reported)."""
    total = set(knowledge.raw["observations"]["vitamin_d"].get("total", []))
    days_with_total = {r.when.date() for r in results if r.loinc in total}
    return [r for r in results if r.loinc in total or r.when.date() not in days_with_total]
