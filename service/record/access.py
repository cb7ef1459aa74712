"""How one call may read from the EHR's FHIR server (the SSRF guard's answer, the token), what it
gathered, and the one place its reads go through (one shared budget, metrics)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from service.record.fhir_client import FetchOutcome, FhirFetcher
from service.record.ssrf import parse_base_url

log = logging.getLogger("service.record.gather")


@dataclass
class PatientRecord:
    patient: dict | None
    resources: list[dict] = field(default_factory=list)
    unavailable: dict[str, str] = field(default_factory=dict)
    fetched: list[str] = field(default_factory=list)
    # fact groups of which only the EHR's first page of a paged prefetch was read, with why the rest
    # was not
    partial: dict[str, str] = field(default_factory=dict)


class FhirAccess:
    """Whether, and how, this call may read from the request's fhirServer: only a server the SSRF
    guard allows for the client, with the request's fhirAuthorization token.

    Worked out on first use (a call that reads nothing never asks).
    """

    def __init__(
        self, body: dict[str, Any], refusal: Callable[[str], str | None] = lambda _url: None
    ) -> None:
        given = body.get("fhirServer")
        self.given = given if isinstance(given, str) else None
        authorization = body.get("fhirAuthorization")
        if not isinstance(authorization, dict):
            authorization = {}
        token = authorization.get("access_token")
        self.token = token if isinstance(token, str) else None
        self._refusal = refusal

    @cached_property
    def refused(self) -> str | None:
        """Why the given fhirServer may not be called (None when it may, or when none was given)."""
        refused = self._refusal(self.given) if self.given else None
        if refused:
            log.warning("fhirServer refused: %s", refused)
        return refused

    @property
    def server(self) -> str | None:
        """The fhirServer base URL this call may read from, or None."""
        return None if self.refused or not self.given else self.given

    def why_not(self) -> str:
        """Why nothing can be read from a server ("the request gave no FHIR server ..." or the
        refusal)."""
        return self.refused or "the request gave no FHIR server to read it from"

    def on_server(self, url: str) -> bool:
        """`url` (absolute) lies on the allowed fhirServer (same scheme, host, port and base
        path)."""
        server = self.server
        base, target = (
            parse_base_url(server) if server else None,
            parse_base_url(url.split("?", 1)[0].split("#", 1)[0]),
        )
        return base is not None and target is not None and base.contains(target)


def fetch(
    fetcher: FhirFetcher, access: FhirAccess, queries: dict[str, str], metrics: Any
) -> dict[str, FetchOutcome]:
    server = access.server
    if server is None:  # callers read only when the request named an allowed fhirServer
        raise RuntimeError("no allowed fhirServer to read from")
    started = time.perf_counter()
    # without the Patient there is no answer but 412: do not wait for the rest when its read fails
    outcomes = fetcher.fetch_all(
        server,
        access.token,
        queries,
        **({"critical": "patient"} if "patient" in queries else {}),
    )
    if metrics is not None:
        metrics.fhir_fetch(
            time.perf_counter() - started, [o.error for o in outcomes.values() if o.error]
        )
    return outcomes
