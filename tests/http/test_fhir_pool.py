"""The FHIR path reuses what a worker has: kept-alive connections per FHIR host across calls
(counted as TCP connections the loopback server accepts) and the same query threads, never new ones
per call."""

from __future__ import annotations

import threading

import pytest

from fixtures.prefetch import hook_request, transaction_resources
from fixtures.scenarios import scenario
from tests.support.fhir_apps import app_reading_from
from tests.support.fhir_server.faulty import FaultyFhirServer

SCN = scenario("adjuvant-za-prepared")
SIGN = "/cds-services/bonecds-order-sign"
CALLS = 6
PARALLEL = 4


class CountingServer(FaultyFhirServer):
    """The test FHIR server (HTTP/1.1, keep-alive), counting the TCP connections it accepts."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.accepted = 0
        accept = self.httpd.get_request

        def counted():
            connection = accept()
            with self._lock:
                self.accepted += 1
            return connection

        self.httpd.get_request = counted  # type: ignore[method-assign]


@pytest.fixture()
def server():
    with CountingServer(transaction_resources(SCN.patient.transaction())) as fhir:
        yield fhir


def fetch_threads() -> set[int]:
    return {t.ident for t in threading.enumerate() if t.name.startswith("fhir-fetch") and t.ident}


def test_calls_reuse_connections_and_threads(server, tmp_path):
    app = app_reading_from(server.base_url, tmp_path / "pool.db", fhir_max_parallel=PARALLEL)
    client = app.test_client()
    service = type("S", (), {"hook": "order-sign"})()
    body = hook_request(service, SCN.patient_id, SCN.draft_orders, fhir_server=server.base_url)
    threads_before = fetch_threads()
    first = client.post(SIGN, json=body)
    assert first.status_code == 200
    per_call = len(server.reads())  # the queries (and pages) one call sends
    assert per_call > PARALLEL
    after_first = server.accepted
    threads = fetch_threads() - threads_before
    for _ in range(CALLS - 1):
        response = client.post(SIGN, json=body)
        assert response.status_code == 200
        assert response.get_json() == first.get_json()  # the same record read each time
    assert len(server.reads()) == CALLS * per_call
    # the CapabilityStatement (no batch here) was asked once, by the first call
    assert len(server.requests) - len(server.reads()) == 1
    # one connection per lane at most, opened by the first call and kept for the next ones
    assert after_first <= PARALLEL, server.accepted
    assert server.accepted == after_first, (after_first, server.accepted)
    # the same threads served every call: none started after the first
    assert 0 < len(threads) <= PARALLEL
    assert fetch_threads() - threads_before == threads
