"""CDS Hooks 2.0 conformance checks 1-23 (discovery, request handling, prefetch semantics, card
content, feedback)."""

from __future__ import annotations

import copy
import json
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft7Validator

from fixtures.builder import day
from fixtures.prefetch import hook_request, transaction_resources
from fixtures.prefetch import scenario_request as hook_request_for
from fixtures.scenarios import all_scenarios, scenario
from service.http.validation import SchemaValidators

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "service" / "http" / "schemas"

SERVICE_URL = "/cds-services/bonecds-order-sign"
SCHEMAS = SchemaValidators()
ALLOWED_TOKENS = {
    "context.userId",
    "context.patientId",
    "context.encounterId",
    "userPractitionerId",
    "userPractitionerRoleId",
    "userPatientId",
    "userRelatedPersonId",
}


def scenario_request(service, name: str, **kwargs) -> dict:
    s = scenario(name)
    return hook_request(
        service,
        s.patient_id,
        s.draft_orders,
        resources=transaction_resources(s.patient.transaction()),
        **kwargs,
    )


def walk(value: Any, path: str = "$") -> Iterator[tuple[str, Any]]:
    yield path, value
    if isinstance(value, dict):
        for key, item in value.items():
            yield from walk(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from walk(item, f"{path}[{index}]")


def assert_outcome(response, status: int) -> None:
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    SCHEMAS.validate("operation-outcome", body)
    assert body["issue"][0]["diagnostics"]


# --- Discovery (1-4) ------------------------------------------------------------------------------


def test_1_discovery_is_json_and_schema_valid(client):
    response = client.get("/cds-services")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    SCHEMAS.validate("discovery-response", response.get_json())


def test_2_order_sign_service_is_described(client):
    services = client.get("/cds-services").get_json()["services"]
    entry = next(s for s in services if s["id"] == "bonecds-order-sign")
    assert entry["hook"] == "order-sign"
    assert all(isinstance(entry[k], str) and entry[k] for k in ("id", "description", "title"))


def test_3_ids_and_prefetch_tokens_are_legal(client):
    for entry in client.get("/cds-services").get_json()["services"]:
        assert not re.search(r"[/?#]", entry["id"])
        for template in entry["prefetch"].values():
            tokens = re.findall(r"\{\{\s*([^}]+?)\s*\}\}", template)
            assert tokens and set(tokens) <= ALLOWED_TOKENS, template


def test_4_prefetch_parameters_are_restricted_and_narrow(client):
    for entry in client.get("/cds-services").get_json()["services"]:
        for key, template in entry["prefetch"].items():
            resource_type, _, query = template.partition("?")
            if not query:
                assert re.fullmatch(r"[A-Z][A-Za-z]+/\{\{context\.patientId\}\}", resource_type)
                continue
            params = dict(p.split("=", 1) for p in query.split("&"))
            for name, value in params.items():
                base, _, modifier = name.partition(":")
                assert modifier in ("", "in"), name
                # reference and token parameters (equality only), dates with a prefix, _count and
                # _sort; and, as the
                # catalog asks, _include of the Medications that medication orders and
                # administrations refer to
                assert base in {
                    "patient",
                    "code",
                    "value-concept",
                    "reason-code",
                    "_sort",
                    "_count",
                    "date",
                    "status",
                    "clinical-status",
                    "_include",
                }, name
                if base == "_include":
                    assert value == f"{resource_type}:medication", template
                if base == "date":
                    assert value[:2] in {"eq", "lt", "gt", "ge", "le"}
            assert "_count" in params, f"{key} is not bounded by _count"


# --- Service requests (5-12) ----------------------------------------------------------------------


def test_5_valid_request_with_full_prefetch(client, service):
    response = client.post(SERVICE_URL, json=scenario_request(service, "dose-adjust-first-dose"))
    assert response.status_code == 200
    SCHEMAS.validate("cds-response", response.get_json())
    schema = json.loads((SCHEMA_DIR / "cds-response.schema.json").read_text(encoding="utf-8"))
    Draft7Validator(schema).validate(response.get_json())


@pytest.mark.parametrize(
    "mutate, status",
    [
        (lambda b: b.pop("hook"), 400),
        (lambda b: b.pop("hookInstance"), 400),
        (lambda b: b.update(hookInstance="not-a-uuid"), 400),
        (lambda b: b.pop("context"), 400),
        (lambda b: b.update(context="Patient/1"), 400),
        (lambda b: b.update(hook="patient-view"), 400),
    ],
    ids=[
        "no-hook",
        "no-hookInstance",
        "bad-hookInstance",
        "no-context",
        "context-not-object",
        "wrong-hook",
    ],
)
def test_6_request_errors_are_400_with_operation_outcome(client, service, mutate, status):
    body = scenario_request(service, "dose-adjust-first-dose")
    mutate(body)
    assert_outcome(client.post(SERVICE_URL, json=body), status)


def test_6_unknown_service_is_404(client, service):
    assert_outcome(
        client.post(
            "/cds-services/no-such-service", json=scenario_request(service, "no-bone-agent")
        ),
        404,
    )


def test_7_fhir_authorization_without_fhir_server(client, service):
    body = scenario_request(service, "dose-adjust-first-dose")
    body["fhirAuthorization"] = {
        "access_token": "secret",
        "token_type": "Bearer",
        "expires_in": 300,
        "scope": "x",
        "subject": "y",
    }
    assert_outcome(client.post(SERVICE_URL, json=body), 400)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda c: c.pop("userId"),
        lambda c: c.update(userId="Patient/123"),
        lambda c: c.pop("patientId"),
        lambda c: c.pop("draftOrders"),
        lambda c: c.update(draftOrders={"resourceType": "MedicationRequest"}),
    ],
    ids=["no-userId", "userId-patient", "no-patientId", "no-draftOrders", "draftOrders-not-bundle"],
)
def test_8_context_errors(client, service, mutate):
    body = scenario_request(service, "dose-adjust-first-dose")
    mutate(body["context"])
    assert_outcome(client.post(SERVICE_URL, json=body), 400)


def test_8_bundle_without_type_is_accepted(client, service):
    body = scenario_request(service, "dose-adjust-first-dose")
    assert "type" not in body["context"]["draftOrders"]
    assert client.post(SERVICE_URL, json=body).status_code == 200


@pytest.mark.parametrize(
    "content_type, data, status",
    [
        ("application/json", b"{not json", 400),
        ("text/plain", b"{}", 415),
        ("application/json", b"[]", 400),
    ],
    ids=["not-json", "wrong-content-type", "json-array"],
)
def test_malformed_bodies(client, content_type, data, status):
    assert_outcome(client.post(SERVICE_URL, data=data, content_type=content_type), status)


def test_oversized_body_is_413(client, service, app):
    body = scenario_request(service, "dose-adjust-first-dose")
    body["padding"] = "x" * (app.extensions["bonecds"].settings.max_body_bytes + 10)
    assert_outcome(client.post(SERVICE_URL, json=body), 413)


def test_9_absent_prefetch_without_fhir_server_is_412(client, service):
    body = scenario_request(service, "dose-adjust-first-dose")
    del body["prefetch"]["patient"]
    assert_outcome(client.post(SERVICE_URL, json=body), 412)


def test_9_null_prefetch_means_no_data(client, service):
    body = scenario_request(service, "dose-adjust-first-dose")
    body["prefetch"]["renal"] = None
    cards = client.post(SERVICE_URL, json=body).get_json()["cards"]
    assert [c["source"]["topic"]["code"] for c in cards] == ["renal-data-missing"]
    assert "none on record" in cards[0]["detail"]


def test_9_empty_bundle_means_no_results(client, service):
    body = scenario_request(service, "dose-adjust-first-dose")
    body["prefetch"]["renal"] = {"resourceType": "Bundle", "type": "searchset", "total": 0}
    cards = client.post(SERVICE_URL, json=body).get_json()["cards"]
    assert [c["source"]["topic"]["code"] for c in cards] == ["renal-data-missing"]


def test_9_operation_outcome_without_server_says_data_could_not_be_had(client, service):
    body = scenario_request(service, "dose-adjust-first-dose")
    body["prefetch"]["renal"] = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "timeout"}],
    }
    cards = client.post(SERVICE_URL, json=body).get_json()["cards"]
    assert [c["source"]["topic"]["code"] for c in cards] == ["renal-data-missing"]
    assert "could not be retrieved" in cards[0]["detail"]


def test_9_absent_key_with_server_is_fetched_and_outcome_is_refetched(client, service, app):
    calls: list[str] = []
    real = app.extensions["bonecds"].fetcher
    s = scenario("dose-adjust-first-dose")
    resources = transaction_resources(s.patient.transaction())
    from fixtures.prefetch import answer_template
    from service.record.fhir_client import FetchOutcome

    class RecordingFetcher:
        def fetch_all(self, base_url, token, queries, **_options):
            calls.extend(queries)
            assert base_url == "https://ehr.example.org/fhir" and token == "secret"
            out = {}
            for key, query in queries.items():
                answer = answer_template(query, resources)
                out[key] = FetchOutcome(
                    [answer]
                    if answer and answer["resourceType"] != "Bundle"
                    else transaction_resources(answer)
                )
            return out

    app.extensions["bonecds"].fetcher = RecordingFetcher()
    try:
        body = hook_request(
            service,
            s.patient_id,
            s.draft_orders,
            resources=resources,
            fhir_server="https://ehr.example.org/fhir",
            token="secret",
        )
        del body["prefetch"]["renal"]
        body["prefetch"]["weight"] = {
            "resourceType": "OperationOutcome",
            "issue": [{"severity": "error", "code": "timeout"}],
        }
        cards = client.post(SERVICE_URL, json=body).get_json()["cards"]
    finally:
        app.extensions["bonecds"].fetcher = real
    assert sorted(calls) == ["renal", "weight"]
    assert [c["source"]["topic"]["code"] for c in cards] == ["renal-dose-adjust"]


def test_10_paginated_prefetch_is_followed(client, service, app):
    s = scenario("dose-adjust-first-dose")
    resources = transaction_resources(s.patient.transaction())
    body = hook_request(
        service,
        s.patient_id,
        s.draft_orders,
        resources=resources,
        fhir_server="https://ehr.example.org/fhir",
        token="secret",
    )
    weight_bundle = body["prefetch"]["weight"]
    page_two = weight_bundle["entry"]
    body["prefetch"]["weight"] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [],
        "link": [{"relation": "next", "url": "https://ehr.example.org/fhir/Observation?page=2"}],
    }
    from service.record.fhir_client import FetchOutcome

    seen = {}

    class PageFetcher:
        def fetch_all(self, base_url, token, queries, **_options):
            seen.update(queries)
            return {k: FetchOutcome([e["resource"] for e in page_two]) for k in queries}

    real = app.extensions["bonecds"].fetcher
    app.extensions["bonecds"].fetcher = PageFetcher()
    try:
        cards = client.post(SERVICE_URL, json=body).get_json()["cards"]
    finally:
        app.extensions["bonecds"].fetcher = real
    assert seen == {"weight": "https://ehr.example.org/fhir/Observation?page=2"}
    assert [c["source"]["topic"]["code"] for c in cards] == ["renal-dose-adjust"]


def test_11_no_bone_agent_gives_exactly_empty_cards_without_fetching(client, service, app):
    s = scenario("no-bone-agent")
    body = hook_request(
        service,
        s.patient_id,
        s.draft_orders,
        fhir_server="https://ehr.example.org/fhir",
        token="secret",
    )

    class FailingFetcher:
        def fetch_all(self, *args):
            raise AssertionError("no FHIR call expected")

    app.extensions["bonecds"].fetcher = FailingFetcher()
    response = client.post(SERVICE_URL, json=body)
    assert response.status_code == 200
    assert response.get_data() == b'{"cards":[]}'


def test_12_resigned_orders_and_mixed_types_do_not_crash(client, service):
    body = scenario_request(service, "dose-adjust-first-dose")
    order = body["context"]["draftOrders"]["entry"][0]["resource"]
    order["status"] = "active"
    body["context"]["draftOrders"]["entry"].append(
        {
            "resource": {
                "resourceType": "ServiceRequest",
                "id": "sr1",
                "status": "draft",
                "intent": "order",
                "subject": {"reference": f"Patient/{body['context']['patientId']}"},
            }
        }
    )
    body["context"]["draftOrders"]["entry"].append(
        {"resource": {"resourceType": "NutritionOrder", "id": "n1"}}
    )
    body["context"]["draftOrders"]["entry"].append({"not": "a resource"})
    response = client.post(SERVICE_URL, json=body)
    assert response.status_code == 200
    assert [c["source"]["topic"]["code"] for c in response.get_json()["cards"]] == [
        "renal-dose-adjust"
    ]


# --- Card content (13-20), over every scenario ----------------------------------------------------


def all_scenario_responses(client, service):
    """Every scenario on its own hook (order-sign, order-select or patient-view), with full
    prefetch."""
    services = client.application.extensions["bonecds"].services
    for s in all_scenarios():
        body = hook_request_for(
            services[s.service_id], s, resources=transaction_resources(s.patient.transaction())
        )
        response = client.post(f"/cds-services/{s.service_id}", json=body)
        assert response.status_code == 200
        yield s, body, response.get_json()


def test_card_ids_follow_the_clock_and_do_not_repeat():
    """Card ids key the issued-card ledger: a later id sorts after an earlier one (so each is added
    at the end of the index), and the 74 random bits keep ids of the same millisecond apart."""
    from hooks.cards import time_ordered_uuid

    earlier = time_ordered_uuid()
    time.sleep(0.002)
    later = time_ordered_uuid()
    assert earlier < later
    burst = [time_ordered_uuid() for _ in range(20_000)]
    assert len(set(burst)) == len(burst)
    assert {uuid.UUID(value).version for value in burst} == {7}
    assert len({value[19:] for value in burst}) == len(burst)  # the random tail differs


def test_13_to_20_card_content_for_every_scenario(client, service):
    seen_cards = 0
    for s, request_body, body in all_scenario_responses(client, service):
        SCHEMAS.validate("cds-response", body)
        drafts = request_body["context"].get("draftOrders", {"entry": []})
        draft_refs = {
            f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in drafts["entry"]
        }
        uuids = []
        for card in body["cards"]:
            seen_cards += 1
            assert len(card["summary"]) <= 139  # 14
            assert card["indicator"] in ("info", "warning", "critical")
            assert card["source"]["label"]
            # every clinical card links its source; the service's own cards (part of the record
            # could not be read)
            # cite no literature
            if card["source"]["topic"]["code"] not in ("record-incomplete", "rule-error"):
                assert card["source"]["url"].startswith("https://")
            assert card["source"]["icon"].startswith("https://")
            assert card["source"]["topic"]["code"] == next(
                code for code, _ in s.expected if code == card["source"]["topic"]["code"]
            )
            uuids.append(card["uuid"])
            suggestions = card.get("suggestions", [])
            if suggestions:  # 16
                assert card["selectionBehavior"] in ("at-most-one", "any")
                if card["selectionBehavior"] == "at-most-one":
                    assert sum(1 for x in suggestions if x.get("isRecommended")) <= 1
            for suggestion in suggestions:
                uuids.append(suggestion["uuid"])
                for action in suggestion["actions"]:  # 17
                    assert action["type"] and action["description"]
                    if action["type"] in ("create", "update"):
                        assert action["resource"]["resourceType"]
                    if action["type"] == "update":
                        assert (
                            f"{action['resource']['resourceType']}/{action['resource']['id']}"
                            in draft_refs
                        )
                    if action["type"] == "delete":
                        assert action["resourceId"] in draft_refs
            for reason in card["overrideReasons"]:  # 18
                assert reason["code"] and reason["system"] and reason["display"]
            for link in card.get("links", []):
                assert (
                    link["label"]
                    and link["url"]
                    and link["type"] == "absolute"
                    and "appContext" not in link
                )
            # 20
            assert not re.search(r"<[a-zA-Z/][^>]*>", card["detail"]), (
                "detail must be markdown without raw HTML"
            )
        for value in uuids:  # 15: time-ordered (version 7) UUIDs in their usual text form
            parsed = uuid.UUID(value)
            assert str(parsed) == value
            assert (parsed.version, parsed.variant) == (7, uuid.RFC_4122)
            issued_ms = parsed.int >> 80
            assert abs(issued_ms - time.time() * 1000) < 600_000
        assert len(uuids) == len(set(uuids))
        for path, value in walk(body):  # 19
            if path == "$.cards":
                continue
            assert value is not None and value != "" and value != [] and value != {}, (
                f"{s.name}: empty value at {path}"
            )
    assert seen_cards >= 10


def test_emitted_resources_pass_fhir_r4b_models(client, service):
    from fhir.resources.R4B import get_fhir_model_class

    count = 0
    for _s, _req, body in all_scenario_responses(client, service):
        for card in body["cards"]:
            for suggestion in card.get("suggestions", []):
                for action in suggestion["actions"]:
                    if "resource" in action:
                        get_fhir_model_class(action["resource"]["resourceType"]).model_validate(
                            action["resource"]
                        )
                        count += 1
    assert count >= 5


# --- Feedback (21-23) -----------------------------------------------------------------------------


def issued_card(client, service) -> dict:
    return client.post(
        SERVICE_URL, json=scenario_request(service, "dose-adjust-first-dose")
    ).get_json()["cards"][0]


def test_21_feedback_shapes_are_accepted_and_tied_to_rule(client, service, app):
    card = issued_card(client, service)
    accepted = {
        "feedback": [
            {
                "card": card["uuid"],
                "outcome": "accepted",
                "acceptedSuggestions": [{"id": card["suggestions"][0]["uuid"]}],
                "outcomeTimestamp": "2026-10-15T10:05:31Z",
            }
        ]
    }
    overridden = {
        "feedback": [
            {
                "card": card["uuid"],
                "outcome": "overridden",
                "outcomeTimestamp": "2026-10-15T10:06:00Z",
                "overrideReason": {
                    "reason": {
                        "code": "cds-not-applicable",
                        "system": (
                            "http://terminology.hl7.org/CodeSystem/non-adherence-reason-codes"
                        ),
                    },
                    "userComment": "dose already reduced at the infusion centre",
                },
            }
        ]
    }
    bare = {
        "feedback": [
            {
                "card": card["uuid"],
                "outcome": "overridden",
                "outcomeTimestamp": "2026-10-15T10:07:00Z",
            }
        ]
    }
    for body in (accepted, overridden, bare):
        response = client.post(SERVICE_URL + "/feedback", json=body)
        assert response.status_code == 200, response.get_data(as_text=True)
    rows = app.extensions["bonecds"].store.feedback_rows()
    assert [r["rule_id"] for r in rows] == ["renal-dose-adjust"] * 3
    assert [r["override_code"] for r in rows] == [None, "cds-not-applicable", None]
    stats = {r["rule_id"]: r for r in app.extensions["bonecds"].store.outcomes_by_rule()}
    assert (
        stats["renal-dose-adjust"]["accepted"] == 1
        and stats["renal-dose-adjust"]["overridden"] == 1
    )


@pytest.mark.parametrize(
    "item",
    [
        {
            "outcome": "accepted",
            "acceptedSuggestions": [{"id": "x"}],
            "outcomeTimestamp": "2026-10-15T10:05:31Z",
        },
        {"card": "c", "outcomeTimestamp": "2026-10-15T10:05:31Z"},
        {"card": "c", "outcome": "ignored", "outcomeTimestamp": "2026-10-15T10:05:31Z"},
        {"card": "c", "outcome": "accepted", "outcomeTimestamp": "2026-10-15T10:05:31Z"},
        {"card": "c", "outcome": "overridden", "outcomeTimestamp": "2026-13-15T10:05:31Z"},
        {"card": "c", "outcome": "overridden", "outcomeTimestamp": "2026-10-15"},
    ],
    ids=[
        "no-card",
        "no-outcome",
        "bad-outcome",
        "accepted-without-suggestions",
        "bad-month",
        "date-only",
    ],
)
def test_22_malformed_feedback_is_400(client, item):
    assert_outcome(client.post(SERVICE_URL + "/feedback", json={"feedback": [item]}), 400)


def test_23_unknown_card_is_stored_flagged_and_repeats_are_idempotent(client, app):
    body = {
        "feedback": [
            {
                "card": str(uuid.uuid4()),
                "outcome": "overridden",
                "outcomeTimestamp": "2026-10-15T10:05:31Z",
            }
        ]
    }
    first = client.post(SERVICE_URL + "/feedback", json=body)
    second = client.post(SERVICE_URL + "/feedback", json=copy.deepcopy(body))
    assert first.status_code == 200 and second.status_code == 200
    assert first.get_json() == {"stored": 1, "duplicates": 0, "unknownCards": 1}
    assert second.get_json() == {"stored": 0, "duplicates": 1, "unknownCards": 0}
    rows = app.extensions["bonecds"].store.feedback_rows()
    assert len(rows) == 1 and rows[0]["known_card"] == 0 and rows[0]["rule_id"] is None


def test_feedback_for_unknown_service_is_404(client):
    assert_outcome(client.post("/cds-services/nope/feedback", json={"feedback": []}), 404)


# --- CORS -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/cds-services", SERVICE_URL, SERVICE_URL + "/feedback"])
def test_cors_preflight_on_all_endpoints(client, path):
    response = client.options(
        path,
        headers={
            "Origin": "https://sandbox.cds-hooks.org",
            "Access-Control-Request-Method": "POST",
        },
    )
    assert response.status_code == 204
    assert "Authorization" in response.headers["Access-Control-Allow-Headers"]
    assert "Content-Type" in response.headers["Access-Control-Allow-Headers"]
    assert "POST" in response.headers["Access-Control-Allow-Methods"]
    assert response.headers["Access-Control-Max-Age"] == "600"
    assert response.headers["Access-Control-Allow-Origin"] == "*"


def test_cors_on_a_call_names_the_origin_and_exposes_the_request_id(client, service):
    """The call's own answer carries what a browser reads from it (origin, exposed headers); what
    may be sent is the preflight's to say."""
    s = scenario("calcium-low")
    body = hook_request_for(service, s, resources=transaction_resources(s.patient.transaction()))
    origin = {"Origin": "https://sandbox.cds-hooks.org"}
    response = client.post(SERVICE_URL, json=body, headers=origin)
    assert response.status_code == 200
    assert response.get_json()["cards"]
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert response.headers["Access-Control-Expose-Headers"] == "X-Request-ID"
    assert response.headers["X-Request-ID"]
    for preflight_only in ("Allow-Methods", "Allow-Headers", "Max-Age"):
        assert f"Access-Control-{preflight_only}" not in response.headers


def test_resources_of_another_patient_are_ignored(client, service, caplog):
    """A prefetch (or FHIR server) that ignores patient= must not lend another patient's results to
    this one."""
    s = scenario("calcium-low")
    other = scenario("metastatic-za-prepared")
    resources = transaction_resources(s.patient.transaction())
    body = hook_request(service, s.patient_id, s.draft_orders, resources=resources)
    others = [
        {**r, "effectiveDateTime": day(1)}
        for r in transaction_resources(other.patient.transaction())
        if r["resourceType"] == "Observation"
    ]
    # the other patient's normal calcium, newer
    body["prefetch"]["calcium"]["entry"] += [{"resource": r} for r in others]
    cards = client.post(SERVICE_URL, json=body).get_json()["cards"]
    assert [c["source"]["topic"]["code"] for c in cards] == ["calcium-low"]
    assert "resource(s) of another patient ignored" in caplog.text


def test_a_patient_read_returning_another_patient_is_412(client, service):
    s = scenario("calcium-low")
    body = hook_request(
        service,
        s.patient_id,
        s.draft_orders,
        resources=transaction_resources(s.patient.transaction()),
    )
    body["prefetch"]["patient"] = {**body["prefetch"]["patient"], "id": "someone-else"}
    response = client.post(SERVICE_URL, json=body)
    assert response.status_code == 412


def _depth(value: Any) -> int:
    """The reference reading: how deep arrays and objects nest (a scalar is 0, `[]` is 1)."""
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


def test_depth_check_agrees_with_a_recursive_count():
    """The request's nesting limit is exceeded exactly when a recursive count says so, for mixed
    objects and arrays at every depth around the limit; prefetch is not counted."""
    import random

    from service.http.views import _json_depth_exceeds

    rng = random.Random(18)

    def document(depth: int) -> Any:
        if depth == 0:
            return rng.choice([1, "x", None, True, 2.5])
        inner = [document(rng.randrange(depth)) for _ in range(rng.randrange(3))]
        inner.insert(rng.randrange(len(inner) + 1), document(depth - 1))
        if rng.random() < 0.5:
            return inner
        return {f"k{i}": v for i, v in enumerate(inner)}

    for _ in range(400):
        built = document(rng.randrange(1, 12))
        for limit in range(1, 13):
            assert _json_depth_exceeds(built, limit) == (_depth(built) > limit), (built, limit)
    deep = {"prefetch": {"a": [[[[[[]]]]]]}, "context": {"b": [1]}}
    assert not _json_depth_exceeds(deep, 3)  # prefetch is read field by field, never echoed
    assert _json_depth_exceeds({**deep, "context": {"b": [[1]]}}, 3)
