"""Reads from the EHR's FHIR server when prefetch is missing: one batch Bundle where the server
takes it, else parallel queries, on pooled connections and threads; per-call timeout, total budget,
bounded paging."""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, wait
from functools import partial
from typing import Any
from urllib.parse import urljoin, urlsplit

from hooks.facts.fetch_failure import FetchFailure, FetchReason
from service.record.batch import BatchReader, Send
from service.record.breaker import CircuitBreaker
from service.record.budget import call_deadline
from service.record.fetch_outcome import FetchOutcome
from service.record.fhir_http import HostConnections
from service.record.fhir_request import fhir_headers, over_budget, request_json
from service.record.paging import count_of, matches_and_included, next_link
from service.record.pools import WorkerPools, run_in_lanes

log = logging.getLogger(__name__)

# One page of a narrow, _count-bounded search is well under 1 MiB; far more is a misbehaving server,
# not a record.
MAX_RESPONSE_BYTES = 4 * 1024 * 1024
# A call over the per-worker limit may wait this long (within its budget) for one to finish: a burst
# of calls on one worker's keep-alive connections is served, not answered busy. Only a few wait at a
# time, so the worker's other threads stay free for health probes and prefetched calls.
SLOT_WAIT_SECONDS = 1.0


PATIENT_NOT_READ = FetchFailure(
    FetchReason.PATIENT_FAILED, "not read: the patient could not be read"
)
BUSY = FetchFailure(
    FetchReason.BUSY,
    "not read: the service is busy (too many FHIR reads in progress on this worker)",
)


class FhirFetcher:
    """Shared by all requests of a worker process; the HTTP pools and the threads are created after
    fork, on first use, and reused by every call.

    At most `max_concurrent_calls` hook calls of one worker read from FHIR servers at a time, and at
    most one fewer wait for their turn (SLOT_WAIT_SECONDS at most): the others answer at once, with
    cards saying what could not be checked, or 503 with Retry-After when the Patient itself was to
    be read, so a slow EHR server cannot hold every thread (and the health probes).
    """

    def __init__(
        self,
        timeout_seconds: float,
        budget_seconds: float,
        max_pages: int,
        max_parallel: int,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
        max_concurrent_calls: int = 4,
        breaker: CircuitBreaker | None = None,
        batch: str = "auto",
    ) -> None:
        self.timeout_seconds = timeout_seconds
        self.budget_seconds = budget_seconds
        self.max_pages = max_pages
        self.max_parallel = max_parallel
        self.max_response_bytes = max_response_bytes
        # connections for every admitted call's parallel queries at once, per host
        self._pools = WorkerPools(max_parallel * max_concurrent_calls)
        self.max_concurrent_calls = max_concurrent_calls
        self._slots = threading.BoundedSemaphore(max_concurrent_calls)
        self._waiting = 0  # calls waiting for a slot
        # with the default 8 threads and 4 calls: 3 wait, 1 thread stays free for probes
        self._max_waiting = max(1, max_concurrent_calls - 1)
        self._waiting_lock = threading.Lock()
        self.breaker = breaker or CircuitBreaker(threshold=3, open_seconds=30.0)
        # "auto": one batch Bundle where the CapabilityStatement offers it; "off": parallel GETs
        self.batch = batch
        self._batches = BatchReader()
        self.on_read: Callable[[str], None] = lambda _mode: None  # "batch", "parallel", "fallback"

    def prepare(self) -> None:
        """What a worker would otherwise set up on its first FHIR read, done before the fork."""
        self._pools.prepare()

    def fetch_all(
        self,
        base_url: str,
        token: str | None,
        queries: dict[str, str],
        *,
        critical: str | None = None,
    ) -> dict[str, FetchOutcome]:
        """Run every query (relative to base_url, or an absolute next-page URL on it) in parallel
        within the budget. When the `critical` query (the Patient read) fails, the call stops at
        once: without the patient there is no answer to give, so the other reads are not waited for.

        A call runs at most `max_parallel` queries at a time, on lanes of the worker's thread pool
        that take its queries one after another (the Patient read first); a call never waits behind
        the queued queries of another (with one shared queue, a later call's Patient read did not
        start behind a hanging server's: 412 for a patient whose record was there). What a call
        has not started when it ends is dropped; what runs ends by the call's deadline.
        """
        if not queries:
            return {}
        host = urlsplit(base_url).netloc.lower()
        why_not = self.breaker.allow(host)
        if why_not is not None:
            return {key: FetchOutcome(error=why_not) for key in queries}
        if not self._slots.acquire(blocking=False) and not self._wait_for_slot():
            return {key: FetchOutcome(error=BUSY) for key in queries}
        try:
            outcomes = self._fetch_all(base_url, token, queries, critical)
        finally:
            self._slots.release()
        self.breaker.record(
            host, any(o.error is not None and o.error.timed_out for o in outcomes.values())
        )
        return outcomes

    def _wait_for_slot(self) -> bool:
        with self._waiting_lock:
            if self._waiting >= self._max_waiting:
                return False
            self._waiting += 1
        try:
            seconds = SLOT_WAIT_SECONDS
            shared_deadline = call_deadline()
            if shared_deadline is not None:
                seconds = min(seconds, shared_deadline - time.monotonic())
            return seconds > 0 and self._slots.acquire(timeout=seconds)
        finally:
            with self._waiting_lock:
                self._waiting -= 1

    def _fetch_all(
        self, base_url: str, token: str | None, queries: dict[str, str], critical: str | None
    ) -> dict[str, FetchOutcome]:
        http = self._pools.client(base_url)
        deadline = time.monotonic() + self.budget_seconds
        shared_deadline = call_deadline()
        if shared_deadline is not None:
            deadline = min(deadline, shared_deadline)
        first: dict[str, dict | FetchOutcome] | None = None
        mode = "parallel"
        if self.batch == "auto":
            # the first pages in one request; the next pages (rare) and a failed batch's queries
            # go as GETs below, within what is left of the budget
            first, mode = self._batches.read(self._sender(http, token), base_url, queries, deadline)
        self._tell(mode)
        pages = first or {}
        # A query whose whole answer the batch brought is read here: on a query thread it would
        # only add hand-offs. Next pages, and every query without a batch, go to the lanes.
        outcomes = {
            key: self._read_in_place(http, base_url, token, key, query, deadline, pages[key])
            for key, query in queries.items()
            if key in pages and not _has_next_page(pages[key])
        }
        rest = {key: query for key, query in queries.items() if key not in outcomes}
        if not rest:
            return outcomes
        if critical in outcomes and _failed_outcome(outcomes[critical]):
            return {**outcomes, **{key: FetchOutcome(error=PATIENT_NOT_READ) for key in rest}}
        jobs = {
            # each query in a copy of the call's context: its log lines name the request
            key: partial(
                contextvars.copy_context().run,
                self._run_query,
                http,
                base_url,
                token,
                query,
                deadline,
                pages.get(key),
            )
            for key, query in rest.items()
        }
        futures = run_in_lanes(self._pools.executor(), self.max_parallel, jobs, first=critical)
        stopped = False
        try:
            pending = set(futures.values())
            while pending:
                remaining = deadline - time.monotonic() + 0.05
                if remaining <= 0:
                    break
                _done, pending = wait(pending, timeout=remaining, return_when=FIRST_COMPLETED)
                patient = futures.get(critical) if critical else None
                if patient is not None and patient.done() and _failed(patient):
                    stopped = True
                    break
            for key, future in futures.items():
                if not future.done() or future.cancelled():
                    outcomes[key] = FetchOutcome(
                        error=PATIENT_NOT_READ if stopped else over_budget(self, "no answer")
                    )
                elif (error := future.exception()) is not None:
                    outcomes[key] = _query_failed(key, error)
                else:
                    outcomes[key] = future.result()
        finally:
            # queries not started by now are dropped, running ones end by the deadline
            for future in futures.values():
                future.cancel()
        return outcomes

    def _read_in_place(
        self,
        http: HostConnections,
        base_url: str,
        token: str | None,
        key: str,
        query: str,
        deadline: float,
        page: dict | FetchOutcome,
    ) -> FetchOutcome:
        try:
            return self._run_query(http, base_url, token, query, deadline, page)
        except Exception as error:  # as on a lane: one query's fault is that query's card
            return _query_failed(key, error)

    def _tell(self, mode: str) -> None:
        try:
            self.on_read(mode)
        except Exception as error:  # a metrics hook must never turn a FHIR read into a failed call
            log.error("FHIR read-mode hook failed (%s)", type(error).__name__)

    def _sender(self, http: HostConnections, token: str | None) -> Send:
        """Requests of the batch reader (its /metadata and the batch POST), with the token, the
        size cap and no redirects, as every read."""

        def send(
            method: str, url: str, content: bytes | None, deadline: float, timeout: float
        ) -> dict | FetchOutcome:
            headers = fhir_headers(token)
            if content is not None:
                headers["Content-Type"] = "application/fhir+json"
            return request_json(
                self, http, url, headers, deadline, method=method, content=content, timeout=timeout
            )

        return send

    def _run_query(
        self,
        http: HostConnections,
        base_url: str,
        token: str | None,
        query: str,
        deadline: float,
        first: dict | FetchOutcome | None = None,
    ) -> FetchOutcome:
        """One query and its next pages; `first` is its first page when a batch brought it."""
        base = base_url.rstrip("/") + "/"
        url = query if query.startswith(base) else base + query.lstrip("/")
        headers = fhir_headers(token)
        count = count_of(query)
        ordered = "_sort=" in query
        collected: list[dict] = []
        seen: set[tuple[str, str]] = set()
        visited: set[str] = set()
        truncated = False
        for page in range(self.max_pages):
            visited.add(url)
            body_or_error = (
                first
                if page == 0 and first is not None
                else request_json(self, http, url, headers, deadline, page)
            )
            if isinstance(body_or_error, FetchOutcome):
                if not body_or_error.found and page == 0 and "?" not in query:
                    # a read of a resource the server does not have
                    return FetchOutcome(found=False)
                return FetchOutcome(collected, error=body_or_error.error)
            body = body_or_error
            if body["resourceType"] == "OperationOutcome":
                return FetchOutcome(
                    collected,
                    error=FetchFailure(
                        FetchReason.OPERATION_OUTCOME,
                        "FHIR server answered with an OperationOutcome",
                    ),
                )
            if body["resourceType"] != "Bundle":
                return FetchOutcome([*collected, body])
            resources, included = matches_and_included(body)
            if count is not None and len(resources) > count:
                truncated, resources = True, resources[:count]  # the server ignored _count
            # _include'd resources (a MedicationRequest's Medication) do not count against _count
            resources += included
            for resource in resources:
                rid = resource.get("id")
                identity = (
                    resource["resourceType"],
                    rid if isinstance(rid, str) else str(id(resource)),
                )
                if identity not in seen:  # a server repeating a page must not double the record
                    seen.add(identity)
                    collected.append(resource)
            next_url = next_link(body)
            if next_url is None:
                break
            next_url = urljoin(url, next_url)
            if not next_url.startswith(base):
                # Paging must stay on the server we were given; anything else is ignored rather than
                # followed.
                return FetchOutcome(
                    collected,
                    error=FetchFailure(
                        FetchReason.FOREIGN_LINK,
                        "FHIR server's next-page link points to another server",
                    ),
                )
            if next_url in visited:
                break  # a link back to a page already read: nothing new to get
            url = next_url
        else:
            truncated = True
            log.info("stopped paging after %d pages", self.max_pages)
        if truncated and not ordered:
            # Unsorted results cut short may miss anything (an allergy on page 6): say so rather
            # than pass silently.
            return FetchOutcome(
                collected,
                error=FetchFailure(
                    FetchReason.TOO_LARGE,
                    f"the FHIR server returned more than {self.max_pages} pages, or more entries on"
                    " a page than asked for; the rest was not read",
                ),
            )
        # Sorted newest first, the results past the cap are only the oldest ones.
        return FetchOutcome(collected)


def _failed(future: Any) -> bool:
    if future.cancelled() or future.exception() is not None:
        return True
    return _failed_outcome(future.result())


def _failed_outcome(outcome: FetchOutcome) -> bool:
    return not outcome.ok or not outcome.found or not outcome.resources


def _has_next_page(page: dict | FetchOutcome) -> bool:
    return isinstance(page, dict) and page.get("resourceType") == "Bundle" and bool(next_link(page))


def _query_failed(key: str, error: BaseException) -> FetchOutcome:
    log.error("FHIR query %s failed unexpectedly: %s", key, type(error).__name__)
    return FetchOutcome(error=FetchFailure(FetchReason.OTHER, "query failed"))
