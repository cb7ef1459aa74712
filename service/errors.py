"""Error answers: every non-2xx response carries a FHIR OperationOutcome saying what was wrong, without echoing input."""
from __future__ import annotations

from typing import Any

import orjson
from flask import Response

ISSUE_CODES = {400: "invalid", 401: "login", 404: "not-found", 405: "not-supported", 412: "not-found",
               413: "too-costly", 415: "not-supported", 500: "exception", 503: "transient"}


class ApiError(Exception):
    """Raised anywhere in request handling; rendered as an OperationOutcome with this status."""

    def __init__(self, status: int, diagnostics: str, expression: str | None = None) -> None:
        super().__init__(diagnostics)
        self.status = status
        self.diagnostics = diagnostics
        self.expression = expression


def operation_outcome(status: int, diagnostics: str | None, expression: str | None = None) -> dict[str, Any]:
    issue: dict[str, Any] = {"severity": "error" if status < 500 else "fatal", "code": ISSUE_CODES.get(status, "processing")}
    if diagnostics:
        issue["diagnostics"] = diagnostics
    if expression:
        issue["expression"] = [expression]
    return {"resourceType": "OperationOutcome", "issue": [issue]}


def error_response(status: int, diagnostics: str | None, expression: str | None = None) -> Response:
    return Response(orjson.dumps(operation_outcome(status, diagnostics, expression)), status=status,
                    mimetype="application/json")
