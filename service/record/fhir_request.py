"""One FHIR request within the call's deadline, the per-request timeout and the size cap: the parsed
FHIR resource, or why there is none (the sentence the cards show)."""

from __future__ import annotations

import logging
import re
import time
from typing import Protocol

import orjson

from hooks.facts.fetch_failure import FetchFailure, FetchReason
from service.record.fetch_outcome import FetchOutcome, status_failure
from service.record.fhir_http import Answer, FhirTimedOut, FhirUnreachable, HostConnections

log = logging.getLogger("service.record.fhir_client")


class Limits(Protocol):
    """The fetcher's limits (FhirFetcher)."""

    timeout_seconds: float
    budget_seconds: float
    max_response_bytes: int


def fhir_headers(token: str | None) -> dict[str, str]:
    headers = {"Accept": "application/fhir+json, application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return headers


def over_budget(limits: Limits, what: str) -> FetchFailure:
    return FetchFailure(
        FetchReason.TIMEOUT, f"{what} within the {limits.budget_seconds:g} s budget"
    )


def request_json(
    limits: Limits,
    http: HostConnections,
    url: str,
    headers: dict[str, str],
    deadline: float,
    page: int = 0,
    *,
    method: str = "GET",
    content: bytes | None = None,
    timeout: float | None = None,
) -> dict | FetchOutcome:
    """One GET (or a batch POST) within the deadline, the timeout (the fetcher's, or a shorter one)
    and the size cap; the parsed FHIR resource, or why there is none."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        return FetchOutcome(error=over_budget(limits, "no answer"))
    started = time.monotonic()
    try:
        with http.stream(
            method,
            url,
            headers=headers,
            content=content,
            timeout=min(limits.timeout_seconds, remaining, timeout or remaining),
        ) as response:
            status = response.status_code
            if not 200 <= status < 300:
                return status_failure(status)
            media_type = response.header("Content-Type").split(";")[0].strip().lower()
            if media_type and "json" not in media_type:
                # server text goes on a card: keep it plain
                shown = re.sub(r"[^a-z0-9.+/-]", "", media_type)[:40]
                return FetchOutcome(
                    error=FetchFailure(
                        FetchReason.NOT_JSON,
                        f"FHIR server sent {shown or 'an unknown type'}, not FHIR JSON",
                    )
                )
            raw = _read_capped(limits, response, deadline)
            if isinstance(raw, FetchOutcome):
                return raw
    except FhirTimedOut:
        return FetchOutcome(error=FetchFailure(FetchReason.TIMEOUT, "FHIR server timed out"))
    except FhirUnreachable as error:
        return FetchOutcome(
            error=FetchFailure(FetchReason.UNREACHABLE, f"FHIR server unreachable ({error.kind})")
        )
    finally:
        log.debug("FHIR %s page %d took %.1f ms", method, page, (time.monotonic() - started) * 1000)
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return FetchOutcome(
            error=FetchFailure(FetchReason.NOT_JSON, "FHIR server sent a response that is not JSON")
        )
    if not isinstance(body, dict) or not isinstance(body.get("resourceType"), str):
        return FetchOutcome(
            error=FetchFailure(
                FetchReason.NOT_FHIR, "FHIR server sent something that is not a FHIR resource"
            )
        )
    return body


def _read_capped(limits: Limits, response: Answer, deadline: float) -> bytes | FetchOutcome:
    """The body, read in chunks: never more than max_response_bytes, never past the deadline (a
    trickling server)."""
    too_big = FetchOutcome(
        error=FetchFailure(
            FetchReason.TOO_LARGE,
            f"FHIR server's answer is larger than {limits.max_response_bytes // (1024 * 1024)} MiB",
        )
    )
    declared = response.header("Content-Length")
    if declared.isdigit() and int(declared) > limits.max_response_bytes:
        return too_big
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > limits.max_response_bytes:
            return too_big
        if time.monotonic() > deadline:
            return FetchOutcome(error=over_budget(limits, "no complete answer"))
        chunks.append(chunk)
    return b"".join(chunks)
