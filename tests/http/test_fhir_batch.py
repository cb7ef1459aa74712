"""The FHIR path's batch read against the misbehaving test server (tests/support/fhir_server/
faulty.py): one batch Bundle where the CapabilityStatement offers it, parallel GETs where it does
not, and a batch that fails falls back to GETs within the budget, the cards unchanged; entries map
back to their queries (a missing Patient is 412, an OperationOutcome entry is said on the cards)."""

from __future__ import annotations

import time
from collections import Counter

import pytest

from fixtures.prefetch import scenario_request, transaction_resources
from fixtures.scenarios import scenario
from hooks.facts.fetch_failure import FetchReason
from service.config import ConfigError, Settings
from service.record.batch import (
    CAPABILITY_SECONDS,
    REFUSED_SECONDS,
    UNKNOWN_SECONDS,
    BatchReader,
    first_pages,
    says_batch,
    server_key,
)
from service.record.fetch_outcome import FetchOutcome, status_failure
from tests.support.fhir_apps import app_reading_from
from tests.support.fhir_server.faulty import FaultyFhirServer

TIMEOUT, BUDGET, MARGIN, MAX_PAGES = 0.5, 1.5, 0.75, 5
TOKEN = "batch-test-token-91c2"
PREPARED = scenario("adjuvant-za-prepared")  # no card when the whole record is read
QUERIES = 20  # the order-sign's prefetch templates, one batch entry each


def app_for(server: FaultyFhirServer, tmp_path, batch: str = "auto"):
    return app_reading_from(
        server.base_url,
        tmp_path / f"{batch}.db",
        fhir_timeout_seconds=TIMEOUT,
        fhir_budget_seconds=BUDGET,
        fhir_max_pages=MAX_PAGES,
        fhir_breaker_failures=10_000,
        fhir_batch=batch,
    )


def post(app, server: FaultyFhirServer, scn=PREPARED) -> tuple[int, dict, float]:
    service = app.extensions["bonecds"].services[scn.service_id]
    body = scenario_request(service, scn, fhir_server=server.base_url, token=TOKEN)
    started = time.monotonic()
    response = app.test_client().post(f"/cds-services/{scn.service_id}", json=body)
    elapsed = time.monotonic() - started
    assert response.status_code < 500, response.get_data(as_text=True)
    assert elapsed < BUDGET + MARGIN, f"{elapsed:.2f} s"
    return response.status_code, response.get_json(), elapsed


def kinds(server: FaultyFhirServer) -> Counter:
    """What the server was asked: metadata, batch (POSTs) and get (the other GETs)."""
    time.sleep(0.05)  # let requests still in flight land in the log
    return Counter(
        "metadata"
        if seen.path.endswith("/metadata")
        else "batch"
        if seen.method == "POST"
        else "get"
        for seen in server.requests
    )


def without_uuids(value):
    """Cards and suggestions as compared across calls (each answer gives them new uuids)."""
    if isinstance(value, dict):
        return {k: without_uuids(v) for k, v in value.items() if k != "uuid"}
    if isinstance(value, list | tuple):
        return [without_uuids(v) for v in value]
    return value


def cards_by_rule(body: dict) -> dict[str, dict]:
    return {card["source"]["topic"]["code"]: card for card in body["cards"]}


def reads_metric(app, mode: str) -> float:
    text = app.test_client().get("/metrics").get_data(as_text=True)
    line = f'bonecds_fhir_reads_total{{mode="{mode}"}} '
    return next((float(x.split()[-1]) for x in text.splitlines() if x.startswith(line)), 0.0)


@pytest.fixture()
def server():
    with FaultyFhirServer(
        transaction_resources(PREPARED.patient.transaction()), batch=True, hang_seconds=5.0
    ) as fhir:
        yield fhir


@pytest.fixture()
def no_batch_server():
    with FaultyFhirServer(transaction_resources(PREPARED.patient.transaction())) as fhir:
        yield fhir


def test_a_server_offering_batch_gets_one_batch_and_no_gets(server, tmp_path):
    app = app_for(server, tmp_path)
    status, body, _ = post(app, server)
    assert (status, body["cards"]) == (200, [])
    assert kinds(server) == {"metadata": 1, "batch": 1}
    [batch] = [seen for seen in server.requests if seen.method == "POST"]
    assert batch.path == "/fhir" and batch.authorized and len(batch.entries) == QUERIES
    assert batch.entries[0] == f"Patient/{PREPARED.patient_id}"
    server.reset()
    post(app, server)  # the CapabilityStatement is not asked again
    assert kinds(server) == {"batch": 1}
    assert reads_metric(app, "batch") == 2 and reads_metric(app, "parallel") == 0


def test_a_server_without_batch_gets_parallel_gets(no_batch_server, tmp_path):
    app = app_for(no_batch_server, tmp_path)
    status, body, _ = post(app, no_batch_server)
    assert (status, body["cards"]) == (200, [])
    assert kinds(no_batch_server) == {"metadata": 1, "get": QUERIES}
    no_batch_server.reset()
    post(app, no_batch_server)
    assert kinds(no_batch_server) == {"get": QUERIES}
    assert reads_metric(app, "parallel") == 2 and reads_metric(app, "batch") == 0


def test_batch_off_never_asks_for_the_capability_statement(server, tmp_path):
    app = app_for(server, tmp_path, batch="off")
    status, body, _ = post(app, server)
    assert (status, body["cards"]) == (200, [])
    assert kinds(server) == {"get": QUERIES}


@pytest.mark.parametrize(
    "scn",
    [
        "stale-creatinine",
        "bisphosphonate-allergy",
        "duplicate-bone-agent",
        "review-denosumab-stopped",
        "schedule-crcl-35-offers-zoledronic-acid-3mg",
    ],
)
def test_batch_and_parallel_gets_give_the_same_cards(tmp_path, scn):
    chosen = scenario(scn)
    with FaultyFhirServer(transaction_resources(chosen.patient.transaction()), batch=True) as fhir:
        batched = post(app_for(fhir, tmp_path), fhir, chosen)[:2]
        assert kinds(fhir)["batch"] == 1 and kinds(fhir)["get"] == 0
        fhir.reset()
        parallel = post(app_for(fhir, tmp_path, batch="off"), fhir, chosen)[:2]
        assert kinds(fhir)["batch"] == 0
    assert without_uuids(batched) == without_uuids(parallel)
    assert sorted(
        (c["source"]["topic"]["code"], c["indicator"]) for c in batched[1]["cards"]
    ) == sorted(chosen.expected)


@pytest.mark.parametrize(
    "fault", ["http500", "hang", "http405", "not-bundle", "wrong-count", "malformed", "http401"]
)
def test_a_failing_batch_falls_back_to_gets_with_the_same_cards(server, tmp_path, fault):
    """The server advertises batch but the batch fails: the queries go as GETs within what is left
    of the budget, the cards are those of a good server, and the next call sends no batch (but
    after a 401, which is about the call's token, not the server)."""
    app = app_for(server, tmp_path)
    server.reset({"batch": fault})
    status, body, elapsed = post(app, server)
    assert (status, body["cards"]) == (200, []), body
    assert kinds(server) == {"metadata": 1, "batch": 1, "get": QUERIES}
    assert reads_metric(app, "fallback") == 1
    if fault == "hang":  # the batch's share of the budget, then the GETs
        assert TIMEOUT * 0.9 < elapsed < BUDGET, elapsed
    server.reset({"batch": fault})
    assert post(app, server)[:2] == (200, {"cards": []})
    assert kinds(server) == (
        {"batch": 1, "get": QUERIES} if fault == "http401" else {"get": QUERIES}
    )


@pytest.mark.parametrize("fault", ["hang", "http500", "malformed"])
def test_a_failing_capability_statement_means_parallel_gets(server, tmp_path, fault):
    app = app_for(server, tmp_path)
    server.reset({"metadata": fault})
    status, body, _ = post(app, server)
    assert (status, body["cards"]) == (200, [])
    assert kinds(server) == {"metadata": 1, "get": QUERIES}


def test_a_missing_patient_in_the_batch_is_412(server, tmp_path):
    app = app_for(server, tmp_path)
    server.reset({"Patient": "not-found"})
    status, body, elapsed = post(app, server)
    assert status == 412 and body["resourceType"] == "OperationOutcome"
    assert "was not found" in body["issue"][0]["diagnostics"]
    assert kinds(server) == {"metadata": 1, "batch": 1} and elapsed < 0.5


def test_a_failed_patient_entry_is_412_with_its_reason(server, tmp_path):
    server.reset({"Patient": "http500"})
    status, body, _ = post(app_for(server, tmp_path), server)
    assert status == 412 and "HTTP 500" in body["issue"][0]["diagnostics"]


@pytest.mark.parametrize(
    "faults, reason",
    [
        ({"Condition": "outcome", "AllergyIntolerance": "outcome"}, "OperationOutcome"),
        ({"Condition": "http500", "AllergyIntolerance": "http503"}, "HTTP 50"),
    ],
)
def test_a_failed_entry_costs_only_its_own_checks_and_says_so(server, tmp_path, faults, reason):
    server.reset(faults)
    status, body, _ = post(app_for(server, tmp_path), server)
    assert status == 200
    assert kinds(server) == {"metadata": 1, "batch": 1}  # the failed entries are not asked again
    cards = cards_by_rule(body)
    assert set(cards) == {"record-incomplete"}
    detail = cards["record-incomplete"]["detail"]
    for what in ("Allergies could not be retrieved", "Problem list (conditions) could not be"):
        assert what in detail, detail
    assert reason in detail
    assert "Creatinine" not in detail and "Medication orders" not in detail


def test_next_pages_of_batch_entries_are_read_with_gets(server, tmp_path):
    """An endless next chain: the first page came in the batch, the next ones as GETs, up to the
    page cap; the unsorted searches say they were cut short, as with parallel GETs."""
    server.reset({"*": "endless"})
    status, body, _ = post(app_for(server, tmp_path), server)
    assert status == 200
    pages = Counter(
        seen.path for seen in server.requests if seen.method == "GET" and "_page=" in seen.query
    )
    [batch] = [seen for seen in server.requests if seen.method == "POST"]
    searches = sum(1 for url in batch.entries if "?" in url)
    assert sum(pages.values()) == searches * (MAX_PAGES - 1)
    detail = cards_by_rule(body)["record-incomplete"]["detail"]
    assert "Allergies could not be retrieved" in detail and "the rest was not read" in detail


def test_foreign_next_link_in_a_batch_entry_is_not_followed(server, tmp_path):
    server.reset({"*": "foreign-next"})
    status, body, _ = post(app_for(server, tmp_path), server)
    assert status == 200 and kinds(server) == {"metadata": 1, "batch": 1}
    assert any(
        "next-page link points to another server" in card["detail"] for card in body["cards"]
    )


# --- the pieces -----------------------------------------------------------------------------------


def test_capability_statements_that_offer_batch():
    def statement(*codes: str, mode: str = "server") -> dict:
        return {
            "resourceType": "CapabilityStatement",
            "rest": [{"mode": mode, "interaction": [{"code": c} for c in codes]}],
        }

    assert says_batch(statement("transaction", "batch"))
    assert not says_batch(statement("transaction"))
    assert not says_batch(statement("batch", mode="client"))
    assert not says_batch({"resourceType": "Bundle", "rest": statement("batch")["rest"]})
    assert not says_batch({"resourceType": "CapabilityStatement", "rest": "batch"})


def test_batch_entries_map_back_to_their_queries():
    patient = {"resourceType": "Patient", "id": "p1"}
    answer = {
        "resourceType": "Bundle",
        "type": "batch-response",
        "entry": [
            {"resource": patient, "response": {"status": "200 OK"}},
            {"response": {"status": "404 Not Found"}},
            {"response": {"status": "500", "outcome": {"resourceType": "OperationOutcome"}}},
            {"response": {}},
            {"resource": "text", "response": {"status": "200"}},
        ],
    }
    keys = ["patient", "gone", "broken", "no-status", "not-fhir"]
    pages = first_pages(answer, keys)
    assert pages is not None and pages["patient"] == patient
    gone, broken = pages["gone"], pages["broken"]
    assert isinstance(gone, FetchOutcome) and not gone.found and gone.status == 404
    assert isinstance(broken, FetchOutcome) and str(broken.error) == "FHIR server answered HTTP 500"
    for key in ("no-status", "not-fhir"):
        page = pages[key]
        assert isinstance(page, FetchOutcome) and page.error is not None
        assert page.error.reason is FetchReason.NOT_FHIR
    assert first_pages(answer, keys[:-1]) is None  # one entry per query, or none is trusted
    assert first_pages({**answer, "type": "searchset"}, keys) is None


def test_batch_setting():
    assert Settings.from_env({}).fhir_batch == "auto"
    assert Settings.from_env({"BONECDS_FHIR_BATCH": "OFF"}).fhir_batch == "off"
    with pytest.raises(ConfigError, match="BONECDS_FHIR_BATCH must be one of auto, off"):
        Settings.from_env({"BONECDS_FHIR_BATCH": "sometimes"})


def test_how_long_a_server_is_remembered():
    """Its CapabilityStatement for an hour; a failing /metadata or batch for a minute; a refused
    batch for ten; a batch refused for this call's token not at all (the clock is a stand-in, the
    answers are what `request_json` gives)."""
    now = [0.0]
    reader = BatchReader(monotonic=lambda: now[0])
    capability = {
        "resourceType": "CapabilityStatement",
        "rest": [{"mode": "server", "interaction": [{"code": "batch"}]}],
    }
    answers: list = []

    def send(method, url, content, deadline, timeout):
        assert timeout <= (deadline - now[0]) / 2  # a share of the budget, never all of it
        return answers.pop(0)

    queries = {"patient": "Patient/p1", "conditions": "Condition?patient=p1"}
    key = server_key("https://EHR.example.org/fhir/")
    answers[:] = [capability, status_failure(405)]
    assert reader.read(send, "https://ehr.example.org/fhir", queries, 10.0) == (None, "fallback")
    assert reader.known(key) is False
    now[0] = REFUSED_SECONDS + 1
    answers[:] = [capability, status_failure(401)]
    assert reader.read(send, "https://ehr.example.org/fhir", queries, now[0] + 10) == (
        None,
        "fallback",
    )
    assert reader.known(key) is True and not answers
    now[0] += CAPABILITY_SECONDS - 1
    assert reader.known(key) is True
    now[0] += 2
    assert reader.known(key) is None
    answers[:] = [FetchOutcome()]  # no CapabilityStatement
    assert not reader.supports_batch(send, "https://ehr.example.org/fhir", now[0] + 10)
    now[0] += UNKNOWN_SECONDS + 1
    assert reader.known(key) is None


def test_a_capability_statement_refused_for_this_calls_token_is_not_remembered():
    """A 401 or 403 on /metadata says nothing about the server: the next call (another token) asks
    again, as after a batch refused for a token."""
    reader = BatchReader(monotonic=lambda: 0.0)
    key = server_key("https://ehr.example.org/fhir")
    for status in (401, 403):
        refused = status_failure(status)
        assert not reader.supports_batch(
            lambda *_, answer=refused: answer, "https://ehr.example.org/fhir", 10.0
        )
        assert reader.known(key) is None
    assert not reader.supports_batch(
        lambda *_: status_failure(500), "https://ehr.example.org/fhir", 10.0
    )
    assert reader.known(key) is False  # a failing server: GETs for a while
