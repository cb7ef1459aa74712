"""`bonecds serve` as deployed (gunicorn, 2 workers): /metrics counts both workers' answers and
starts from zero at every start; in JSON mode every line on stderr, gunicorn's included, is one
JSON object."""

from __future__ import annotations

import json
import os

import httpx

from fixtures.builder import ANCHOR_INSTANT
from tests.http.test_metrics import sample
from tests.support.gunicorn import gunicorn


def served_env(tmp_path, **extra: str) -> dict[str, str]:
    env = {
        "BONECDS_NOW": ANCHOR_INSTANT.isoformat(),
        "DATABASE_URL": f"sqlite:///{tmp_path}/served.db",
        "BONECDS_AUTH": "off",
        "BONECDS_LOG_FORMAT": "json",
        **extra,
    }
    # the test process's own setting must not leak into the served one
    os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
    return env


def fresh_requests(base: str, count: int) -> None:
    for _ in range(count):
        with httpx.Client() as http:  # a new connection each: gunicorn spreads them over workers
            assert http.get(f"{base}/cds-services").status_code == 200


def test_metrics_add_up_both_workers_and_restart_from_zero(tmp_path):
    metrics_dir = tmp_path / "metrics"
    env = served_env(tmp_path, PROMETHEUS_MULTIPROC_DIR=str(metrics_dir))
    for _run in range(2):  # the second start must not inherit the first one's counters
        with gunicorn(env, tmp_path / "service.log") as base:
            fresh_requests(base, 24)
            text = httpx.get(f"{base}/metrics").text
        assert sample(text, "bonecds_http_status_total", code="200") == 24 + 1  # + the probe
        assert sample(text, "bonecds_http_responses_total", status_class="2xx") == 24 + 1
        assert sample(text, "bonecds_build_info") == 1
        assert "bonecds_http_requests_in_flight" in text


def test_json_mode_writes_only_json_lines_gunicorns_included(tmp_path):
    log_path = tmp_path / "service.log"
    with gunicorn(served_env(tmp_path), log_path) as base:
        fresh_requests(base, 3)
        httpx.get(f"{base}/no-such-page")
    lines = [line for line in log_path.read_text().splitlines() if line.strip()]
    parsed = [json.loads(line) for line in lines]  # raises on any plain-text line
    loggers = {line["logger"] for line in parsed}
    assert "gunicorn.error" in loggers, loggers  # "Starting gunicorn", "Booting worker", ...
    missing = [line for line in parsed if line.get("status") == 404]
    assert len(missing) == 1 and missing[0]["path"] == "(no such route)"
    assert missing[0]["requestId"]
