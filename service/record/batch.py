"""FHIR `batch` reads: whether a server takes batch Bundles (its CapabilityStatement, cached per
worker), one call's queries sent as one batch Bundle, and each entry mapped back to its query."""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol
from urllib.parse import urlsplit

import orjson

from hooks.facts.fetch_failure import FetchFailure, FetchReason
from hooks.fhir_read import as_list
from service.record.fetch_outcome import FetchOutcome, status_failure

log = logging.getLogger(__name__)

# A CapabilityStatement's answer holds this long (servers change it on upgrades, not per call).
CAPABILITY_SECONDS = 3600.0
# A /metadata that fails or says something odd, or a batch that failed: GETs for a while, then ask
# again (a short outage must not cost the batch for an hour).
UNKNOWN_SECONDS = 60.0
# A server that refused a batch it advertised (4xx, 405, 501): it will refuse again.
REFUSED_SECONDS = 600.0
MAX_SERVERS = 64  # FHIR servers remembered per worker (the allowlist, or the clients' servers)
# Shares of the call's remaining budget: what a slow /metadata or batch may take, so the parallel
# GETs that follow a failure still have time to read the record.
METADATA_SHARE = 0.25
BATCH_SHARE = 0.5

ENTRY_STATUS = re.compile(r"\s*(\d{3})\b")


class Send(Protocol):
    """One request within the call's deadline, the size cap and the SSRF rules: the parsed FHIR
    resource, or why there is none."""

    def __call__(
        self, method: str, url: str, content: bytes | None, deadline: float, timeout: float
    ) -> dict | FetchOutcome: ...


def server_key(base_url: str) -> str:
    """One FHIR server: scheme, host and port, and base path (two bases on one host may differ)."""
    parts = urlsplit(base_url)
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}{parts.path.rstrip('/')}"


def says_batch(capability: Any) -> bool:
    """The CapabilityStatement lists the system-level `batch` interaction for a server role."""
    if not isinstance(capability, dict) or capability.get("resourceType") != "CapabilityStatement":
        return False
    for rest in as_list(capability.get("rest")):
        if not isinstance(rest, dict) or rest.get("mode", "server") != "server":
            continue
        for interaction in as_list(rest.get("interaction")):
            if isinstance(interaction, dict) and interaction.get("code") == "batch":
                return True
    return False


def batch_bundle(base_url: str, queries: Mapping[str, str]) -> bytes:
    """The batch Bundle of GETs, one entry per query in its order (URLs relative to the base)."""
    base = base_url.rstrip("/") + "/"
    return orjson.dumps(
        {
            "resourceType": "Bundle",
            "type": "batch",
            "entry": [
                {
                    "request": {
                        "method": "GET",
                        "url": query[len(base) :] if query.startswith(base) else query.lstrip("/"),
                    }
                }
                for query in queries.values()
            ],
        }
    )


def first_pages(answer: Any, keys: list[str]) -> dict[str, dict | FetchOutcome] | None:
    """Each query's first page from a batch-response (a resource, as a GET would have given it, or
    why there is none); None when the answer is not a batch-response with one entry per query."""
    if (
        not isinstance(answer, dict)
        or answer.get("resourceType") != "Bundle"
        or answer.get("type") != "batch-response"
    ):
        return None
    entries = answer.get("entry")
    if not isinstance(entries, list) or len(entries) != len(keys):
        return None
    return {key: _entry_page(entry) for key, entry in zip(keys, entries, strict=True)}


def _entry_page(entry: Any) -> dict | FetchOutcome:
    response = entry.get("response") if isinstance(entry, dict) else None
    status = response.get("status") if isinstance(response, dict) else None
    matched = ENTRY_STATUS.match(status) if isinstance(status, str) else None
    if matched is None:
        return FetchOutcome(
            error=FetchFailure(
                FetchReason.NOT_FHIR, "FHIR server's batch answer has an entry without a status"
            )
        )
    code = int(matched.group(1))
    if not 200 <= code < 300:
        # an OperationOutcome in response.outcome says why; the status says it on the card, as a
        # GET's does
        return status_failure(code)
    resource = entry.get("resource")
    if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
        return FetchOutcome(
            error=FetchFailure(
                FetchReason.NOT_FHIR, "FHIR server sent something that is not a FHIR resource"
            )
        )
    return resource


class BatchReader:
    """Per worker: which FHIR servers take batch Bundles, and the batch read of one call's queries.

    A server is asked its CapabilityStatement (`GET {base}/metadata`) once an hour; a failing or odd
    answer, or a failed batch, means parallel GETs for a minute, a refused batch for ten.
    """

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._known: dict[str, tuple[bool, float]] = {}  # server -> (batch, until)

    def known(self, key: str) -> bool | None:
        """Whether the server takes batches, if known and not expired."""
        with self._lock:
            known = self._known.get(key)
            if known is None or known[1] <= self._monotonic():
                return None
            return known[0]

    def remember(self, key: str, batch: bool, seconds: float) -> None:
        with self._lock:
            self._known.pop(key, None)
            if len(self._known) >= MAX_SERVERS:
                del self._known[next(iter(self._known))]  # the oldest answer goes
            self._known[key] = (batch, self._monotonic() + seconds)

    def supports_batch(self, send: Send, base_url: str, deadline: float) -> bool:
        """From the cache, or from the server's /metadata (within the call's budget; then
        cached)."""
        key = server_key(base_url)
        batch = self.known(key)
        if batch is not None:
            return batch
        remaining = deadline - self._monotonic()
        answer = send(
            "GET", base_url.rstrip("/") + "/metadata", None, deadline, remaining * METADATA_SHARE
        )
        batch = says_batch(answer)
        understood = isinstance(answer, dict) and answer["resourceType"] == "CapabilityStatement"
        if isinstance(answer, FetchOutcome) and answer.status in (401, 403):
            return False  # this call's token was refused: not an answer about the server
        self.remember(key, batch, CAPABILITY_SECONDS if understood else UNKNOWN_SECONDS)
        if not understood:
            log.info("FHIR server's /metadata gave no CapabilityStatement: parallel GETs for now")
        return batch

    def read(
        self, send: Send, base_url: str, queries: Mapping[str, str], deadline: float
    ) -> tuple[dict[str, dict | FetchOutcome] | None, str]:
        """Each query's first page from one batch, and how the call reads: "batch", "parallel" (the
        server takes no batch; pages None) or "fallback" (the batch failed: pages None, read them
        with GETs)."""
        if len(queries) < 2 or not self.supports_batch(send, base_url, deadline):
            return None, "parallel"
        remaining = deadline - self._monotonic()
        bundle = batch_bundle(base_url, queries)
        answer = send("POST", base_url.rstrip("/"), bundle, deadline, remaining * BATCH_SHARE)
        pages = first_pages(answer, list(queries))
        if pages is not None:
            return pages, "batch"
        failure = answer if isinstance(answer, FetchOutcome) else None
        why = (
            str(failure.error)
            if failure and failure.error
            else "not a batch-response with one entry per query"
        )
        seconds = _forget_batch_for(failure)
        if seconds:
            self.remember(server_key(base_url), False, seconds)
        log.warning("FHIR batch read failed (%s): reading with parallel GETs", why)
        return None, "fallback"


def _forget_batch_for(failure: FetchOutcome | None) -> float:
    """How long a failed batch means GETs for every call to the server: long when it refused the
    batch, briefly when it failed (an outage, a hang: no call should wait for it again at once),
    not at all when the failure is this call's (its token, its patient's record size)."""
    if failure is None:
        return UNKNOWN_SECONDS  # an answer, but not a batch-response
    if failure.status in (400, 404, 405, 415, 501):
        return REFUSED_SECONDS
    if failure.status in (401, 403) or (
        failure.error is not None and failure.error.reason is FetchReason.TOO_LARGE
    ):
        return 0.0
    return UNKNOWN_SECONDS
