"""What on-call sees: a refused token's log line names what to compare (audiences, issuer, kid) and
is counted by reason; every answered request has one log line with its request id; X-Request-ID is
accepted or made, and echoed; responses are counted by status code."""

from __future__ import annotations

import logging
import time

import pytest

from service import create_app
from service.config import Settings
from service.dev_keys import mint_token
from tests.http.test_metrics import sample
from tests.support.jwt_clients import BASE, EHR_ISSUER, SIGN, call, token_for


@pytest.fixture()
def auth_app(tmp_path, clients_file):
    return create_app(
        Settings(
            database_url=f"sqlite:///{tmp_path / 'db.sqlite3'}",
            public_base_url=BASE,
            auth="on",
            clients_file=clients_file,
        )
    )


def refusal_lines(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "bonecds.http" and "refused" in r.getMessage()]


def test_wrong_audience_is_logged_with_both_audiences_issuer_and_kid(auth_app, keys, caplog):
    now = int(time.time())
    wrong = "https://elsewhere.example.org/cds-services/bonecds-order-sign"
    token = mint_token(
        keys["ec"],
        EHR_ISSUER,
        wrong,
        extra_claims={"tenant": "hospital-a", "iat": now},
    )
    caplog.set_level(logging.INFO)
    response = call(auth_app.test_client(), "service", token)
    assert response.status_code == 401
    [line] = refusal_lines(caplog)
    message = line.getMessage()
    assert line.levelno == logging.WARNING
    assert "(audience)" in message
    assert f"aud expected '{BASE}{SIGN}'" in message and f"received '{wrong}'" in message
    assert f"iss '{EHR_ISSUER}'" in message and "kid 'ec-1'" in message
    assert token not in caplog.text and token.split(".")[2] not in caplog.text
    text = auth_app.test_client().get("/metrics").get_data(as_text=True)
    assert sample(text, "bonecds_auth_refusals_total", reason="audience") == 1
    assert sample(text, "bonecds_http_status_total", code="401") == 1


@pytest.mark.parametrize(
    "token, reason",
    [(None, "no-token"), ("not-a-jwt", "malformed")],
    ids=["no-token", "malformed"],
)
def test_other_refusals_are_counted_by_their_reason(auth_app, token, reason, caplog):
    caplog.set_level(logging.INFO)
    client = auth_app.test_client()
    assert call(client, "discovery", token).status_code == 401
    assert f"({reason})" in refusal_lines(caplog)[0].getMessage()
    text = client.get("/metrics").get_data(as_text=True)
    assert sample(text, "bonecds_auth_refusals_total", reason=reason) == 1


def test_unknown_issuer_names_the_issuer_it_saw(auth_app, keys, caplog):
    caplog.set_level(logging.INFO)
    token = mint_token(keys["ec"], "https://stranger.example.org/", f"{BASE}/cds-services")
    assert call(auth_app.test_client(), "discovery", token).status_code == 401
    message = refusal_lines(caplog)[0].getMessage()
    assert "(issuer)" in message and "iss 'https://stranger.example.org/'" in message


def test_accepted_token_leaves_no_refusal(auth_app, keys, caplog):
    caplog.set_level(logging.INFO)
    response = call(auth_app.test_client(), "discovery", token_for(keys, "discovery"))
    assert response.status_code == 200
    assert refusal_lines(caplog) == []


def status_lines(caplog) -> dict[int, list[str]]:
    found: dict[int, list[str]] = {}
    for record in caplog.records:
        status = record.__dict__.get("status")
        if record.name == "bonecds.http" and status is not None:
            found.setdefault(status, []).append(record.getMessage())
    return found


def test_every_4xx_answer_has_one_log_line_without_the_body(app, client, caplog):
    caplog.set_level(logging.INFO)
    secret = "Quillfeather-1961-04-02"
    limit = app.extensions["bonecds"].settings.max_body_bytes
    client.post(SIGN, data=f'{{"x": "{secret}"', content_type="application/json")  # 400
    client.post(SIGN, data="{}", content_type="text/plain")  # 415
    client.post(SIGN, data="x" * (limit + 1), content_type="application/json")  # 413
    client.post(f"/cds-services/{secret}", json={})  # 404: no such service
    client.get(f"/{secret}")  # 404: no such route
    client.delete(SIGN)  # 405
    client.post(SIGN, json={"hook": "order-sign"})  # 400: schema
    lines = status_lines(caplog)
    assert sorted(lines) == [400, 404, 405, 413, 415]
    assert len(lines[400]) == 2 and len(lines[404]) == 2
    assert all(len(lines[code]) == 1 for code in (405, 413, 415))
    assert secret not in caplog.text
    assert sorted(lines[404]) == [
        "GET (no such route) status=404 " + lines[404][1].split(" ")[-1],
        "POST /cds-services/<service_id> status=404 " + lines[404][0].split(" ")[-1],
    ]


def test_a_hook_call_has_one_line_naming_its_request_id_and_hook_instance(client, service, caplog):
    from fixtures.prefetch import scenario_request, transaction_resources
    from fixtures.scenarios import scenario

    caplog.set_level(logging.INFO)
    s = scenario("dose-adjust-first-dose")
    body = scenario_request(service, s, resources=transaction_resources(s.patient.transaction()))
    response = client.post(SIGN, json=body, headers={"X-Request-ID": "ehr-call-0042"})
    assert response.status_code == 200
    assert response.headers["X-Request-ID"] == "ehr-call-0042"
    calls = [r for r in caplog.records if r.name == "bonecds.calls" and "hook=" in r.getMessage()]
    assert len(calls) == 1 and body["hookInstance"] in calls[0].getMessage()
    assert status_lines(caplog) == {}  # the call's line is its one line


@pytest.mark.parametrize("offered", [None, "", "has space", "semi;colon", "x" * 129], ids=str)
def test_a_missing_or_unsafe_request_id_is_replaced_by_a_new_one(client, offered):
    headers = {"X-Request-ID": offered} if offered is not None else {}
    response = client.get("/cds-services", headers=headers)
    made = response.headers["X-Request-ID"]
    assert made and made != offered and len(made) == 32 and made.isalnum()
    assert client.get("/cds-services").headers["X-Request-ID"] != made


def test_request_id_and_hook_instance_on_every_line_of_the_call(make_app, service):
    import io
    import json

    from fixtures.prefetch import scenario_request
    from fixtures.scenarios import scenario
    from service.jsonlog import JsonFormatter

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    old_level = root.level
    root.setLevel(logging.INFO)
    try:
        app = make_app(fhir_allowlist=("http://127.0.0.1:9",))
        s = scenario("calcium-low")
        body = scenario_request(
            app.extensions["bonecds"].services[s.service_id],
            s,
            fhir_server="http://127.0.0.1:9",
            token="t",
        )
        app.test_client().post(SIGN, json=body, headers={"X-Request-ID": "abc-1"})
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    during = [line for line in lines if line.get("requestId") == "abc-1"]
    assert during, lines
    warnings = [line for line in during if line["level"] == "WARNING"]
    assert warnings and all(line["hookInstance"] == body["hookInstance"] for line in warnings)


def test_a_draft_for_another_patient_is_refused_naming_the_entry(client, service):
    from fixtures.prefetch import scenario_request, transaction_resources
    from fixtures.scenarios import scenario

    s = scenario("dose-adjust-first-dose")
    body = scenario_request(service, s, resources=transaction_resources(s.patient.transaction()))
    body["context"]["draftOrders"]["entry"][0]["resource"]["subject"] = {
        "reference": "https://ehr.example.org/fhir/Patient/someone-else"
    }
    response = client.post(SIGN, json=body)
    assert response.status_code == 400
    issue = response.get_json()["issue"][0]
    assert issue["expression"] == ["context.draftOrders.entry[0].resource.subject"]
    assert "another patient" in issue["diagnostics"] and "someone-else" not in issue["diagnostics"]
    body["context"]["draftOrders"]["entry"][0]["resource"]["subject"] = {
        "reference": f"Patient/{s.patient_id}"
    }
    assert client.post(SIGN, json=body).status_code == 200


@pytest.mark.parametrize(
    "reference, refused",
    [
        ("Patient/{id}/", False),
        ("https://ehr.example.org/fhir/Patient/{id}/_history/3", False),
        ("Group/ward-7", False),  # names no patient: left to the rules
        ("https://ehr.example.org/fhir/Patient/someone-else/_history/3", True),
    ],
)
def test_a_draft_subject_is_read_as_the_record_reader_reads_it(client, service, reference, refused):
    """One reading of a Patient reference for the draft check and the record's patient filter: a
    trailing slash or a version is still this patient."""
    from fixtures.prefetch import scenario_request, transaction_resources
    from fixtures.scenarios import scenario

    s = scenario("dose-adjust-first-dose")
    body = scenario_request(service, s, resources=transaction_resources(s.patient.transaction()))
    body["context"]["draftOrders"]["entry"][0]["resource"]["subject"] = {
        "reference": reference.format(id=s.patient_id)
    }
    assert client.post(SIGN, json=body).status_code == (400 if refused else 200)
