"""Prometheus metrics for one app instance, and the unauthenticated `GET /metrics` endpoint (text
exposition format).

Each app has its own CollectorRegistry (several apps in one test process do not clash). When
PROMETHEUS_MULTIPROC_DIR is set (gunicorn's workers), values live in that directory and `/metrics`
aggregates every worker; otherwise they are per process. Labels are a small fixed vocabulary: hook,
service, rule id, indicator, status class, reason class; never URLs, identifiers or anything from
the patient's record.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from flask import Blueprint, Flask, Response, current_app, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from hooks.facts.fetch_failure import FetchFailure

bp = Blueprint("metrics", __name__)

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    def __init__(self, multiproc_dir: str | None = None) -> None:
        self.multiproc_dir = multiproc_dir
        self.registry = CollectorRegistry()
        # In multiprocess mode the metrics write to mmap files and are collected from there, not
        # registered.
        target = None if multiproc_dir else self.registry
        self.request_seconds = Histogram(
            "bonecds_hook_request_seconds",
            "Time to answer a CDS service call",
            ("hook", "service"),
            buckets=LATENCY_BUCKETS,
            registry=target,
        )
        self.responses = Counter(
            "bonecds_http_responses_total",
            "HTTP responses by status class",
            ("status_class",),
            registry=target,
        )
        self.status_codes = Counter(
            "bonecds_http_status_total",
            "HTTP responses by status code (every endpoint but /metrics)",
            ("code",),
            registry=target,
        )
        self.in_flight = Gauge(
            "bonecds_http_requests_in_flight",
            "Requests being answered now (summed over the live workers)",
            registry=target,
            **({"multiprocess_mode": "livesum"} if multiproc_dir else {}),  # type: ignore[arg-type]
        )
        self.auth_refusals = Counter(
            "bonecds_auth_refusals_total",
            "CDS client tokens refused, by reason (no-token, malformed, algorithm, no-kid, issuer,"
            " unknown-kid, jku, jwks, key, audience, expired, time, signature, claims, tenant,"
            " replay, invalid)",
            ("reason",),
            registry=target,
        )
        self.cards = Counter(
            "bonecds_cards_total",
            "Cards returned, by rule and indicator",
            ("rule", "indicator"),
            registry=target,
        )
        self.fhir_seconds = Histogram(
            "bonecds_fhir_fetch_seconds",
            "Time for all FHIR reads of one hook call",
            buckets=LATENCY_BUCKETS,
            registry=target,
        )
        self.fhir_errors = Counter(
            "bonecds_fhir_fetch_errors_total",
            "FHIR queries that failed, by reason class",
            ("reason",),
            registry=target,
        )
        self.feedback = Counter(
            "bonecds_feedback_total",
            "Feedback items stored, by outcome and rule",
            ("outcome", "rule"),
            registry=target,
        )
        self.store_events = Counter(
            "bonecds_store_events_total",
            "Database trouble and how the service coped: error (a failed operation), fallback "
            "(a JWT replay check answered from memory), dropped (rows lost to a full queue), "
            "flushed-feedback (queued feedback written later)",
            ("event", "operation"),
            registry=target,
        )
        self.fhir_reads = Counter(
            "bonecds_fhir_reads_total",
            "FHIR read rounds (a hook call's queries sent together), by how they were sent: batch"
            " (one batch Bundle), parallel (parallel GETs), fallback (a failed batch, then GETs)",
            ("mode",),
            registry=target,
        )
        self.circuit = Counter(
            "bonecds_fhir_circuit_transitions_total",
            "FHIR-server circuit breaker transitions (open: a host skipped after repeated timeouts;"
            " half-open: one call probes it; closed: it answers again)",
            ("state",),
            registry=target,
        )

    def build_info(self, version: str, knowledge: str) -> None:
        """bonecds_build_info{version, knowledge} 1: which software and knowledge answer."""
        target = None if self.multiproc_dir else self.registry
        # in multiprocess mode every worker writes the same value: "max" reports it once
        extra = {"multiprocess_mode": "max"} if self.multiproc_dir else {}
        gauge = Gauge(
            "bonecds_build_info",
            "The software and knowledge versions this service runs",
            ("version", "knowledge"),
            registry=target,
            **extra,  # type: ignore[arg-type]
        )
        gauge.labels(version, knowledge).set(1)

    def circuit_change(self, state: str) -> None:
        self.circuit.labels(state).inc()

    def fhir_read(self, mode: str) -> None:
        self.fhir_reads.labels(mode).inc()

    def store_event(self, event: str, operation: str, count: int) -> None:
        self.store_events.labels(event, operation).inc(count)

    def hook_call(
        self, hook: str, service: str, seconds: float, cards: Iterable[tuple[str, str]] = ()
    ) -> None:
        self.request_seconds.labels(hook, service).observe(seconds)
        for rule, indicator in cards:
            self.cards.labels(rule, indicator).inc()

    def fhir_fetch(self, seconds: float, errors: Iterable[FetchFailure]) -> None:
        """One call's FHIR reads: their time, and each failed query by its reason (the detail never
        becomes a label)."""
        self.fhir_seconds.observe(seconds)
        for error in errors:
            self.fhir_errors.labels(error.reason.value).inc()

    def feedback_outcomes(self, outcomes: Iterable[tuple[str, str | None]]) -> None:
        for outcome, rule in outcomes:
            self.feedback.labels(outcome, rule or "unknown").inc()

    def exposition(self) -> bytes:
        if self.multiproc_dir:
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry, path=self.multiproc_dir)
            return generate_latest(registry)
        return generate_latest(self.registry)


def install(app: Flask, env: Any = None) -> Metrics:
    """Build the app's Metrics, count every response by status class, and serve `/metrics`."""
    metrics = Metrics(
        (env if env is not None else os.environ).get("PROMETHEUS_MULTIPROC_DIR") or None
    )

    @app.after_request
    def count_response(response: Response) -> Response:
        if request.path != "/metrics":
            metrics.responses.labels(f"{response.status_code // 100}xx").inc()
        return response

    app.register_blueprint(bp)
    return metrics


@bp.get("/metrics")
def metrics_endpoint() -> Response:
    return Response(
        current_app.extensions["bonecds"].metrics.exposition(), content_type=CONTENT_TYPE_LATEST
    )
