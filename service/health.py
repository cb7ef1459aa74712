"""Liveness and readiness endpoints for container orchestrators (no PHI, no authentication)."""
from __future__ import annotations

import orjson
from flask import Blueprint, Response, current_app

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> Response:
    return Response(orjson.dumps({"status": "ok"}), mimetype="application/json")


@bp.get("/readyz")
def readyz() -> Response:
    runtime = current_app.extensions["bonecds"]
    try:
        runtime.store.check_ready()
    except Exception as error:
        return Response(orjson.dumps({"status": "unavailable", "reason": f"feedback store: {type(error).__name__}"}),
                        status=503, mimetype="application/json")
    return Response(orjson.dumps({"status": "ready", "knowledge": runtime.knowledge.version}), mimetype="application/json")
