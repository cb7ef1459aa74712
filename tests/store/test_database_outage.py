"""A real PostgreSQL stopped and restarted under load: hook calls keep their cards, replays are
still refused, nothing is answered 5xx, feedback is queued (never called stored) and written when
the database returns.

The service runs as users run it (`bonecds serve`, 2 workers, authentication on, PostgreSQL), on
loopback. Figures are printed (pytest -s shows them) and added to the terminal summary.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psycopg
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from fixtures.builder import ANCHOR_INSTANT
from fixtures.prefetch import scenario_request, transaction_resources
from fixtures.scenarios import scenario
from hooks.knowledge import load_knowledge
from hooks.services import build_services
from service.dev_keys import mint_token
from tests.support.pg_server import SKIP_VARIABLE, PostgresServer, pg_bin_dir
from tests.support.summary import add_summary_line

ROOT = Path(__file__).resolve().parents[2]
ISSUER = "https://ehr.outage.test/"
PUBLIC_BASE = "https://cds.example.org"
SIGN = "/cds-services/bonecds-order-sign"
FIGURES: dict[str, str] = {}


@pytest.fixture(scope="module")
def postgres():
    if os.environ.get(SKIP_VARIABLE, "").lower() == "skip":
        pytest.skip(f"{SKIP_VARIABLE}=skip")
    bin_dir = pg_bin_dir()
    if bin_dir is None:
        raise RuntimeError(
            "PostgreSQL not found: run `python3 scripts/dev.py test`, which installs it"
        )
    server = PostgresServer(bin_dir)
    url = server.start()
    try:
        yield server, url
    finally:
        server.stop()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def key():
    jwk = json.loads(ECAlgorithm.to_jwk(ec.generate_private_key(ec.SECP384R1())))
    jwk.update(kid="outage-1", alg="ES384", use="sig")
    return jwk


@pytest.fixture(scope="module")
def service(tmp_path_factory, postgres, key):
    _server, url = postgres
    work = tmp_path_factory.mktemp("outage")
    clients = work / "clients.json"
    clients.write_text(
        json.dumps(
            {
                "clients": [
                    {"iss": ISSUER, "jwks": {"keys": [{k: v for k, v in key.items() if k != "d"}]}}
                ]
            }
        )
    )
    port = free_port()
    env = {
        **os.environ,
        "BONECDS_AUTH": "on",
        "BONECDS_CLIENTS_FILE": str(clients),
        "DATABASE_URL": url,
        "BONECDS_PUBLIC_BASE_URL": PUBLIC_BASE,
        "BONECDS_NOW": ANCHOR_INSTANT.isoformat(),
    }
    log = open(work / "service.log", "wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "service.cli", "serve", "--port", str(port), "--workers", "2"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    for _ in range(150):
        try:
            if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    try:
        yield base, work / "service.log"
    finally:
        process.terminate()
        process.wait(timeout=20)
        log.close()


def rows(url: str, table: str) -> int:
    with psycopg.connect(url, connect_timeout=3) as connection:
        # the table names are this module's own constants
        return connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # noqa: S608


def test_postgresql_outage_under_load(postgres, service, key):
    server, url = postgres
    base, log_path = service
    scn = scenario("calcium-low")
    svc = {s.id: s for s in build_services(load_knowledge())}[scn.service_id]
    body = scenario_request(svc, scn, resources=transaction_resources(scn.patient.transaction()))
    statuses: Counter = Counter()
    feedback_sent = 0

    def token(path: str) -> str:
        return mint_token(key, ISSUER, PUBLIC_BASE + path)

    def sign(client: httpx.Client) -> list[str]:
        response = client.post(
            base + SIGN, json=body, headers={"Authorization": f"Bearer {token(SIGN)}"}, timeout=10
        )
        statuses[response.status_code] += 1
        assert response.status_code == 200, response.text
        return sorted(c["source"]["topic"]["code"] for c in response.json()["cards"])

    def feedback(client: httpx.Client, card: str) -> dict:
        nonlocal feedback_sent
        path = f"{SIGN}/feedback"
        item = {
            "card": card,
            "outcome": "overridden",
            "outcomeTimestamp": "2026-10-15T10:00:00Z",
            "overrideReason": {
                "reason": {"code": "not-applicable", "system": "https://example.org/reasons"}
            },
        }
        response = client.post(
            base + path,
            json={"feedback": [item]},
            headers={"Authorization": f"Bearer {token(path)}"},
            timeout=10,
        )
        statuses[response.status_code] += 1
        feedback_sent += 1
        assert response.status_code == 200, response.text
        return response.json()

    def load(seconds: float) -> list[list[str]]:
        deadline = time.monotonic() + seconds
        with httpx.Client() as client:
            seen = []
            while time.monotonic() < deadline:
                seen.append(sign(client))
                feedback(client, str(uuid.uuid4()))
                discovery = client.get(
                    base + "/cds-services",
                    headers={"Authorization": f"Bearer {token('/cds-services')}"},
                )
                statuses[discovery.status_code] += 1
            return seen

    with httpx.Client() as client:
        before = sign(client)
    assert before == ["calcium-low"]
    with ThreadPoolExecutor(4) as pool:
        up = [f.result() for f in [pool.submit(load, 3) for _ in range(4)]]
    server.halt()
    outage_started = time.monotonic()
    try:
        with ThreadPoolExecutor(4) as pool:
            futures = [pool.submit(load, 4) for _ in range(4)]
            # meanwhile: health stays quick, readiness says degraded, a replay on the same
            # connection is refused
            with httpx.Client() as client:
                started = time.monotonic()
                health = client.get(base + "/healthz", timeout=5)
                health_ms = (time.monotonic() - started) * 1000
                ready = client.get(base + "/readyz", timeout=5).json()
                replayed = token(SIGN)
                first = client.post(
                    base + SIGN,
                    json=body,
                    headers={"Authorization": f"Bearer {replayed}"},
                    timeout=10,
                )
                second = client.post(
                    base + SIGN,
                    json=body,
                    headers={"Authorization": f"Bearer {replayed}"},
                    timeout=10,
                )
                queued_answer = feedback(client, str(uuid.uuid4()))
            down = [f.result() for f in futures]
    finally:
        server.resume()
    outage_seconds = time.monotonic() - outage_started
    assert health.status_code == 200 and health_ms < 250
    assert ready["status"] == "degraded" and ready["database"].startswith("unreachable")
    assert (
        first.status_code == 200
        and sorted(c["source"]["topic"]["code"] for c in first.json()["cards"]) == before
    )
    assert second.status_code == 401  # the replay, refused from the process' memory
    # never answered as stored
    assert queued_answer["stored"] == 0 and queued_answer.get("queued") == 1
    assert all(cards == before for phase in (up, down) for run in phase for cards in run)
    # when the database is back, the queued feedback and ledger rows are written
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if rows(url, "feedback") >= feedback_sent:
                break
        except psycopg.OperationalError:
            pass
        time.sleep(0.5)
    stored = rows(url, "feedback")
    with httpx.Client() as client:
        after = client.get(base + "/readyz", timeout=5).json()
    five_xx = sum(n for status, n in statuses.items() if status >= 500)
    calls_down = sum(len(run) for run in down)
    FIGURES["outage"] = (
        f"database outage: {sum(statuses.values())} answers, 5xx {five_xx}, {calls_down}"
        f" order-signs during {outage_seconds:.1f} s of outage all with their card, replay refused,"
        f" /healthz {health_ms:.0f} ms, feedback rows {stored}/{feedback_sent} after recovery"
    )
    add_summary_line("database-outage", lambda: FIGURES["outage"])
    print(FIGURES["outage"])
    assert five_xx == 0
    assert stored == feedback_sent
    assert after["status"] == "ready" and after["queuedWrites"] == 0
    log_text = log_path.read_text()
    assert "database unreachable" in log_text and "reachable again" in log_text
    assert "Traceback" not in log_text
