"""`bonecds serve` and its workers: /readyz answers 503 until every worker listens (each opens its
own socket as it boots); a keep-alive connection is closed after BONECDS_REQUESTS_PER_CONNECTION
requests and when its call was shed (503, the worker at its limit of FHIR reads); a client's new
connections land on both workers, so connections bunched on one worker do not stay there."""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import orjson

from fixtures.prefetch import hook_request, transaction_resources
from fixtures.scenarios import scenario
from service import create_app
from service.config import Settings
from service.serving import ListeningWorkers
from tests.http.test_served_logs_and_metrics import served_env
from tests.support.fhir_server.faulty import FaultyFhirServer
from tests.support.gunicorn import gunicorn

SIGN = "/cds-services/bonecds-order-sign"


def serving_process(connection: http.client.HTTPConnection) -> int:
    """The pid of the process holding the server's end of `connection` (Linux /proc)."""
    assert connection.sock is not None
    client_port = connection.sock.getsockname()[1]
    server_port = connection.sock.getpeername()[1]
    inode = None
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            remote_port = int(fields[2].rsplit(":", 1)[1], 16)
            if (local_port, remote_port) == (server_port, client_port):
                inode = fields[9]
    assert inode not in (None, "0"), "the server's end of the connection was not found"
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            handles = os.listdir(f"/proc/{pid}/fd")
            if any(os.readlink(f"/proc/{pid}/fd/{fd}") == f"socket:[{inode}]" for fd in handles):
                return int(pid)
        except OSError:  # a process that ended, or one we may not look into
            continue
    raise AssertionError("no process holds the server's end of the connection")


def requests_until_closed(
    connection: http.client.HTTPConnection, limit: int, on_first: Callable[[], None] = lambda: None
) -> int:
    """Requests answered on one connection until the service says `Connection: close`;
    `on_first` runs once the first is answered (the connection is then held by a worker)."""
    for count in range(1, limit + 1):
        connection.request("GET", "/cds-services")
        answer = connection.getresponse()
        answer.read()
        assert answer.status == 200
        if count == 1:
            on_first()
        if answer.getheader("Connection", "").lower() == "close":
            assert answer.will_close
            return count
    return limit + 1


def test_a_connection_is_closed_after_its_requests_and_new_ones_reach_both_workers(tmp_path):
    env = served_env(tmp_path, BONECDS_REQUESTS_PER_CONNECTION="3")
    with gunicorn(env, tmp_path / "service.log") as base:
        host, port = base.removeprefix("http://").split(":")
        workers = set()
        for _ in range(24):  # all on one worker by chance: 1 in 2**23
            connection = http.client.HTTPConnection(host, int(port), timeout=5)
            on_first = lambda: workers.add(serving_process(connection))  # noqa: B023, E731
            assert requests_until_closed(connection, 10, on_first) == 3
            assert connection.sock is None  # http.client let go of it, as the answer said
    assert len(workers) == 2, workers


def test_without_the_setting_a_connection_serves_many_requests(tmp_path):
    with gunicorn(served_env(tmp_path), tmp_path / "service.log") as base:
        host, port = base.removeprefix("http://").split(":")
        connection = http.client.HTTPConnection(host, int(port), timeout=5)
        assert requests_until_closed(connection, 200) == 201  # the default closes at 1000
        connection.close()


def test_a_setting_that_is_not_a_positive_number_is_refused():
    for value in ("0", "-5", "many"):
        result = subprocess.run(
            [sys.executable, "-m", "service.cli", "serve", "--requests-per-connection", value],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 2
        assert "positive whole number" in result.stderr, result.stderr


def test_readiness_waits_until_every_worker_listens(tmp_path):
    app = create_app(Settings(database_url=f"sqlite:///{tmp_path}/ready.db", auth="off"))
    listening = ListeningWorkers(2)
    app.extensions["bonecds"].workers = listening
    client = app.test_client()
    listening.add()  # the first worker booted; the second has no socket yet
    starting = client.get("/readyz")
    assert starting.status_code == 503
    assert starting.get_json() == {"status": "starting", "workers": "1 of 2 listening"}
    listening.add()
    ready = client.get("/readyz").get_json()
    assert (ready["status"], ready["workers"]) == ("ready", "2 of 2 listening")
    listening.remove()  # one exited: until its replacement listens, the service is not ready
    assert client.get("/readyz").status_code == 503
    assert client.get("/healthz").status_code == 200  # alive all along


def worker_pids(master: int) -> set[int]:
    children = f"/proc/{master}/task/{master}/children"
    return {int(pid) for pid in open(children).read().split()}


def test_a_replaced_worker_counts_once_and_readiness_comes_back(tmp_path):
    log_path = tmp_path / "service.log"
    with gunicorn(served_env(tmp_path), log_path) as base:  # yields once /readyz answers 200
        deadline = time.monotonic() + 10
        assert httpx.get(f"{base}/readyz").json()["workers"] == "2 of 2 listening"
        master = serving_master(base)
        before = worker_pids(master)
        assert len(before) == 2
        os.kill(min(before), signal.SIGKILL)
        while len(worker_pids(master) - before) < 1:  # gunicorn starts a replacement
            assert time.monotonic() < deadline + 10, "no replacement worker"
            time.sleep(0.05)
        while (ready := httpx.get(f"{base}/readyz")).status_code != 200:
            assert time.monotonic() < deadline + 20, ready.text
            time.sleep(0.05)
        # the exited worker was taken off and its replacement counted: not 1, not 3
        assert (ready.json()["status"], ready.json()["workers"]) == ("ready", "2 of 2 listening")


def serving_master(base: str) -> int:
    """The gunicorn master of the service at `base`: the parent of the worker that answers."""
    host, port = base.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=5)
    holder: list[int] = []
    requests_until_closed(connection, 1, lambda: holder.append(serving_process(connection)))
    connection.close()
    stat = open(f"/proc/{holder[0]}/stat").read()
    return int(stat.rsplit(")", 1)[1].split()[1])


def test_a_shed_call_closes_its_connection_and_an_answered_one_keeps_it(tmp_path):
    """One FHIR call at a time per worker and slow reads: of 6 calls at once on 6 connections, the
    ones a worker cannot take are answered 503 with `Connection: close`, so the client's next try
    may reach the other worker; the answered calls keep their connections."""
    chosen = scenario("metastatic-za-prepared")
    resources = transaction_resources(chosen.patient.transaction())
    with FaultyFhirServer(resources, hang_seconds=5.0) as fhir:
        fhir.slow_seconds = 2.0
        fhir.reset({"*": "slow", "Patient": "ok"})
        env = served_env(
            tmp_path,
            BONECDS_FHIR_ALLOWLIST=fhir.base_url,
            BONECDS_FHIR_MAX_CONCURRENT_CALLS="1",
            BONECDS_FHIR_BREAKER_FAILURES="10000",
        )
        service = type("S", (), {"hook": "order-sign"})()
        body = hook_request(
            service,
            chosen.patient_id,
            chosen.draft_orders,
            fhir_server=fhir.base_url,
            token="local-test-token",
        )
        payload = orjson.dumps(body)
        with gunicorn(env, tmp_path / "service.log") as base:
            host, port = base.removeprefix("http://").split(":")

            def sign(_: int) -> tuple[int, str]:
                connection = http.client.HTTPConnection(host, int(port), timeout=15)
                connection.request(
                    "POST", SIGN, body=payload, headers={"Content-Type": "application/json"}
                )
                answer = connection.getresponse()
                answer.read()
                connection.close()
                return answer.status, answer.getheader("Connection", "")

            with ThreadPoolExecutor(6) as pool:
                answers = list(pool.map(sign, range(6)))
    statuses = sorted(status for status, _ in answers)
    assert statuses.count(503) >= 2 and 503 in statuses and statuses[0] == 200, answers
    assert {connection for status, connection in answers if status == 503} == {"close"}, answers
    assert {connection for status, connection in answers if status == 200} == {"keep-alive"}
