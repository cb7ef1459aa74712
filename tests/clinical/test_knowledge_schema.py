"""The knowledge file has a JSON Schema (hooks/knowledge/bone-agents.schema.json): the bundled file
conforms, the schema is a valid draft-07 schema, and a knowledge file with a realistic mistake is
refused at start-up in one line naming the file, the place and the problem (load_knowledge,
create_app and `bonecds check-config`)."""

from __future__ import annotations

import copy
import fnmatch
import inspect
import json
import os
import random
import re
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from hooks.assessments.setting import derive_setting
from hooks.fhir_read import DAYS_PER_UNIT
from hooks.knowledge import (
    BUNDLED_KNOWLEDGE,
    FACT_GROUPS,
    ORDER_SCOPES,
    SCHEMA_FILE,
    KnowledgeError,
    KnowledgeSchema,
    build_knowledge,
    knowledge_schema,
    load_knowledge,
    path_text,
    validate_knowledge,
)
from hooks.orders import COUNTABLE_AS
from hooks.rules.registry import ORDER_RULES, REVIEW_RULES
from hooks.suggestions import ROUTE_CODES

ROOT = Path(__file__).resolve().parents[2]
BONECDS = str(Path(sys.executable).with_name("bonecds"))
KNOWLEDGE_FILE = ROOT / "hooks" / "knowledge" / "bone-agents.json"
SCHEMA = json.loads((ROOT / "hooks" / "knowledge" / SCHEMA_FILE).read_text(encoding="utf-8"))
RAW = json.loads(KNOWLEDGE_FILE.read_text(encoding="utf-8"))
REFERENCE = jsonschema.Draft7Validator(SCHEMA)


def broken(change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    raw = copy.deepcopy(RAW)
    change(raw)
    return raw


def write(tmp_path: Path, raw: dict[str, Any]) -> Path:
    path = tmp_path / "knowledge.json"
    path.write_text(json.dumps(raw, indent=1), encoding="utf-8")
    return path


def band(raw: dict[str, Any]) -> dict[str, Any]:
    """The zoledronic acid 4 mg renal dose table's second band (CrCl 50 to 60: 3.5 mg)."""
    formulation = next(f for f in raw["formulations"] if f["id"] == "zoledronic-acid-4mg")
    return formulation["renal"]["dose_table"]["bands"][1]


def rename(entry: dict[str, Any], old: str, new: str) -> None:
    entry[new] = entry.pop(old)


ZA4 = next(i for i, f in enumerate(RAW["formulations"]) if f["id"] == "zoledronic-acid-4mg")
ZA5 = next(i for i, f in enumerate(RAW["formulations"]) if f["id"] == "zoledronic-acid-5mg")

# (id, change, path, problem): each a mistake an editor of the file could make, and the one line it
# is refused with.
BROKEN_COPIES = [
    (
        "wrong-type",
        lambda r: r["products"][12].update(strength_mg="four"),
        "products[12].strength_mg",
        "'four' is not of type 'number', 'null'",
    ),
    (
        "number-as-text",
        lambda r: r["thresholds"]["creatinine_max_age_days_parenteral"].update(value="30"),
        "thresholds.creatinine_max_age_days_parenteral.value",
        "'30' is not of type 'integer'",
    ),
    (
        "missing-required-key",
        lambda r: r["thresholds"]["calcium_low"].pop("corrected_mg_dl"),
        "thresholds.calcium_low",
        "'corrected_mg_dl' is a required property",
    ),
    (
        "missing-section",
        lambda r: r.pop("smoking"),
        "top level",
        "'smoking' is a required property",
    ),
    (
        "unknown-route",
        lambda r: r["products"][0].update(route="iv"),
        "products[0].route",
        "'iv' is not one of ['intravenous', 'oral', 'subcutaneous', None]",
    ),
    (
        "unknown-regimen-route",
        lambda r: r["regimens"]["entries"]["za-4mg-6-monthly"].update(route="intravenus"),
        "regimens.entries.za-4mg-6-monthly.route",
        "'intravenus' is not one of ['intravenous', 'oral', 'subcutaneous']",
    ),
    (
        "bad-interval-unit",
        lambda r: r["thresholds"]["minimum_intervals"]["entries"][0].update(every=[6, "months"]),
        "thresholds.minimum_intervals.entries[0].every[1]",
        "'months' is not one of ['s', 'min', 'h', 'd', 'wk', 'mo', 'a']",
    ),
    (
        "interval-without-unit",
        lambda r: r["regimens"]["entries"]["za-4mg-12-weekly"].update(every=[12]),
        "regimens.entries.za-4mg-12-weekly.every",
        "[12] is too short",
    ),
    (
        "negative-dose",
        lambda r: r["regimens"]["entries"]["za-4mg-6-monthly"].update(dose_mg=-4),
        "regimens.entries.za-4mg-6-monthly.dose_mg",
        "-4 is less than or equal to the minimum of 0",
    ),
    (
        "negative-band-dose",
        lambda r: band(r).update(dose_mg=-3.5),
        f"formulations[{ZA4}].renal.dose_table.bands[1].dose_mg",
        "-3.5 is less than or equal to the minimum of 0",
    ),
    (
        "misspelled-band-key",
        lambda r: rename(band(r), "dose_mg", "dose_mgg"),
        f"formulations[{ZA4}].renal.dose_table.bands[1]",
        "Additional properties are not allowed ('dose_mgg' was unexpected)",
    ),
    (
        "misspelled-band-bound",
        lambda r: rename(band(r), "crcl_through", "crcl_thru"),
        f"formulations[{ZA4}].renal.dose_table.bands[1]",
        "Additional properties are not allowed ('crcl_thru' was unexpected)",
    ),
    (
        "band-without-bound",
        lambda r: band(r).pop("crcl_through"),
        f"formulations[{ZA4}].renal.dose_table.bands[1]",
        "{'crcl_from': 50, 'dose_mg': 3.5} is not valid under any of the given schemas",
    ),
    (
        "misspelled-renal-floor",
        lambda r: rename(r["formulations"][ZA5]["renal"], "crcl_floor", "crcl_flor"),
        f"formulations[{ZA5}].renal",
        "Additional properties are not allowed ('crcl_flor' was unexpected)",
    ),
    (
        "misspelled-interval-key",
        lambda r: rename(
            r["thresholds"]["minimum_intervals"]["entries"][4], "formulation", "formulaton"
        ),
        "thresholds.minimum_intervals.entries[4]",
        "Additional properties are not allowed ('formulaton' was unexpected)",
    ),
    (
        "unknown-setting",
        lambda r: r["thresholds"]["minimum_intervals"]["entries"][0].update(settings=["adjuvant"]),
        "thresholds.minimum_intervals.entries[0].settings[0]",
        (
            "'adjuvant' is not one of ['early', 'bone-metastatic', 'metastatic-other',"
            " 'hypercalcemia-of-malignancy', 'no-breast-cancer']"
        ),
    ),
    (
        "misspelled-product-key",
        lambda r: rename(r["products"][3], "source", "sourse"),
        "products[3]",
        "Additional properties are not allowed ('sourse' was unexpected)",
    ),
    (
        "product-unit-typo",
        lambda r: r["products"][20].update(unit="tabet"),
        "products[20].unit",
        "'tabet' is not one of ['tablet', 'capsule', 'vial', 'syringe', 'bottle', None]",
    ),
    (
        "product-status",
        lambda r: r["products"][5].update(status="verified"),
        "products[5].status",
        "'verified' is not one of ['V', 'UNVERIFIED']",
    ),
    (
        "rxnorm-as-number",
        lambda r: r["products"][7].update(rxnorm=351114),
        "products[7].rxnorm",
        "351114 is not of type 'string'",
    ),
    (
        "unknown-code-system",
        lambda r: r["dental_examination"]["procedure_codes"][0].__setitem__(0, "CDT"),
        "dental_examination.procedure_codes[0][0]",
        (
            "'CDT' is not one of ['rxnorm', 'atc', 'loinc', 'snomed', 'icd10cm', 'icd10', 'ucum',"
            " 'rule', 'override_reason', 'local_override_reason', 'cdt', 'condition_category',"
            " 'icd10pcs']"
        ),
    ),
    (
        "unit-factor-as-text",
        lambda r: r["units"]["calcium_to_mg_dl"].update({"mmol/L": "4.008"}),
        "units.calcium_to_mg_dl['mmol/L']",
        "'4.008' is not of type 'number'",
    ),
    (
        "unknown-order-scope",
        lambda r: r["rules"]["calcium-low"]["applies_to"].append("iv"),
        "rules.calcium-low.applies_to[1]",
        (
            "'iv' is not one of ['any', 'parenteral', 'oral-bisphosphonate', 'bisphosphonate',"
            " 'denosumab']"
        ),
    ),
    (
        "rule-missing",
        lambda r: r["rules"].pop("calcium-low"),
        "rules",
        "'calcium-low' is a required property",
    ),
    (
        "calcium-regimen-setting-typo",
        lambda r: rename(r["supplements"]["calcium"]["regimens"][0], "settings", "setings"),
        "supplements.calcium.regimens[0]",
        "Additional properties are not allowed ('setings' was unexpected)",
    ),
    # cross references, checked after the schema, in the same one-line form
    (
        "unknown-source-in-formulation",
        lambda r: r["formulations"][ZA4]["renal"].update(source="zometa-labl"),
        f"formulations[{ZA4}].renal.source",
        "unknown source 'zometa-labl'",
    ),
    (
        "unknown-source-by-ingredient",
        lambda r: r["thresholds"]["renal_deterioration"]["source_by_ingredient"].update(
            pamidronate="aredia"
        ),
        "thresholds.renal_deterioration.source_by_ingredient.pamidronate",
        "unknown source 'aredia'",
    ),
    (
        "unknown-ingredient-in-source-by-ingredient",
        lambda r: r["thresholds"]["renal_deterioration"]["source_by_ingredient"].update(
            pamidronat="pamidronate-label"
        ),
        "thresholds.renal_deterioration.source_by_ingredient.pamidronat",
        "unknown ingredient 'pamidronat'",
    ),
    (
        "unknown-ingredient-in-product",
        lambda r: r["products"][2].update(ingredient="zoledronate"),
        "products[2].ingredient",
        "unknown ingredient 'zoledronate'",
    ),
    (
        "unknown-source-in-interval",
        lambda r: r["thresholds"]["minimum_intervals"]["entries"][1].update(source="ago"),
        "thresholds.minimum_intervals.entries[1].source",
        "unknown source 'ago'",
    ),
    (
        "unknown-formulation",
        lambda r: r["thresholds"]["adjuvant_denosumab"].update(formulation="denosumab-120"),
        "thresholds.adjuvant_denosumab.formulation",
        "unknown formulation 'denosumab-120'",
    ),
    (
        "unknown-medication-class",
        lambda r: r["thresholds"]["endocrine_therapy_classes"]["value"].append("ai"),
        "thresholds.endocrine_therapy_classes.value[3]",
        "unknown medication class 'ai'",
    ),
    (
        "rxnorm-twice",
        lambda r: r["products"][9].update(rxnorm=r["products"][8]["rxnorm"]),
        "products[9].rxnorm",
        (
            f"RxNorm code {RAW['products'][8]['rxnorm']!r} is listed twice (also at"
            " products[8].rxnorm)"
        ),
    ),
    (
        "backwards-dose-range",
        lambda r: r["formulations"][ZA5].update(dose_mg_range=[5.5, 4.5]),
        f"formulations[{ZA5}].dose_mg_range",
        "lowest dose 5.5 is above highest dose 4.5",
    ),
    (
        "bad-regular-expression",
        lambda r: r["observations"]["stage_group"].update(value_text_pattern="(IV"),
        "observations.stage_group.value_text_pattern",
        "not a valid regular expression (missing ), unterminated subpattern at position 0)",
    ),
]


# --- the bundled file and the schema --------------------------------------------------------------


def test_the_bundled_file_conforms_to_the_schema():
    assert list(REFERENCE.iter_errors(RAW)) == []
    assert knowledge_schema().first_error(RAW) is None
    validate_knowledge(RAW, BUNDLED_KNOWLEDGE)  # schema and cross references
    assert load_knowledge().version == RAW["version"]


def test_the_schema_is_a_valid_draft07_schema():
    assert SCHEMA["$schema"] == "http://json-schema.org/draft-07/schema#"
    jsonschema.Draft7Validator.check_schema(SCHEMA)
    # every keyword known to the load-time check, every $ref resolves, every pattern compiles
    KnowledgeSchema(SCHEMA)


def test_the_schema_is_package_data_next_to_the_knowledge_file():
    assert (
        json.loads(resources.files("hooks.knowledge").joinpath(SCHEMA_FILE).read_bytes()) == SCHEMA
    )
    package_data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"
    ]["hooks"]
    assert any(fnmatch.fnmatch(f"knowledge/{SCHEMA_FILE}", pattern) for pattern in package_data)


def test_a_keyword_the_load_time_check_does_not_know_is_refused():
    with pytest.raises(ValueError, match="keyword 'uniqueItems' is not supported"):
        KnowledgeSchema(
            {
                "$schema": "http://json-schema.org/draft-07/schema#",
                "type": "array",
                "uniqueItems": True,
            }
        )


def test_the_schema_lists_what_the_code_reads():
    """Enumerations in the schema are the values the code acts on: a value outside them would switch
    a check off."""
    definitions = SCHEMA["definitions"]
    rule = definitions["rule"]["properties"]
    assert set(rule["applies_to"]["items"]["enum"]) == ORDER_SCOPES
    assert set(rule["needs"]["items"]["enum"]) == FACT_GROUPS
    assert definitions["route"]["enum"] == list(ROUTE_CODES)
    assert set(definitions["product"]["properties"]["unit"]["enum"]) - {None} == set(COUNTABLE_AS)
    assert definitions["interval"]["items"][1]["enum"] == list(DAYS_PER_UNIT)
    derived = set(re.findall(r'Setting\(\s*"([a-z-]+)"', inspect.getsource(derive_setting)))
    assert set(definitions["setting"]["enum"]) == derived
    run_by_the_service = {rule_id for rule_id, _ in ORDER_RULES + REVIEW_RULES} | {"rule-error"}
    assert run_by_the_service <= set(SCHEMA["properties"]["rules"]["required"])
    systems = SCHEMA["properties"]["systems"]["required"]
    assert set(systems) == set(definitions["systemKey"]["enum"]) == set(RAW["systems"])


# --- broken copies --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change, path, problem",
    [case[1:] for case in BROKEN_COPIES],
    ids=[case[0] for case in BROKEN_COPIES],
)
def test_a_broken_copy_is_refused_in_one_line_naming_the_path(tmp_path, change, path, problem):
    file = write(tmp_path, broken(change))
    with pytest.raises(KnowledgeError) as raised:
        load_knowledge(str(file))
    error = raised.value
    assert isinstance(error, ValueError)
    assert str(error) == f"{file}: at {path}: {problem}"
    assert "\n" not in str(error) and (error.where, error.problem) == (
        str(file),
        f"at {path}: {problem}",
    )


def test_the_first_problem_in_file_order_is_reported():
    raw = broken(
        lambda r: (
            r["formulations"][0].update(routes=["iv"]),
            r["products"][40].update(strength_mg="70"),
            r["products"][5].pop("display"),
        )
    )
    with pytest.raises(KnowledgeError) as raised:
        build_knowledge(raw)
    assert (
        str(raised.value) == "knowledge document: at products[5]: 'display' is a required property"
    )
    assert [path for path, _ in knowledge_schema().errors(raw)] == [
        "products[5]",
        "products[40].strength_mg",
        "formulations[0].routes[0]",
    ]


def test_the_bundled_file_is_named_as_such():
    with pytest.raises(
        KnowledgeError, match=r"^bundled knowledge file: at version: 12 is not of type 'string'$"
    ):
        validate_knowledge(broken(lambda r: r.update(version=12)), BUNDLED_KNOWLEDGE)


@pytest.mark.parametrize(
    "content, problem",
    [
        ('{"version": "x"', "not valid JSON (line 1, column 16: Expecting ',' delimiter)"),
        ("[]", "at top level: [] is not of type 'object'"),
        (b"\xff\xfe{}", "not valid JSON"),
    ],
    ids=["truncated", "not-an-object", "not-utf8"],
)
def test_a_file_that_is_not_a_knowledge_document_is_refused_in_one_line(tmp_path, content, problem):
    file = tmp_path / "knowledge.json"
    file.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(KnowledgeError) as raised:
        load_knowledge(str(file))
    assert str(raised.value).startswith(f"{file}: {problem}") and "\n" not in str(raised.value)


def test_check_config_refuses_a_broken_copy_in_one_line(tmp_path):
    file = write(tmp_path, broken(BROKEN_COPIES[0][1]))
    env = {
        **os.environ,
        "BONECDS_AUTH": "off",
        "BONECDS_KNOWLEDGE_FILE": str(file),
        "DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3",
    }
    result = subprocess.run(
        [BONECDS, "check-config", "--no-database"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines() == [
        f"bonecds: configuration error: BONECDS_KNOWLEDGE_FILE {file}: at products[12].strength_mg:"
        " 'four' is not of type 'number', 'null'"
    ]


def test_check_config_passes_the_bundled_file(tmp_path):
    env = {**os.environ, "BONECDS_AUTH": "off", "DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3"}
    env.pop("BONECDS_KNOWLEDGE_FILE", None)
    result = subprocess.run(
        [BONECDS, "check-config", "--no-database"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert f"knowledge: version {RAW['version']} (bundled)" in result.stdout


def test_create_app_with_a_broken_knowledge_file_raises_the_one_line_error(tmp_path):
    from service import create_app
    from service.config import Settings

    file = write(tmp_path, broken(lambda r: rename(band(r), "dose_mg", "dose_mgg")))
    with pytest.raises(KnowledgeError) as raised:
        create_app(
            Settings(
                database_url=f"sqlite:///{tmp_path}/t.db", auth="off", knowledge_path=str(file)
            )
        )
    assert (
        str(raised.value)
        == f"{file}: at formulations[{ZA4}].renal.dose_table.bands[1]: Additional properties are "
        "not allowed ('dose_mgg' was unexpected)"
    )


# --- the load-time check agrees with jsonschema, and stays cheap ----------------------------------


def _leaves(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [path] if path else []
    if isinstance(node, dict):
        for key, value in node.items():
            found += _leaves(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _leaves(value, (*path, index))
    return found


def _reference_violations(raw: dict[str, Any]) -> set[tuple[str, str]]:
    found = set()
    for error in REFERENCE.iter_errors(raw):
        message = error.message
        # jsonschema words it "... do(es) not match any of the regexes" when documentation keys are
        # allowed by pattern
        if error.validator == "additionalProperties":
            message = "unexpected key"
        elif error.validator in ("anyOf", "oneOf"):
            message = "not valid under any"  # the load-time check cuts the value shown
        found.add((path_text(error.absolute_path), message))
    return found


def _own_violations(raw: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (
            path,
            (
                "unexpected key"
                if message.startswith("Additional properties are not allowed")
                else "not valid under any"
                if "valid under" in message
                else message
            ),
        )
        for path, message in knowledge_schema().errors(raw)
    }


def test_the_load_time_check_agrees_with_jsonschema_on_random_mistakes():
    """The load-time check walks the schema itself (no compile step); jsonschema is the
    reference."""
    rng = random.Random(13)
    leaves = _leaves(RAW)
    values = [
        "four",
        -1,
        0,
        2.5,
        None,
        True,
        [],
        {},
        "",
        "intravenus",
        ["x"],
        {"a": 1},
        3,
        [1, "mo"],
    ]
    for _ in range(60):
        raw = copy.deepcopy(RAW)
        *parents, last = rng.choice(leaves)
        parent = raw
        for key in parents:
            parent = parent[key]
        roll = rng.random()
        if roll < 0.6:
            parent[last] = copy.deepcopy(rng.choice(values))
        elif isinstance(parent, dict) and roll < 0.8:
            del parent[last]
        elif isinstance(parent, dict):
            rename(parent, last, f"{last}x")
        else:
            parent.append(copy.deepcopy(parent[last]))
        assert _own_violations(raw) == _reference_violations(raw), (parents, last)


def test_loading_stays_well_under_100_ms():
    load_knowledge()  # schema read and prepared once per process
    best = min(_timed(load_knowledge) for _ in range(5))
    assert best < 0.1, f"load_knowledge took {best * 1000:.0f} ms"


def _timed(function: Callable[[], Any]) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start
