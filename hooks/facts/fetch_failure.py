"""Why a FHIR read failed: a reason from a fixed set (the metrics label) and the sentence cards and
logs show."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class FetchReason(Enum):
    """The reason class of a failed FHIR read; its value is the `reason` label of
    bonecds_fhir_fetch_errors_total."""

    TIMEOUT = "timeout"  # no (complete) answer within the per-read timeout or the call's budget
    UNREACHABLE = "unreachable"
    HTTP_STATUS = "http_status"
    OPERATION_OUTCOME = "operation_outcome"
    NOT_JSON = "not_json"
    NOT_FHIR = "not_fhir"
    TOO_LARGE = "too_large"  # more pages or bytes than the service reads
    FOREIGN_LINK = "foreign_link"  # a next-page link to another server
    CIRCUIT_OPEN = "circuit_open"  # not read: the host is skipped after repeated timeouts
    BUSY = "busy"  # not read: too many hook calls of this worker reading FHIR at once
    PATIENT_FAILED = "patient_failed"  # not read: the call stopped when the Patient read failed
    OTHER = "other"


@dataclass(frozen=True)
class FetchFailure:
    """A failed read: `reason` for metrics and decisions (a timeout feeds the circuit breaker),
    `detail` for people ("FHIR server answered HTTP 401"); str() is the detail."""

    reason: FetchReason
    detail: str

    def __str__(self) -> str:
        return self.detail

    @property
    def timed_out(self) -> bool:
        return self.reason is FetchReason.TIMEOUT
