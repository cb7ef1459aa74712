"""CDS Hooks 2.0 endpoints: discovery, service calls and feedback, with CORS, validation and
OperationOutcome errors."""

from __future__ import annotations

import logging
import time
import traceback
from typing import Any

import orjson
from flask import Blueprint, Response, current_app, g, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed, RequestEntityTooLarge

from service.auth import AuthError
from service.calls import handle_call, validate_against
from service.http.errors import error_response
from service.outcomes import ApiError
from service.record.ssrf import fhir_server_refusal
from service.runtime import Runtime
from service.store.resilient import with_queue_fields

log = logging.getLogger("bonecds.protocol")
bp = Blueprint("cds_hooks", __name__)


def runtime() -> Runtime:
    return current_app.extensions["bonecds"]


def json_response(body: Any, status: int = 200) -> Response:
    return Response(
        body if isinstance(body, bytes) else orjson.dumps(body),
        status=status,
        mimetype="application/json",
    )


@bp.before_request
def authenticate_client() -> Response | None:
    """Every CDS Hooks call (discovery, service, feedback) carries a JWT from a trusted client;
    preflights do not."""
    g.cds_client = None
    authenticator = runtime().authenticator
    if authenticator is None or request.method == "OPTIONS":
        return None
    try:
        g.cds_client = authenticator.authenticate(
            request.headers.get("Authorization"), endpoint_url()
        )
    except AuthError as refused:
        # The reason and the claims to compare (audience, issuer, kid) go to the operator's log
        # line of this request, never the token itself; the client learns nothing beyond 401.
        g.refusal = f"authentication refused ({refused.reason}): {refused.describe()}"
        runtime().metrics.auth_refusals.labels(refused.reason).inc()
        response = error_response(401, "Authentication required.")
        response.headers["WWW-Authenticate"] = 'Bearer realm="cds-services"'
        return _with_cors(response)
    return None


def endpoint_url() -> str:
    """The URL a client must name in `aud`: the configured public base URL (behind a proxy), else
    this request's."""
    base = runtime().settings.public_base_url or request.host_url.rstrip("/")
    return base + request.path


def fhir_server_refusal_for_request(fhir_server: str) -> str | None:
    """FhirServer URLs allowed for the authenticated client, or (authentication off)
    BONECDS_FHIR_ALLOWLIST."""
    settings = runtime().settings
    client = g.get("cds_client")
    if client is not None:
        return fhir_server_refusal(fhir_server, client.fhir_servers, client.allow_loopback_fhir)
    return fhir_server_refusal(fhir_server, settings.fhir_allowlist, settings.auth == "dev")


@bp.after_request
def add_cors_headers(response: Response) -> Response:
    origins = runtime().settings.cors_origins
    origin = request.headers.get("Origin")
    if "*" in origins:
        response.headers["Access-Control-Allow-Origin"] = "*"
    elif origin and origin in origins:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Vary"] = "Origin"
    response.headers["Access-Control-Expose-Headers"] = "X-Request-ID"
    if request.method == "OPTIONS":
        # what may be sent, and for how long that holds: a browser reads these from the preflight's
        # answer only, so the calls themselves do not carry them
        response.headers["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
        response.headers["Access-Control-Allow-Headers"] = (
            "Authorization, Content-Type, X-Request-ID"
        )
        response.headers["Access-Control-Max-Age"] = "600"
    return response


@bp.app_errorhandler(ApiError)
def handle_api_error(error: ApiError) -> Response:
    if error.expression:
        g.refusal = f"at {error.expression}"
    response = error_response(error.status, error.diagnostics, error.expression)
    if error.retry_after_seconds is not None:
        response.headers["Retry-After"] = str(error.retry_after_seconds)
    if error.status == 503:
        # shed: this worker is at its limit, and a keep-alive client would come straight back to it
        runtime().close_client_connection()
    return _with_cors(response)


@bp.app_errorhandler(HTTPException)
def handle_http_error(error: HTTPException) -> Response:
    status = error.code or 500
    messages = {
        404: "No such endpoint or CDS service.",
        405: "Method not allowed on this endpoint.",
        413: f"Request body is larger than {runtime().settings.max_body_bytes} bytes.",
    }
    response = error_response(status, messages.get(status, error.name))
    if status == 405 and isinstance(error, MethodNotAllowed) and error.valid_methods:
        response.headers["Allow"] = ", ".join(error.valid_methods)
    return _with_cors(response)


@bp.app_errorhandler(Exception)
def handle_unexpected(error: Exception) -> Response:
    # Exception text can quote request values, so log only the type and where it was raised.
    where = traceback.extract_tb(error.__traceback__)[-1] if error.__traceback__ else None
    log.error(
        "unhandled %s in %s %s at %s",
        type(error).__name__,
        request.method,
        request.path,
        f"{where.filename}:{where.lineno}" if where else "?",
    )
    return _with_cors(error_response(500, "Internal error; it has been logged."))


def _with_cors(response: Response) -> Response:
    return add_cors_headers(response) if request.path.startswith("/cds-services") else response


def read_json_body() -> Any:
    """The request body as JSON, after content-type and size checks; the body itself is never
    logged."""
    content_type = (request.mimetype or "").lower()
    if content_type != "application/json" and not content_type.endswith("+json"):
        raise ApiError(415, "Content-Type must be application/json.")
    limit = runtime().settings.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise RequestEntityTooLarge()
    raw = request.get_data(cache=False)
    if len(raw) > limit:
        raise RequestEntityTooLarge()
    try:
        # orjson itself refuses nesting beyond 1024 with JSONDecodeError
        document = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise ApiError(400, "Request body is not valid JSON.") from None
    max_depth = runtime().settings.max_json_depth
    if _json_depth_exceeds(document, max_depth):
        raise ApiError(400, f"Request body is nested deeper than {max_depth} levels.")
    return document


def _json_depth_exceeds(document: Any, limit: int) -> bool:
    """True when arrays/objects nest deeper than `limit` (the top-level container is depth 1).

    Walks one level at a time over containers only, without recursion. Prefetch is left out: it is
    the bulk of a request, is only read field by field, never echoed or validated, and stays under
    orjson's own limit of 1024 levels; everything the service may copy into an answer or validate
    (context, drafts, feedback) is checked.
    """
    if document.__class__ is dict and document.get("prefetch").__class__ is dict:
        document = {key: value for key, value in document.items() if key != "prefetch"}
    level = [document] if document.__class__ in (dict, list) else []
    depth = 1
    while level:
        if depth > limit:
            return True
        deeper: list[Any] = []
        for value in level:
            children = value.values() if value.__class__ is dict else value
            deeper += [
                child for child in children if child.__class__ is dict or child.__class__ is list
            ]
        level = deeper
        depth += 1
    return False


def validate(schema: str, document: Any, prefix: str = "") -> None:
    validate_against(runtime(), schema, document, prefix)


@bp.route("/cds-services", methods=["GET", "OPTIONS"])
def discovery() -> Response:
    if request.method == "OPTIONS":
        return Response(status=204)
    return json_response(runtime().discovery_body)


@bp.route("/cds-services/<service_id>", methods=["POST", "OPTIONS"])
def call_service(service_id: str) -> Response:
    rt = runtime()
    service = rt.services.get(service_id)
    if service is None:
        raise ApiError(
            404, f"No CDS service with id {service_id!r} is offered here; see GET /cds-services."
        )
    if request.method == "OPTIONS":
        return Response(status=204)
    started = time.perf_counter()
    body = read_json_body()
    result = handle_call(rt, service, body, fhir_server_refusal_for_request, started=started)
    g.call_logged = True  # handle_call wrote the call's line (hook, rules, ms, request id)
    return json_response(result.answer)


@bp.route("/cds-services/<service_id>/feedback", methods=["POST", "OPTIONS"])
def feedback(service_id: str) -> Response:
    rt = runtime()
    if service_id not in rt.services:
        raise ApiError(404, f"No CDS service with id {service_id!r} is offered here.")
    if request.method == "OPTIONS":
        return Response(status=204)
    body = read_json_body()
    validate("feedback-request", body)
    receipt = rt.store.record_feedback(service_id, body["feedback"], rt.clock.now())
    rt.metrics.feedback_outcomes(receipt.outcomes)
    g.call_logged = True
    log.info(
        "feedback service=%s items=%d stored=%d duplicates=%d unknown_cards=%d",
        service_id,
        len(body["feedback"]),
        receipt.stored,
        receipt.duplicates,
        receipt.unknown_cards,
    )
    return json_response(with_queue_fields(receipt))
