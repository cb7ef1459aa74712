"""Schemathesis against the service's own OpenAPI document (GET /openapi.json), in-process through
the Flask app.

Per operation: the examples, coverage and fuzzing phases, positive and negative data, MAX_EXAMPLES
fuzzed cases, fixed seed. Checks: no 5xx, status code documented, content type documented, body
matches the documented schema. The number of cases and of 5xx answers (must be 0) is printed in the
terminal summary ("schemathesis cases run").
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections import Counter

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from fixtures.builder import ANCHOR_INSTANT
from service import create_app
from service.config import Settings
from service.http.validation import SchemaValidators
from tests.support.summary import add_summary_line

MAX_EXAMPLES = (
    40  # fuzzed cases per operation (the examples and coverage phases add their own, all counted)
)
SEED = 20261015
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
CASES: Counter = Counter()
OPERATIONS: set[str] = set()


class NoFhirServer:
    """Generated requests name random fhirServer URLs: answer every read as not obtained instead of
    going online."""

    def fetch_all(self, *args, **kwargs) -> dict:
        return {}


_TMP = tempfile.mkdtemp(prefix="bonecds-schemathesis-")
APP = create_app(
    Settings(database_url=f"sqlite:///{_TMP}/t.db", frozen_now=ANCHOR_INSTANT, auth="off"),
    fetcher=NoFhirServer(),
)
CONFIG = schemathesis.Config.from_dict(
    {
        "seed": SEED,
        "generation": {
            "mode": "all",
            "max-examples": MAX_EXAMPLES,
            "deterministic": True,
            "database": "none",
        },
    }
)
SERVICES = set(APP.extensions["bonecds"].services)
schema = schemathesis.openapi.from_wsgi("/openapi.json", APP, config=CONFIG)


def _summary_line() -> str:
    return (
        f"schemathesis cases run: {CASES['cases']} over {len(OPERATIONS)} operations, "
        f"5xx answers: {CASES['5xx']}; by status: "
        + ", ".join(f"{k[7:]} {v}" for k, v in sorted(CASES.items()) if k.startswith("status "))
        + f" (seed {SEED}, max_examples {MAX_EXAMPLES} per operation)"
    )


@pytest.fixture(scope="module", autouse=True)
def summary(request):
    add_summary_line("schemathesis", _summary_line)
    yield
    shutil.rmtree(_TMP, ignore_errors=True)
    print(_summary_line())


def test_the_document_covers_the_service():
    document = APP.test_client().get("/openapi.json").get_json()
    assert document["openapi"] == "3.1.0"
    services = APP.extensions["bonecds"].services
    for service_id in services:
        assert f"/cds-services/{service_id}" in document["paths"]
        assert f"/cds-services/{service_id}/feedback" in document["paths"]
    assert {"/cds-services", "/healthz", "/readyz"} <= set(document["paths"])
    # the embedded request schemas are the service's own: a scenario-shaped request is valid against
    # both
    assert document["components"]["schemas"]["cds-request"]["required"] == [
        "hook",
        "hookInstance",
        "context",
    ]
    assert "dependentRequired" in json.dumps(document["components"]["schemas"]["cds-request"])
    assert SchemaValidators().names  # the files the document was built from


@schema.parametrize()
@settings(deadline=None, database=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_openapi_document(case):
    response = case.call()
    CASES["cases"] += 1
    OPERATIONS.add(case.operation.label)
    CASES[f"status {response.status_code}"] += 1
    if response.status_code >= 500:
        CASES["5xx"] += 1
    offered = (
        case.operation.path == "/cds-services/{service_id}"
        and case.path_parameters.get("service_id") in SERVICES
    )
    # the coverage phase ignores `not: {enum: [offered ids]}` on the unknown-service path; those ids
    # have their own paths
    case.validate_response(response, checks=[not_a_server_error] if offered else CHECKS)
