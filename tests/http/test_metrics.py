"""Prometheus metrics at GET /metrics, and the JSON log format (no PHI)."""

from __future__ import annotations

import io
import json
import logging
import socket

from prometheus_client.parser import text_string_to_metric_families

from fixtures.prefetch import scenario_request, transaction_resources
from fixtures.scenarios import scenario
from service.jsonlog import JsonFormatter, configure_logging

# the conftest app's settings without its public base URL and FHIR allowlist
BARE = {"public_base_url": None, "fhir_allowlist": ()}


def post_scenario(client, app, name: str, **options):
    s = scenario(name)
    service = app.extensions["bonecds"].services[s.service_id]
    options.setdefault("resources", transaction_resources(s.patient.transaction()))
    return client.post(
        f"/cds-services/{s.service_id}", json=scenario_request(service, s, **options)
    )


def sample(text: str, name: str, **labels) -> float:
    """The value of one sample (0 when absent), matching the given labels exactly on those keys."""
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
    return 0.0


def test_metrics_count_requests_cards_feedback_and_errors(make_app):
    app = make_app(**BARE)
    client = app.test_client()
    answers = {
        name: post_scenario(client, app, name)
        for name in ("calcium-low", "adjuvant-za-prepared", "review-adjuvant-candidate")
    }
    assert all(r.status_code == 200 for r in answers.values())
    card = answers["calcium-low"].get_json()["cards"][0]
    feedback = {
        "feedback": [
            {
                "card": card["uuid"],
                "outcome": "overridden",
                "outcomeTimestamp": "2026-10-15T10:05:00Z",
            }
        ]
    }
    assert (
        client.post("/cds-services/bonecds-order-sign/feedback", json=feedback).status_code == 200
    )
    assert (
        client.post("/cds-services/bonecds-order-sign", json={"hook": "order-sign"}).status_code
        == 400
    )

    response = client.get("/metrics")  # no Authorization header needed
    assert response.status_code == 200 and response.mimetype == "text/plain"
    text = response.get_data(as_text=True)
    assert sample(text, "bonecds_cards_total", rule="calcium-low", indicator="critical") == 1
    assert (
        sample(text, "bonecds_cards_total", rule="review-adjuvant-candidate", indicator="info") == 1
    )
    assert (
        sample(
            text,
            "bonecds_hook_request_seconds_count",
            hook="order-sign",
            service="bonecds-order-sign",
        )
        == 2
    )
    assert (
        sample(
            text,
            "bonecds_hook_request_seconds_count",
            hook="patient-view",
            service="bonecds-patient-view",
        )
        == 1
    )
    assert sample(text, "bonecds_feedback_total", outcome="overridden", rule="calcium-low") == 1
    assert sample(text, "bonecds_feedback_total", outcome="accepted", rule="calcium-low") == 0
    assert sample(text, "bonecds_http_responses_total", status_class="2xx") == 4
    assert sample(text, "bonecds_http_responses_total", status_class="4xx") == 1
    assert sample(text, "bonecds_fhir_fetch_seconds_count") == 0  # everything came by prefetch


def test_unreachable_fhir_server_counts_fetch_errors(make_app):
    with socket.socket() as probe:  # a loopback port nobody listens on once closed
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}/fhir"
    app = make_app(
        public_base_url=None,
        fhir_allowlist=(url,),
        fhir_timeout_seconds=0.2,
        fhir_budget_seconds=0.5,
    )
    client = app.test_client()
    response = post_scenario(client, app, "calcium-low", prefetch_keys=[], fhir_server=url)
    assert response.status_code == 412
    text = client.get("/metrics").get_data(as_text=True)
    assert sample(text, "bonecds_fhir_fetch_seconds_count") == 1
    assert sample(text, "bonecds_fhir_fetch_errors_total", reason="unreachable") >= 1
    assert sample(text, "bonecds_http_responses_total", status_class="4xx") == 1
    assert url not in text and "127.0.0.1" not in text


def test_json_log_lines_carry_hook_fields_and_no_phi(make_app, monkeypatch):
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    monkeypatch.setattr(logging.root, "handlers", [handler])
    configure_logging("INFO", "json")  # installs the JSON formatter on the root handlers
    assert isinstance(handler.formatter, JsonFormatter)
    app = make_app(**BARE)
    logger = logging.getLogger("bonecds")
    logger.setLevel(logging.INFO)
    try:
        assert post_scenario(app.test_client(), app, "calcium-low").status_code == 200
    finally:
        logger.setLevel(logging.NOTSET)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert lines and all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    call = next(line for line in lines if line["logger"] == "bonecds.calls" and "hook" in line)
    assert (
        call["hook"] == "order-sign"
        and call["service"] == "bonecds-order-sign"
        and call["rules"] == ["calcium-low"]
    )
    assert isinstance(call["ms"], float) and call["hookInstance"]
    patient = scenario("calcium-low").patient.transaction()["entry"][0]["resource"]
    assert patient["resourceType"] == "Patient"
    for secret in (patient["name"][0]["family"], patient["birthDate"]):
        assert secret not in stream.getvalue()
