"""Per request: the X-Request-ID (accepted or made, always echoed), one log line for every answered
request, responses by status code and requests in flight."""

from __future__ import annotations

import logging
import re
import time
import uuid
from contextvars import Token
from typing import Any

from flask import Flask, Response, current_app, g, request

from service.jsonlog import HOOK_INSTANCE, REQUEST_ID

log = logging.getLogger("bonecds.http")

# A client's request id is echoed and logged only when it is a plain token: no spaces, no line
# breaks, nothing long enough to smuggle a record into the log. Anything else is replaced.
CLIENT_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:@/+=-]{1,128}$")
# Probes and scrapes answer every few seconds: their 2xx lines would drown the calls.
QUIET_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


def install(app: Flask, metrics: Any) -> None:
    @app.before_request
    def start_request() -> None:
        offered = request.headers.get("X-Request-ID", "")
        request_id = offered if CLIENT_REQUEST_ID.match(offered) else uuid.uuid4().hex
        g.request_id = request_id
        g.request_started = time.perf_counter()
        g.context_tokens = (REQUEST_ID.set(request_id), HOOK_INSTANCE.set(None))
        metrics.in_flight.inc()
        g.counted_in_flight = True

    @app.after_request
    def finish_request(response: Response) -> Response:
        response.headers["X-Request-ID"] = g.get("request_id") or uuid.uuid4().hex
        if request.path != "/metrics":
            metrics.status_codes.labels(str(response.status_code)).inc()
        if not g.get("call_logged"):
            _log_line(response.status_code)
        return response

    @app.teardown_request
    def end_request(_error: BaseException | None) -> None:
        if g.pop("counted_in_flight", False):
            metrics.in_flight.dec()
        tokens: tuple[Token, Token] | None = g.pop("context_tokens", None)
        if tokens is not None:
            REQUEST_ID.reset(tokens[0])
            HOOK_INSTANCE.reset(tokens[1])


def _log_line(status: int) -> None:
    """method, route, status and time; the path only when it is one of the service's routes (an
    unmatched path is the client's text)."""
    started = g.get("request_started")
    ms = round((time.perf_counter() - started) * 1000, 1) if started is not None else None
    path = _route_path()
    level = logging.DEBUG if path in QUIET_PATHS and status < 400 else _level(status)
    # why it was refused, in words the service chose (an auth reason, an error's field path),
    # never the client's values
    why = g.get("refusal")
    log.log(
        level,
        "%s %s status=%d ms=%s%s",
        request.method,
        path,
        status,
        ms,
        f" {why}" if why else "",
        extra={"method": request.method, "path": path, "status": status, "ms": ms},
    )


def _route_path() -> str:
    rule = request.url_rule
    if rule is None:
        return "(no such route)"
    service_id = (request.view_args or {}).get("service_id")
    if service_id is None:
        return request.path
    # a service id the service offers is vocabulary; any other is the client's text
    return request.path if service_id in current_app.extensions["bonecds"].services else rule.rule


def _level(status: int) -> int:
    # 503 is load shed by design (a worker at its limit of FHIR calls): a capacity signal, counted
    # by status in the metrics, not a fault to page someone for
    if status >= 500 and status != 503:
        return logging.ERROR
    if status >= 400:
        return logging.WARNING
    return logging.INFO
