"""What one FHIR query produced: its resources, or why it failed (with the HTTP status, if any)."""

from __future__ import annotations

from dataclasses import dataclass, field

from hooks.facts.fetch_failure import FetchFailure, FetchReason


@dataclass
class FetchOutcome:
    """What one query produced: resources (possibly none), or why it failed.

    `found` is False for a missing read target; `status` is the HTTP status of a refused request
    (the batch reader tells a server refusing batches from one failing).
    """

    resources: list[dict] = field(default_factory=list)
    error: FetchFailure | None = None
    found: bool = True
    status: int | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def status_failure(status: int) -> FetchOutcome:
    """The outcome of a non-2xx answer, as a GET and a batch entry report it alike."""
    detail = f"FHIR server answered HTTP {status}"
    if 300 <= status < 400:
        detail += " (a redirect, not followed)"
    return FetchOutcome(
        error=FetchFailure(FetchReason.HTTP_STATUS, detail),
        found=status not in (404, 410),
        status=status,
    )
