"""Why a request cannot be answered (ApiError) and the FHIR OperationOutcome that says so, without
echoing input."""

from __future__ import annotations

from typing import Any

ISSUE_CODES = {
    400: "invalid",
    401: "login",
    404: "not-found",
    405: "not-supported",
    412: "not-found",
    413: "too-costly",
    415: "not-supported",
    500: "exception",
    503: "transient",
}


class ApiError(Exception):
    """Raised anywhere in request handling; answered as an OperationOutcome with this status."""

    def __init__(
        self,
        status: int,
        diagnostics: str,
        expression: str | None = None,
        retry_after_seconds: int | None = None,
    ) -> None:
        super().__init__(diagnostics)
        self.status = status
        self.diagnostics = diagnostics
        self.expression = expression
        # an overloaded service (503) says when to try again (the Retry-After header)
        self.retry_after_seconds = retry_after_seconds


def operation_outcome(
    status: int, diagnostics: str | None, expression: str | None = None
) -> dict[str, Any]:
    severity = "error" if status < 500 else "fatal"
    issue: dict[str, Any] = {"severity": severity, "code": ISSUE_CODES.get(status, "processing")}
    if diagnostics:
        issue["diagnostics"] = diagnostics
    if expression:
        issue["expression"] = [expression]
    return {"resourceType": "OperationOutcome", "issue": [issue]}
