"""Development-only card preview page: pick a scenario (or paste a request), run it, see the cards
as an EHR shows them.

Registered only when BONECDS_AUTH is "dev" or "off", never "on". `GET /preview` is one self-
contained HTML page (inline CSS and JS, no external resources); `/preview/scenarios` lists the
fixture scenarios and `/preview/scenarios/<name>` gives a scenario's full CDS Hooks request
with its dates moved onto the service clock's day (the cards the scenario is written for). In dev
mode `/preview/token` mints a short-lived JWT with the local dev key so the page can call the
(authenticated) CDS endpoints.
"""

from __future__ import annotations

import logging
from importlib import resources
from typing import Any

import orjson
from flask import Blueprint, Flask, Response, abort, current_app, request

from service.dev_keys import DEV_ISSUER, load_or_create_dev_key, mint_token

bp = Blueprint("preview", __name__)
log = logging.getLogger("bonecds.preview")
MODES = ("dev", "off")


def register_if_enabled(app: Flask) -> None:
    """Adds the preview page in development modes only (auth "dev" or "off")."""
    if app.extensions["bonecds"].settings.auth in MODES:
        app.register_blueprint(bp)
        log.warning(
            "card preview page /preview is ON (BONECDS_AUTH=%s): development only",
            app.extensions["bonecds"].settings.auth,
        )


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status=status, mimetype="application/json")


def _scenarios() -> dict[str, Any]:
    # test fixtures: imported only when the page is used
    from service.dev.scenario_requests import (
        scenarios as all_scenarios,
    )

    return all_scenarios()


@bp.get("/preview")
def page() -> Response:
    response = Response(
        PAGE.replace("__AUTH__", current_app.extensions["bonecds"].settings.auth),
        mimetype="text/html",
    )
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; script-src 'unsafe-inline'; "
        "style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:"
    )
    return response


@bp.get("/preview/scenarios")
def scenarios() -> Response:
    return _json(
        [
            {"name": s.name, "hook": s.hook, "service": s.service_id, "description": s.description}
            for s in _scenarios().values()
        ]
    )


@bp.get("/preview/scenarios/<name>")
def scenario_request_json(name: str) -> Response:
    """A scenario's request with its dates moved so the fixtures' anchor day is the service clock's
    day (BONECDS_NOW's, or today): the page shows the cards the scenario is written for."""
    from service.dev.scenario_requests import clock_day, scenario_request

    if name not in _scenarios():
        abort(404)
    day = clock_day(current_app.extensions["bonecds"].clock.now())
    service_id, body = scenario_request(name, day)
    return _json({"service": service_id, "request": body, "dated": day.isoformat()})


@bp.get("/preview/token")
def token() -> Response:
    settings = current_app.extensions["bonecds"].settings
    if settings.auth != "dev":
        abort(404)
    aud = request.args.get("aud", "")
    if not aud.startswith("/cds-services"):
        return _json({"error": "aud must be a /cds-services path"}, 400)
    base = settings.public_base_url or request.host_url.rstrip("/")
    key = load_or_create_dev_key(settings.dev_key_path)
    return _json(
        {"token": mint_token(key.private_jwk, DEV_ISSUER, base + aud, lifetime_seconds=120)}
    )


# The page (inline CSS and JS) is a static file shipped with the package; "__AUTH__" in it is
# replaced by the auth mode when served.
PAGE = resources.files("service.dev").joinpath("preview.html").read_text(encoding="utf-8")
