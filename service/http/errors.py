"""Error answers: every non-2xx response carries a FHIR OperationOutcome saying what was wrong."""

from __future__ import annotations

import orjson
from flask import Response

from service.outcomes import operation_outcome


def error_response(status: int, diagnostics: str | None, expression: str | None = None) -> Response:
    return Response(
        orjson.dumps(operation_outcome(status, diagnostics, expression)),
        status=status,
        mimetype="application/json",
    )
