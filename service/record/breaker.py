"""A circuit breaker per FHIR host: a server that keeps timing out is skipped for a while instead of
costing every hook call a full timeout."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from hooks.facts.fetch_failure import FetchFailure, FetchReason

log = logging.getLogger(__name__)


class CircuitBreaker:
    """Per FHIR host: after `threshold` hook calls in a row whose reads timed out, the host is
    skipped for `open_seconds` (calls answer at once, saying what could not be checked); then one
    call probes it (half-open), and its outcome closes the circuit or opens it again.

    A slow EHR server then costs one timeout per interval, not one per call, and cannot hold every
    thread of the service.
    """

    def __init__(
        self, threshold: int, open_seconds: float, monotonic: Any = time.monotonic
    ) -> None:
        self.threshold = threshold
        self.open_seconds = open_seconds
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._failures: dict[str, int] = {}
        self._open_until: dict[str, float] = {}
        self._probing: set[str] = set()
        self.on_change: Any = lambda _state: None

    def _tell(self, state: str) -> None:
        try:
            self.on_change(state)
        except Exception as error:  # a metrics hook must never turn a FHIR read into a failed call
            log.error("circuit breaker hook failed (%s)", type(error).__name__)

    def allow(self, host: str) -> FetchFailure | None:
        """None when a call may read from host now, else why not (for the cards)."""
        with self._lock:
            until = self._open_until.get(host)
            if until is None:
                return None
            now = self._monotonic()
            if now < until or host in self._probing:
                return FetchFailure(
                    FetchReason.CIRCUIT_OPEN,
                    "not read: the FHIR server timed out repeatedly and is "
                    f"skipped for {max(1, round(until - now))} s more (circuit open)",
                )
            self._probing.add(host)  # half-open: this call is the probe
        self._tell("half-open")
        return None

    def record(self, host: str, timed_out: bool) -> None:
        state = None
        with self._lock:
            probing = host in self._probing
            self._probing.discard(host)
            if not timed_out:
                self._failures.pop(host, None)
                if self._open_until.pop(host, None) is not None:
                    state = "closed"
            else:
                failures = self._failures.get(host, 0) + 1
                self._failures[host] = failures
                if probing or failures >= self.threshold:
                    self._open_until[host] = self._monotonic() + self.open_seconds
                    state = "open"
        if state:
            if state == "open":
                log.warning(
                    "FHIR server circuit open after repeated timeouts: reads skipped for %g s",
                    self.open_seconds,
                )
            else:
                log.warning("FHIR server answering again: circuit closed")
            self._tell(state)
