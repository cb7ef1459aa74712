"""Reads from the EHR's FHIR server when prefetch is missing: parallel queries, per-call timeout, total budget, bounded paging."""
from __future__ import annotations

import logging
import os
import threading
import time
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

from hooks.fhir_read import bundle_resources

log = logging.getLogger(__name__)


@dataclass
class FetchOutcome:
    """What one query produced: resources (possibly none), or why it failed. `found` is False for a missing read target."""
    resources: list[dict] = field(default_factory=list)
    error: str | None = None
    found: bool = True

    @property
    def ok(self) -> bool:
        return self.error is None


class FhirFetcher:
    """Shared by all requests of a worker process; the HTTP pool and threads are created after fork, on first use."""

    def __init__(self, timeout_seconds: float, budget_seconds: float, max_pages: int, max_parallel: int,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.timeout_seconds = timeout_seconds
        self.budget_seconds = budget_seconds
        self.max_pages = max_pages
        self.max_parallel = max_parallel
        self._transport = transport
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._http: httpx.Client | None = None
        self._pool: ThreadPoolExecutor | None = None

    def _resources(self) -> tuple[httpx.Client, ThreadPoolExecutor]:
        with self._lock:
            if self._pid != os.getpid() or self._http is None or self._pool is None:
                self._http = httpx.Client(transport=self._transport, follow_redirects=False,
                                          limits=httpx.Limits(max_connections=self.max_parallel * 2))
                self._pool = ThreadPoolExecutor(max_workers=self.max_parallel, thread_name_prefix="fhir-fetch")
                self._pid = os.getpid()
            return self._http, self._pool

    def fetch_all(self, base_url: str, token: str | None, queries: dict[str, str]) -> dict[str, FetchOutcome]:
        """Run every query (relative to base_url, or an absolute next-page URL on it) in parallel within the budget."""
        if not queries:
            return {}
        http, pool = self._resources()
        deadline = time.monotonic() + self.budget_seconds
        futures = {key: pool.submit(self._run_query, http, base_url, token, query, deadline) for key, query in queries.items()}
        wait(futures.values(), timeout=max(0.0, deadline - time.monotonic()) + 0.05, return_when=FIRST_EXCEPTION)
        outcomes: dict[str, FetchOutcome] = {}
        for key, future in futures.items():
            if not future.done():
                future.cancel()
                outcomes[key] = FetchOutcome(error=f"no answer within the {self.budget_seconds:g} s budget")
            elif future.exception() is not None:
                log.error("FHIR query %s failed unexpectedly: %s", key, type(future.exception()).__name__)
                outcomes[key] = FetchOutcome(error="query failed")
            else:
                outcomes[key] = future.result()
        return outcomes

    def _run_query(self, http: httpx.Client, base_url: str, token: str | None, query: str, deadline: float) -> FetchOutcome:
        base = base_url.rstrip("/") + "/"
        url = query if query.startswith(base) else base + query.lstrip("/")
        headers = {"Accept": "application/fhir+json, application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        collected: list[dict] = []
        for page in range(self.max_pages):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return FetchOutcome(collected, error=f"no answer within the {self.budget_seconds:g} s budget")
            started = time.monotonic()
            try:
                response = http.get(url, headers=headers, timeout=min(self.timeout_seconds, remaining))
            except httpx.TimeoutException:
                return FetchOutcome(collected, error="FHIR server timed out")
            except httpx.HTTPError as error:
                return FetchOutcome(collected, error=f"FHIR server unreachable ({type(error).__name__})")
            finally:
                log.debug("FHIR GET page %d took %.1f ms", page, (time.monotonic() - started) * 1000)
            if response.status_code in (404, 410) and "?" not in query:
                return FetchOutcome(found=False)
            if response.status_code >= 300:
                return FetchOutcome(collected, error=f"FHIR server answered HTTP {response.status_code}")
            try:
                body = orjson.loads(response.content)
            except orjson.JSONDecodeError:
                return FetchOutcome(collected, error="FHIR server sent a response that is not JSON")
            if not isinstance(body, dict) or not isinstance(body.get("resourceType"), str):
                return FetchOutcome(collected, error="FHIR server sent something that is not a FHIR resource")
            if body["resourceType"] == "OperationOutcome":
                return FetchOutcome(collected, error="FHIR server answered with an OperationOutcome")
            if body["resourceType"] != "Bundle":
                return FetchOutcome([body])
            collected.extend(bundle_resources(body))
            next_url = next_link(body)
            if next_url is None:
                return FetchOutcome(collected)
            if not next_url.startswith(base):
                # Paging must stay on the server we were given; anything else is ignored rather than followed.
                return FetchOutcome(collected, error="FHIR server's next-page link points to another server")
            url = next_url
        # The queries sort newest first, so the pages past the cap hold only the oldest results.
        log.info("stopped paging after %d pages", self.max_pages)
        return FetchOutcome(collected)


def next_link(bundle: dict[str, Any]) -> str | None:
    for link in bundle.get("link") or []:
        if isinstance(link, dict) and link.get("relation") == "next" and isinstance(link.get("url"), str):
            return link["url"]
    return None
