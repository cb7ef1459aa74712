"""Benchmark-only floor endpoint: decodes the request body as the service does and answers a tiny
JSON document.

It is registered only when BONECDS_BENCH_FLOOR=1 (set by scripts/bench.py), never in production. Its
latency under the same gunicorn server is the floor each CDS Hooks scenario is compared with: HTTP
parsing, Flask routing, reading and `orjson.loads` of the same body, and a small JSON answer, with
none of the validation, record gathering or rules.
"""

from __future__ import annotations

import logging
import os

import orjson
from flask import Blueprint, Flask, Response, request

ENV_FLAG = "BONECDS_BENCH_FLOOR"
bp = Blueprint("bench_floor", __name__)
log = logging.getLogger("bonecds.bench_floor")


def register_if_enabled(app: Flask) -> None:
    if os.environ.get(ENV_FLAG) == "1":
        app.register_blueprint(bp)
        log.warning(
            "benchmark floor endpoint /bench/floor is ON (%s=1): for scripts/bench.py only",
            ENV_FLAG,
        )


@bp.route("/bench/floor", methods=["GET", "POST"])
def floor() -> Response:
    raw = request.get_data(cache=False)
    size = 0
    if raw:
        document = orjson.loads(raw)  # the same decoder as service.protocol.read_json_body
        size = len(document) if isinstance(document, (dict, list)) else 1
    return Response(
        orjson.dumps({"ok": True, "bytes": len(raw), "keys": size}), mimetype="application/json"
    )
