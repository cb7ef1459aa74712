"""A failed FHIR read is a FetchFailure: its reason is the metrics label and decides (a timeout
feeds the circuit breaker), its detail is the sentence cards and logs show; nothing matches the
sentence back."""

from __future__ import annotations

import httpx
import pytest

from hooks.facts.fetch_failure import FetchFailure, FetchReason
from service.http.metrics import Metrics
from service.record.breaker import CircuitBreaker
from service.record.fhir_client import FhirFetcher

BASE = "https://ehr.example.org/fhir"


def fetcher(handler, **options) -> FhirFetcher:
    return FhirFetcher(
        timeout_seconds=1.0,
        budget_seconds=2.0,
        max_pages=3,
        max_parallel=2,
        transport=httpx.MockTransport(handler),
        **options,
    )


def answer(status: int = 200, **options):
    return lambda request: httpx.Response(status, **options)


def timeout(request):
    raise httpx.ReadTimeout("slow", request=request)


def refused(request):
    raise httpx.ConnectError("refused", request=request)


@pytest.mark.parametrize(
    "handler, reason, detail",
    [
        (answer(401), FetchReason.HTTP_STATUS, "FHIR server answered HTTP 401"),
        (
            answer(302, headers={"Location": "https://elsewhere.example.org/"}),
            FetchReason.HTTP_STATUS,
            "FHIR server answered HTTP 302 (a redirect, not followed)",
        ),
        (timeout, FetchReason.TIMEOUT, "FHIR server timed out"),
        (refused, FetchReason.UNREACHABLE, "FHIR server unreachable (ConnectError)"),
        (
            answer(200, content=b"<html>", headers={"Content-Type": "text/html"}),
            FetchReason.NOT_JSON,
            "FHIR server sent text/html, not FHIR JSON",
        ),
        (
            answer(200, content=b"{oops", headers={"Content-Type": "application/fhir+json"}),
            FetchReason.NOT_JSON,
            "FHIR server sent a response that is not JSON",
        ),
        (
            answer(200, json=[1, 2]),
            FetchReason.NOT_FHIR,
            "FHIR server sent something that is not a FHIR resource",
        ),
        (
            answer(200, json={"resourceType": "OperationOutcome", "issue": []}),
            FetchReason.OPERATION_OUTCOME,
            "FHIR server answered with an OperationOutcome",
        ),
    ],
)
def test_each_failure_has_its_reason_and_the_sentence_cards_show(handler, reason, detail):
    outcome = fetcher(handler).fetch_all(BASE, None, {"conditions": "Condition?patient=p1"})[
        "conditions"
    ]
    assert outcome.error == FetchFailure(reason, detail) and str(outcome.error) == detail
    assert outcome.error.timed_out is (reason is FetchReason.TIMEOUT)


def test_repeated_timeouts_open_the_circuit_and_it_says_so():
    breaker = CircuitBreaker(threshold=1, open_seconds=30.0)
    slow = fetcher(timeout, breaker=breaker)
    slow.fetch_all(BASE, None, {"patient": "Patient/p1"})
    skipped = slow.fetch_all(BASE, None, {"patient": "Patient/p1"})["patient"].error
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
