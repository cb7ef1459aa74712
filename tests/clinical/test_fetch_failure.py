"""A failed FHIR read is a FetchFailure: its reason is the metrics label and decides (a timeout
feeds the circuit breaker), its detail is the sentence cards and logs show; nothing matches the
sentence back."""

from __future__ import annotations

import socket

import orjson
import pytest

from hooks.facts.fetch_failure import FetchFailure, FetchReason
from service.http.metrics import Metrics
from service.record.breaker import CircuitBreaker
from service.record.fhir_client import FhirFetcher
from tests.support.answering_server import AnsweringServer, Reply


def fetcher(**options) -> FhirFetcher:
    return FhirFetcher(
        timeout_seconds=1.0, budget_seconds=2.0, max_pages=3, max_parallel=2, **options
    )


def closed_port_base() -> str:
    """A loopback base URL nothing listens on (the port was just free)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/fhir"


def read_conditions(reply: Reply | None, **options):
    """The conditions query's outcome from a real server answering every request with `reply`
    (None: no server at all)."""
    if reply is None:
        return fetcher(**options).fetch_all(
            closed_port_base(), None, {"conditions": "Condition?patient=p1"}
        )["conditions"]
    with AnsweringServer(lambda _asked: reply) as server:
        return fetcher(**options).fetch_all(
            server.base_url + "/fhir", None, {"conditions": "Condition?patient=p1"}
        )["conditions"]


@pytest.mark.parametrize(
    "reply, reason, detail",
    [
        (Reply(401), FetchReason.HTTP_STATUS, "FHIR server answered HTTP 401"),
        (
            Reply(302, headers={"Location": "https://elsewhere.example.org/"}),
            FetchReason.HTTP_STATUS,
            "FHIR server answered HTTP 302 (a redirect, not followed)",
        ),
        (Reply(200, b"{}", delay=3.0), FetchReason.TIMEOUT, "FHIR server timed out"),
        (None, FetchReason.UNREACHABLE, "FHIR server unreachable (ConnectError)"),
        (
            Reply(200, b'{"resourceType": "Bundle", "type": "searchset"}', cut_after=10),
            FetchReason.UNREACHABLE,
            "FHIR server unreachable (RemoteProtocolError)",
        ),
        (
            Reply(200, b"<html>", headers={"Content-Type": "text/html"}),
            FetchReason.NOT_JSON,
            "FHIR server sent text/html, not FHIR JSON",
        ),
        (
            Reply(200, b"{oops"),
            FetchReason.NOT_JSON,
            "FHIR server sent a response that is not JSON",
        ),
        (
            Reply(200, orjson.dumps([1, 2])),
            FetchReason.NOT_FHIR,
            "FHIR server sent something that is not a FHIR resource",
        ),
        (
            Reply(200, orjson.dumps({"resourceType": "OperationOutcome", "issue": []})),
            FetchReason.OPERATION_OUTCOME,
            "FHIR server answered with an OperationOutcome",
        ),
    ],
    ids=[
        "401",
        "redirect",
        "timeout",
        "refused",
        "dropped",
        "html",
        "not-json",
        "not-fhir",
        "outcome",
    ],
)
def test_each_failure_has_its_reason_and_the_sentence_cards_show(reply, reason, detail):
    outcome = read_conditions(reply)
    assert outcome.error == FetchFailure(reason, detail) and str(outcome.error) == detail
    assert outcome.error.timed_out is (reason is FetchReason.TIMEOUT)


def test_repeated_timeouts_open_the_circuit_and_it_says_so():
    breaker = CircuitBreaker(threshold=1, open_seconds=30.0)
    slow = fetcher(breaker=breaker)
    with AnsweringServer(lambda _asked: Reply(200, b"{}", delay=3.0)) as server:
        slow.fetch_all(server.base_url, None, {"patient": "Patient/p1"})
        skipped = slow.fetch_all(server.base_url, None, {"patient": "Patient/p1"})["patient"].error
    assert skipped is not None and skipped.reason is FetchReason.CIRCUIT_OPEN
    assert str(skipped).startswith(
        "not read: the FHIR server timed out repeatedly"
    ) and "(circuit open)" in str(skipped)


def test_metrics_count_failures_by_reason_never_by_text():
    metrics = Metrics()
    metrics.fhir_fetch(
        0.2,
        [
            FetchFailure(FetchReason.CIRCUIT_OPEN, "not read: ... timed out ... (circuit open)"),
            FetchFailure(FetchReason.HTTP_STATUS, "FHIR server answered HTTP 401"),
            FetchFailure(FetchReason.HTTP_STATUS, "FHIR server answered HTTP 403"),
        ],
    )
    assert (
        metrics.registry.get_sample_value(
            "bonecds_fhir_fetch_errors_total", {"reason": "circuit_open"}
        )
        == 1
    )
    assert (
        metrics.registry.get_sample_value(
            "bonecds_fhir_fetch_errors_total", {"reason": "http_status"}
        )
        == 2
    )
    assert (
        metrics.registry.get_sample_value("bonecds_fhir_fetch_errors_total", {"reason": "timeout"})
        is None
    )
