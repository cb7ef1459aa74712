"""Liveness and readiness endpoints for container orchestrators (no PHI, no authentication)."""

from __future__ import annotations

import orjson
from flask import Blueprint, Response, current_app

from service.version import software_version

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> Response:
    return Response(orjson.dumps({"status": "ok"}), mimetype="application/json")


@bp.get("/readyz")
def readyz() -> Response:
    """200 while this replica can answer hook calls; 503 until all its workers listen.

    A database outage does not take it out of the load balancer (the safety checks do not need the
    database; replay checks and the ledger degrade, see service/resilient_store.py): the answer says
    "degraded" with the database state, so monitoring sees it while clinicians keep their cards.
    """
    runtime = current_app.extensions["bonecds"]
    if runtime.workers is not None and not runtime.workers.all_listening():
        # Each worker opens its own socket as it boots, a tenth of a second after the one before:
        # a client that connected now would have every keep-alive connection on the first worker.
        body = {"status": "starting", "workers": runtime.workers.describe()}
        return Response(orjson.dumps(body), status=503, mimetype="application/json")
    status = (
        runtime.store.status() if hasattr(runtime.store, "status") else _plain_status(runtime.store)
    )
    body = {
        "version": software_version(),
        "status": "ready" if status["database"] == "ok" else "degraded",
        "knowledge": runtime.knowledge.version,
        **status,
    }
    if runtime.workers is not None:
        body["workers"] = runtime.workers.describe()
    return Response(orjson.dumps(body), mimetype="application/json")


def _plain_status(store) -> dict:
    try:
        store.check_ready()
        return {"database": "ok"}
    except Exception as error:
        return {"database": f"unreachable ({type(error).__name__})"}
