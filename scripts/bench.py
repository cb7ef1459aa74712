#!/usr/bin/env python3
"""Latency and throughput benchmark of bonecds as it runs in production (`bonecds serve`, gunicorn,
2 workers, preload).

    make bench                       # full run (about 13 minutes)
    make bench BENCH_ARGS=--quick    # short runs (about 5 minutes)
    python3 scripts/bench.py [--quick] [--duration S] [--warmup S] [--soak-seconds S] [--no-jwt]

From a fresh clone it creates .venv and .venv-fhir (as scripts/dev.py does), installs `wrk` with
apt-get when it is missing (as root), and then, over loopback only:

- starts a local FHIR server (tests/support/fhir_server/harness.py) loaded with the benchmark
  patient, and times each prefetch query directly against it;
- starts the service with BONECDS_AUTH=off, BONECDS_NOW at the fixtures' anchor day, a throw-away
  SQLite database in var/bench/ and BONECDS_BENCH_FLOOR=1 (the floor endpoint /bench/floor of
  service/bench_floor.py), and measures the time from process start to the first successful
  order-sign answer;
- measures worker memory (VmRSS) after 5,000 and 10,000 order-sign requests;
- runs every scenario with wrk at concurrency 1 and 8 in turns with the floor endpoint with the same
  body (5 rounds of 2 s each, floor then scenario; 3 of 1 s with --quick) and reports the median of
  the rounds, so a slow spell of the machine falls on both and the ratios to the floor hold;
- runs a mixed soak at concurrency 16 and checks errors, stored feedback rows and memory;
- optionally (default on) runs the typical order-sign with JWT authentication on (pre-minted tokens,
  one per request).

It prints one table (with each worker's share of the CPU per row) and the extra figures, marks each
target of issue 18 (and the earlier ones still tracked) PASS or FAIL with its figure, and writes the
same to var/bench-results.json. Every process it starts is stopped on exit, errors and Ctrl-C
included.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import platform
import random
import re
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
APP_VENV = ROOT / ".venv"
WORKDIR = ROOT / "var" / "bench"
RESULTS = ROOT / "var" / "bench-results.json"
LUA = ROOT / "bench" / "bench.lua"
ANCHOR_NOW = "2026-10-15T10:00:00Z"
SIGN = "/cds-services/bonecds-order-sign"
FEEDBACK = "/cds-services/bonecds-order-sign/feedback"
FLOOR = "/bench/floor"


# --------------------------------------------------------------------------------------------------
# set-up


def bootstrap(argv: list[str]) -> None:
    """Outside the project's .venv: create the environments (scripts/dev.py), then run this script
    again inside .venv."""
    if Path(sys.prefix).resolve() == APP_VENV.resolve():
        return
    sys.path.insert(0, str(ROOT / "scripts"))
    import dev  # noqa: E402  (scripts/dev.py: the same set-up as `make run` and `make test`)

    dev.ensure_app_venv()
    dev.ensure_fhir_venv()
    python = str(APP_VENV / "bin" / "python")
    # replace this process with the same script under .venv's interpreter (fixed arguments)
    os.execv(python, [python, str(Path(__file__).resolve()), *argv])  # noqa: S606


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() != 0:
        sys.exit(
            "wrk is not installed; install it (Debian/Ubuntu: sudo apt-get install -y wrk) and run"
            " again"
        )
    print("installing wrk (apt-get) ...", flush=True)
    subprocess.run(["apt-get", "update", "-qq"], check=True)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "wrk"],
        check=True,
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
    )
    found = shutil.which("wrk")
    if not found:
        sys.exit("wrk could not be installed")
    return found


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def say(message: str) -> None:
    print(message, flush=True)


# --------------------------------------------------------------------------------------------------
# request bodies

LAB_PANELS = {  # kind -> (unit, typical value, spread, reference low, reference high)
    "creatinine": ("mg/dL", 0.82, 0.05, 0.5, 1.1),
    "calcium": ("mg/dL", 9.4, 0.2, 8.5, 10.5),
    "albumin": ("g/dL", 4.0, 0.15, 3.5, 5.0),
    "weight": ("kg", 68.0, 0.8, None, None),
}


def enrich_observation(resource: dict, serial: int) -> None:
    """Add what real EHR lab results carry (meta, identifier, issued, performer, interpretation,
    reference range), so the request size per observation is realistic; the service reads none of
    it."""
    effective = resource.get("effectiveDateTime")
    if resource.get("resourceType") != "Observation" or not effective:
        return
    issued = datetime.fromisoformat(effective.replace("Z", "+00:00")) + timedelta(
        hours=3, minutes=serial % 50
    )
    resource["meta"] = {
        "versionId": "1",
        "lastUpdated": issued.isoformat().replace("+00:00", "Z"),
        "source": "#lab-interface-hl7v2",
    }
    resource["identifier"] = [
        {
            "use": "official",
            "system": "urn:oid:2.16.840.1.113883.19.5.99.3",
            "value": f"LAB-{zlib.crc32(resource['id'].encode()):010d}",
        }
    ]
    resource["issued"] = issued.isoformat().replace("+00:00", "Z")
    resource["performer"] = [{"display": "Central Laboratory, University Hospital"}]
    quantity = resource.get("valueQuantity") or {}
    kind = next(
        (
            k
            for k, v in LAB_PANELS.items()
            if v[0] == quantity.get("unit")
            and v[3] is not None
            and resource["code"]["text"].lower().startswith(k)
        ),
        None,
    )
    if kind:
        unit, _, _, low, high = LAB_PANELS[kind]
        ucum = {"system": "http://unitsofmeasure.org", "code": unit}
        resource["referenceRange"] = [
            {
                "low": {"value": low, "unit": unit, **ucum},
                "high": {"value": high, "unit": unit, **ucum},
                "text": f"{low}-{high} {unit}",
            }
        ]
        value = quantity.get("value", 0)
        flag = "L" if value < low else "H" if value > high else "N"
        resource["interpretation"] = [
            {
                "coding": [
                    {
                        "system": (
                            "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
                        ),
                        "code": flag,
                        "display": {"L": "Low", "H": "High", "N": "Normal"}[flag],
                    }
                ]
            }
        ]


def pad_typical_history(patient: Any) -> None:
    """About a year and a half of a metastatic patient's course on zoledronic acid every 12 weeks,
    all unremarkable: labs and weight before each earlier dose, the earlier doses, vitamin D, a
    finished chemotherapy."""
    for dose in range(1, 4):
        days_ago = 168 + dose * 84
        patient.creatinine(days_ago + 7, round(0.78 + 0.01 * (dose % 4), 2)).weight(
            days_ago + 7, 68 - 0.3 * (dose % 3)
        )
        patient.calcium(
            days_ago + 7,
            round(9.2 + 0.1 * (dose % 4), 1),
            albumin=round(3.9 + 0.05 * (dose % 4), 2),
        )
        patient.medication(
            "zoledronic-acid-4mg", days_ago, dose_mg=4, route="intravenous", every=(12, "wk")
        )
    patient.vitamin_d(90, 78)
    patient.medication("paclitaxel", 800, route="intravenous")


def add_heavy_history(patient: Any, count: int = 1000) -> None:
    """`count` lab results over five years: creatinine, calcium with albumin, and weight, weekly
    panels."""
    rng = random.Random(20261015)
    kinds = ["creatinine", "calcium", "albumin", "weight"]
    for index in range(count):
        kind = kinds[index % 4]
        days_ago = 12 + (index // 4) * 7
        unit, mean, spread, *_ = LAB_PANELS[kind]
        value = round(mean + rng.uniform(-spread, spread), 2 if kind != "weight" else 1)
        patient.observation(kind, days_ago, value, unit)
        if kind == "weight":
            patient.resources[-1]["note"] = [
                {"text": "Measured at the oncology day unit before treatment, shoes off."}
            ]
        else:
            patient.resources[-1].update(
                specimen={"display": "Serum specimen"},
                note=[
                    {
                        "text": (
                            "Collected at the oncology day unit before treatment; analysed on the"
                            " routine chemistry line."
                        )
                    }
                ],
            )


def build_bodies(directory: Path) -> dict[str, dict[str, Any]]:
    """Write each scenario's request body to `directory`; return {name: {path, bytes, expected
    rules, ...}}."""
    from fixtures.prefetch import (
        answer_template,
        prefetch_templates,
        scenario_request,
        transaction_resources,
    )
    from fixtures.scenarios import scenario
    from hooks.knowledge import load_knowledge
    from hooks.services import build_services
    from service.record.prefetch import fill_template

    services = {s.id: s for s in build_services(load_knowledge())}
    sign = services["bonecds-order-sign"]
    directory.mkdir(parents=True, exist_ok=True)
    out: dict[str, dict[str, Any]] = {}

    def write(name: str, body: dict, **extra: Any) -> None:
        path = directory / f"{name}.json"
        data = json.dumps(body, separators=(",", ":")).encode()
        path.write_bytes(data)
        out[name] = {"path": path, "bytes": len(data), **extra}

    def enrich_all(resources: list[dict]) -> None:
        for serial, resource in enumerate(resources):
            enrich_observation(resource, serial)

    typical = scenario("metastatic-za-prepared")
    pad_typical_history(typical.patient)
    enrich_all(typical.patient.resources)
    typical_resources = transaction_resources(typical.patient.transaction())
    write(
        "typical",
        scenario_request(sign, typical, resources=typical_resources),
        expected=sorted(typical.expected),
        scenario="metastatic-za-prepared + earlier course (labs, doses)",
        transaction=typical.patient.transaction(),
        patient_id=typical.patient_id,
    )

    heavy = scenario("metastatic-za-prepared")
    pad_typical_history(heavy.patient)
    add_heavy_history(heavy.patient)
    enrich_all(heavy.patient.resources)
    heavy_resources = transaction_resources(heavy.patient.transaction())
    body = scenario_request(sign, heavy, resources=heavy_resources)
    # An EHR that answers the observation templates in full (ignores _count): every result is in the
    # request.
    for key in prefetch_templates():
        if key.key in ("renal", "weight", "calcium"):
            query = re.sub(r"&_count=\d+", "", fill_template(key.template, body["context"]))
            body["prefetch"][key.key] = answer_template(query, heavy_resources)
    observations = sum(
        len(body["prefetch"][k]["entry"])
        for k in body["prefetch"]
        if isinstance(body["prefetch"][k], dict)
        and body["prefetch"][k].get("resourceType") == "Bundle"
        and body["prefetch"][k]["entry"]
        and body["prefetch"][k]["entry"][0]["resource"]["resourceType"] == "Observation"
    )
    write(
        "heavy",
        body,
        expected=sorted(heavy.expected),
        observations=observations,
        scenario="typical + 1,000 lab results over 5 years, _count ignored",
    )

    with_card = scenario("dose-by-baseline")
    write(
        "with-card",
        scenario_request(
            sign, with_card, resources=transaction_resources(with_card.patient.transaction())
        ),
        expected=sorted(with_card.expected),
        scenario="dose-by-baseline",
    )

    no_agent = scenario("no-bone-agent")
    write(
        "no-bone-agent",
        scenario_request(
            sign, no_agent, resources=transaction_resources(no_agent.patient.transaction())
        ),
        expected=sorted(no_agent.expected),
        scenario="no-bone-agent",
    )

    write(
        "feedback",
        {
            "feedback": [
                {
                    "card": "00000000-0000-4000-8000-000000000000",
                    "outcome": "overridden",
                    "overrideReason": {
                        "reason": {
                            "system": "http://example.org/override-reason",
                            "code": "benefit-outweighs-risk",
                            "display": "Benefit outweighs risk",
                        },
                        "userComment": "benchmark",
                    },
                    "outcomeTimestamp": "2026-10-15T10:00:00.000000000000Z",
                }
            ]
        },
        scenario="one overridden card",
    )
    out["_sign_service"] = {"service": sign, "typical": typical}
    return out


def fhir_body(directory: Path, bodies: dict, base_url: str, token: str) -> None:
    from fixtures.prefetch import scenario_request

    info = bodies["_sign_service"]
    body = scenario_request(info["service"], info["typical"], fhir_server=base_url, token=token)
    if "prefetch" in body:
        raise AssertionError("the FHIR-only request must carry no prefetch")
    path = directory / "fhir.json"
    data = json.dumps(body, separators=(",", ":")).encode()
    path.write_bytes(data)
    bodies["fhir"] = {
        "path": path,
        "bytes": len(data),
        "expected": bodies["typical"]["expected"],
        "scenario": "typical patient, no prefetch, read from the local FHIR server",
    }


# --------------------------------------------------------------------------------------------------
# processes


@dataclass
class Service:
    process: subprocess.Popen
    base: str
    log_path: Path
    db_path: Path
    started_at: float
    log_file: Any = None

    def workers(self) -> list[int]:
        children = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid == self.process.pid:
                children.append(int(entry))
        return sorted(children)

    def worker_cpu_s(self) -> dict[int, float]:
        """User + system CPU seconds of each worker so far."""
        ticks = os.sysconf("SC_CLK_TCK")
        result = {}
        for pid in self.workers():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                result[pid] = (int(fields[11]) + int(fields[12])) / ticks
            except (OSError, IndexError, ValueError):
                pass
        return result

    def worker_rss_kib(self) -> dict[int, int]:
        result = {}
        for pid in self.workers():
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        result[pid] = int(line.split()[1])
            except OSError:
                pass
        return result


class Processes:
    """Everything this run started, stopped in reverse order on exit (errors and Ctrl-C
    included)."""

    def __init__(self) -> None:
        self.stoppers: list[tuple[str, Any]] = []

    def add(self, name: str, stop: Any) -> None:
        self.stoppers.append((name, stop))

    def remove(self, name: str) -> None:
        self.stoppers = [(n, s) for n, s in self.stoppers if n != name]

    def stop_all(self) -> None:
        while self.stoppers:
            name, stop = self.stoppers.pop()
            try:
                stop()
            except Exception as error:  # keep stopping the others
                print(f"warning: could not stop {name}: {error}", file=sys.stderr)


def stop_service(service: Service, timeout: float = 15.0) -> None:
    proc = service.process
    if proc.poll() is None:
        proc.terminate()  # gunicorn's master stops its workers on SIGTERM
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # its own session: the master and its workers
            except ProcessLookupError:
                pass
            proc.wait()
    if service.log_file:
        service.log_file.close()


def start_service(
    name: str, workdir: Path, env_extra: dict[str, str], processes: Processes
) -> Service:
    """`bonecds serve` exactly as `make run` starts it (gunicorn, default 2 workers, preload), on a
    free loopback port."""
    port = int(env_extra.pop("_PORT", 0)) or free_port()
    db_path = workdir / f"{name}.sqlite3"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db_path}{suffix}").unlink(missing_ok=True)
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("BONECDS_") and k != "DATABASE_URL"
    }
    env.update(
        {
            "BONECDS_AUTH": "off",
            "BONECDS_NOW": ANCHOR_NOW,
            "DATABASE_URL": f"sqlite:///{db_path}",
            "BONECDS_BENCH_FLOOR": "1",
            "BONECDS_DEV_KEY_FILE": str(workdir / "dev-client-key.json"),
        }
    )
    env.update(env_extra)
    log_path = workdir / f"{name}.log"
    log_file = open(log_path, "ab")
    command = [
        str(APP_VENV / "bin" / "bonecds"),
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    started_at = time.perf_counter()
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    service = Service(process, f"http://127.0.0.1:{port}", log_path, db_path, started_at, log_file)
    processes.add(name, lambda: stop_service(service))
    return service


IN_FLIGHT = re.compile(r"^bonecds_http_requests_in_flight(?:\{[^}]*\})? ([0-9.e+-]+)$", re.M)


def wait_idle(service: Service, timeout: float = 5.0) -> None:
    """Wait until the service answers nothing but this probe: when wrk stops (the warm-up before a
    measured run), the calls it had sent go on in the workers, and a measured run started at once
    would share the workers with them (on the FHIR path, a slow call holds one of the worker's FHIR
    slots for a few hundred ms, so the new run's first calls were shed as busy)."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            found = IN_FLIGHT.search(httpx.get(f"{service.base}/metrics", timeout=1.0).text)
        except httpx.HTTPError:
            found = None
        if found is not None and float(found.group(1)) <= 1:  # the probe itself
            return
        time.sleep(0.01)


def wait_healthy(service: Service, timeout: float = 30.0) -> None:
    """Until /readyz answers 200: every worker listens (before that, wrk's keep-alive connections
    would all land on the first worker)."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if service.process.poll() is not None:
            raise RuntimeError(
                f"the service exited ({service.process.returncode}); see {service.log_path}:\n"
                + service.log_path.read_text(errors="replace")[-3000:]
            )
        try:
            if httpx.get(f"{service.base}/readyz", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.02)
    raise RuntimeError(
        f"the service was not ready (/readyz) within {timeout:g} s; see {service.log_path}"
    )


def cold_start(service: Service, body: bytes, timeout: float = 30.0) -> dict[str, float]:
    """Seconds from process start to the first 200 on /healthz and to the first successful typical
    order-sign."""
    import httpx

    first_health = None
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=5.0) as client:
        while time.monotonic() < deadline:
            if service.process.poll() is not None:
                raise RuntimeError(
                    f"the service exited ({service.process.returncode}); see {service.log_path}"
                )
            try:
                if (
                    first_health is None
                    and client.get(f"{service.base}/healthz").status_code == 200
                ):
                    first_health = time.perf_counter() - service.started_at
                response = client.post(
                    f"{service.base}{SIGN}",
                    content=body,
                    headers={"Content-Type": "application/json"},
                )
                if response.status_code == 200:
                    answered = time.perf_counter() - service.started_at
                    return {
                        "first_order_sign_s": answered,
                        "first_healthz_s": first_health or answered,
                    }
            except httpx.HTTPError:
                pass
            time.sleep(0.005)
    raise RuntimeError(f"no successful order-sign within {timeout:g} s; see {service.log_path}")


# --------------------------------------------------------------------------------------------------
# wrk


@dataclass
class WrkResult:
    p50_ms: float
    p99_ms: float
    rps: float
    requests: int
    non_2xx: int
    socket_errors: dict[str, int]
    counts: dict[str, int] = field(default_factory=dict)
    duration_s: float = 0.0

    @property
    def socket_error_total(self) -> int:
        return sum(self.socket_errors.values())


UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0, "h": 3600000.0}


def _latency_ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text.strip())
    if not match:
        raise ValueError(f"unexpected wrk latency {text!r}")
    return float(match.group(1)) * UNITS[match.group(2)]


def parse_wrk(output: str) -> WrkResult:
    percentiles = dict(re.findall(r"^\s+(50|99)(?:\.0+)?%\s+(\S+)\s*$", output, re.M))
    if "50" not in percentiles or "99" not in percentiles:
        raise RuntimeError(f"no latency distribution in wrk output:\n{output}")
    rps_line = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.M)
    if not rps_line:
        raise RuntimeError(f"no Requests/sec in wrk output:\n{output}")
    rps = float(rps_line.group(1))
    total = re.search(r"^\s+(\d+) requests in ([\d.]+)(\w+)", output, re.M)
    sockets = {"connect": 0, "read": 0, "write": 0, "timeout": 0}
    match = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    if match:
        sockets = dict(zip(sockets, map(int, match.groups()), strict=True))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    counts_line = re.search(r"^BENCH_COUNTS (\{.*\})$", output, re.M)
    counts = json.loads(counts_line.group(1)) if counts_line else {}
    non_ok = int(non_2xx.group(1)) if non_2xx else 0
    if counts:  # wrk counts 3xx as fine; the script counts every status that is not 2xx
        non_ok = max(non_ok, counts["responses"] - counts["s2xx"])
    return WrkResult(
        _latency_ms(percentiles["50"]),
        _latency_ms(percentiles["99"]),
        rps,
        int(total.group(1)) if total else 0,
        non_ok,
        sockets,
        counts,
    )


def run_wrk(
    url: str, connections: int, seconds: float, env_extra: dict[str, str], *, stop_after: int = 0
) -> WrkResult:
    threads = (
        1  # one event loop keeps up with this service easily and leaves the CPUs to the workers
    )
    env = {
        **os.environ,
        "BENCH_THREADS": str(threads),
        "BENCH_STOP_AFTER": str(stop_after),
        **env_extra,
    }
    duration = max(1, int(round(seconds)))
    command = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{duration}s",
        "--latency",
        "--timeout",
        "10s",
        "-s",
        str(LUA),
        url,
    ]
    done_files = []
    if stop_after:
        marker = WORKDIR / f"wrk-done-{os.getpid()}-{time.monotonic_ns()}"
        env["BENCH_DONE_FILE"] = str(marker)
        done_files = [Path(f"{marker}.{i}") for i in range(1, threads + 1)]
    started = time.perf_counter()
    with subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as process:
        try:
            # wrk sleeps for the whole -d even when every thread has stopped: interrupt it then
            if done_files:
                while process.poll() is None and not all(f.exists() for f in done_files):
                    time.sleep(0.02)
                if process.poll() is None:
                    process.send_signal(signal.SIGINT)
            stdout, stderr = process.communicate(timeout=duration + 60)
        finally:
            if process.poll() is None:
                process.kill()
            for f in done_files:
                f.unlink(missing_ok=True)
    if process.returncode != 0:
        raise RuntimeError(f"wrk failed ({process.returncode}): {stderr}\n{stdout}")
    result = parse_wrk(stdout)
    result.duration_s = time.perf_counter() - started
    return result


# ------------------------------------------------------------------------------------------------
# FHIR server


def time_single_queries(base_url: str, token: str, context: dict, repeats: int) -> dict[str, float]:
    """Median milliseconds of each order-sign prefetch query sent alone to the FHIR server (keep-
    alive client)."""
    import httpx

    from fixtures.prefetch import prefetch_templates
    from service.record.prefetch import fill_template

    medians = {}
    with httpx.Client(
        timeout=10.0,
        headers={"Authorization": f"Bearer {token}", "Accept": "application/fhir+json"},
    ) as client:
        for key in prefetch_templates():
            url = f"{base_url}/{fill_template(key.template, context)}"
            client.get(url).raise_for_status()  # warm
            samples = []
            for _ in range(repeats):
                started = time.perf_counter()
                response = client.get(url)
                response.content  # noqa: B018  (read the whole body)
                samples.append((time.perf_counter() - started) * 1000)
                response.raise_for_status()
            medians[key.key] = statistics.median(samples)
    return medians


# --------------------------------------------------------------------------------------------------
# the run


@dataclass
class Row:
    scenario: str
    concurrency: int
    result: WrkResult
    ratio: float | None = None
    floor_of: str | None = None
    cpu_ms_per_request: float | None = None
    worker_split: str = ""

    @classmethod
    def against_floor(
        cls,
        scenario: str,
        concurrency: int,
        result: WrkResult,
        floor: WrkResult,
        cpu: float | None,
        split: str,
    ) -> Row:
        """A scenario's row, its p50 as a ratio of the floor's measured with the same body."""
        return cls(
            scenario,
            concurrency,
            result,
            ratio=result.p50_ms / floor.p50_ms,
            cpu_ms_per_request=cpu,
            worker_split=split,
        )

    def as_json(self) -> dict[str, Any]:
        r = self.result
        return {
            "scenario": self.scenario,
            "concurrency": self.concurrency,
            "p50_ms": round(r.p50_ms, 3),
            "p99_ms": round(r.p99_ms, 3),
            "requests_per_s": round(r.rps, 1),
            "requests": r.requests,
            "ratio_to_floor": round(self.ratio, 2) if self.ratio is not None else None,
            "floor_of": self.floor_of,
            "non_2xx": r.non_2xx,
            "socket_errors": r.socket_errors,
            "worker_cpu_ms_per_request": (
                round(self.cpu_ms_per_request, 2) if self.cpu_ms_per_request is not None else None
            ),
            "worker_cpu_split_pct": self.worker_split,
        }


def fmt_errors(result: WrkResult) -> str:
    return f"{result.non_2xx}/{result.socket_error_total}"


def print_table(rows: list[Row]) -> str:
    header = (
        f"{'scenario':<34} {'conc':>4} {'p50 ms':>9} {'p99 ms':>9} {'req/s':>9} {'x floor':>8}"
        f" {'errors':>7} {'cpu ms/req':>10} {'w-split':>8}"
    )
    lines = [header, "-" * len(header)]
    for row in rows:
        r = row.result
        ratio = f"{row.ratio:.2f}" if row.ratio is not None else ""
        cpu = f"{row.cpu_ms_per_request:.2f}" if row.cpu_ms_per_request is not None else ""
        lines.append(
            f"{row.scenario:<34} {row.concurrency:>4} {r.p50_ms:>9.2f} {r.p99_ms:>9.2f}"
            f" {r.rps:>9.0f} {ratio:>8} {fmt_errors(r):>7} {cpu:>10} {row.worker_split:>8}"
        )
    lines.append(
        "errors = non-2xx responses / socket errors (connect+read+write+timeout); x floor = p50 /"
        " p50 of the floor endpoint with the same body and concurrency;\ncpu ms/req = CPU time of"
        " both workers during the run / requests; w-split = share of that CPU per worker"
        " (keep-alive connections stay on the worker that accepted them)"
    )
    return "\n".join(lines)


def check_answers(service: Service, bodies: dict) -> tuple[dict[str, list[str]], str | None]:
    """Every benchmark body answers 200 with the scenario's cards (so the benchmark measures the
    right thing); also returns the uuid of the with-card body's first card (None without one)."""
    import httpx

    seen: dict[str, list[str]] = {}
    card_uuid: str | None = None
    with httpx.Client(timeout=30.0) as client:
        for name in ("typical", "heavy", "with-card", "no-bone-agent", "fhir"):
            if name not in bodies:
                continue
            response = client.post(
                f"{service.base}{SIGN}",
                content=bodies[name]["path"].read_bytes(),
                headers={"Content-Type": "application/json"},
            )
            if response.status_code != 200:
                raise RuntimeError(f"{name}: HTTP {response.status_code}: {response.text[:500]}")
            cards = response.json()["cards"]
            seen[name] = sorted(f"{c['source']['topic']['code']}:{c['indicator']}" for c in cards)
            expected = sorted(f"{rule}:{indicator}" for rule, indicator in bodies[name]["expected"])
            if seen[name] != expected:
                say(
                    f"  NOTE {name}: cards {seen[name]} differ from the scenario's expected"
                    f" {expected}"
                )
            if name == "with-card" and cards:
                card_uuid = cards[0]["uuid"]
    return seen, card_uuid


def mint_tokens(count: int, key: dict, issuer: str, audience: str, path: Path) -> None:
    from service.dev_keys import mint_token

    with open(path, "w") as handle:
        for _ in range(count):
            handle.write(mint_token(key, issuer, audience, lifetime_seconds=3600) + "\n")


def count_feedback_rows(db_path: Path) -> int:
    connection = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=10)
    try:
        return connection.execute("SELECT COUNT(*) FROM feedback").fetchone()[0]
    finally:
        connection.close()


def logged_feedback_stored(log_path: Path) -> int:
    """Feedback requests the service accepted and stored, from its own log lines (one per accepted
    request)."""
    text = log_path.read_text(errors="replace")
    return sum(int(m) for m in re.findall(r"feedback service=\S+ items=\d+ stored=(\d+)", text))


def rss_growth(before: dict[int, int], after: dict[int, int]) -> dict[str, Any]:
    per_worker = {
        str(pid): {
            "before_kib": before[pid],
            "after_kib": after[pid],
            "growth_pct": round((after[pid] - before[pid]) * 100.0 / before[pid], 2),
        }
        for pid in before
        if pid in after
    }
    worst = max((w["growth_pct"] for w in per_worker.values()), default=None)
    replaced = sorted(set(before) ^ set(after))
    return {"workers": per_worker, "max_growth_pct": worst, "workers_replaced": replaced}


def measure(
    service: Service,
    url: str,
    concurrency: int,
    seconds: float,
    env: dict[str, str],
    **options: Any,
) -> tuple[WrkResult, float | None, str]:
    """One wrk run with the workers' CPU time sampled around it: (result, CPU ms per request, CPU
    split per worker). It starts once the calls of the run before it have ended."""
    result, used = _sampled_run(service, url, concurrency, seconds, env, **options)
    return result, *_cpu_figures(used, result.requests)


def _sampled_run(
    service: Service,
    url: str,
    concurrency: int,
    seconds: float,
    env: dict[str, str],
    **options: Any,
) -> tuple[WrkResult, dict[int, float]]:
    """One wrk run, once the service is idle, and the CPU seconds each worker used during it."""
    wait_idle(service)
    before = service.worker_cpu_s()
    result = run_wrk(url, concurrency, seconds, env, **options)
    after = service.worker_cpu_s()
    return result, {pid: after[pid] - before[pid] for pid in before if pid in after}


def _cpu_figures(used: dict[int, float], requests: int) -> tuple[float | None, str]:
    """CPU ms per request of both workers, and each worker's share ('48/52')."""
    total = sum(used.values())
    per_request = total * 1000 / requests if requests else None
    split = "/".join(f"{100 * used[pid] / total:.0f}" for pid in sorted(used)) if total > 0 else ""
    return per_request, split


def rounds_for(seconds: float) -> tuple[int, int]:
    """(rounds, whole seconds per round) for `seconds` of measuring taken in turns: 5 rounds of 2 s
    in a full run, 3 of 1 s in a quick one (wrk's -d is in whole seconds)."""
    rounds = min(5, max(1, int(seconds)))
    return rounds, max(1, round(seconds / rounds))


def combined(results: list[WrkResult]) -> WrkResult:
    """Short runs of one scenario as one result: the median of their p50, p99 and rate (a slow spell
    of the machine moves one round, not the figure), their requests, errors and counts added."""
    counts: dict[str, int] = {}
    for result in results:
        for key, value in result.counts.items():
            counts[key] = counts.get(key, 0) + value
    return WrkResult(
        statistics.median(r.p50_ms for r in results),
        statistics.median(r.p99_ms for r in results),
        statistics.median(r.rps for r in results),
        sum(r.requests for r in results),
        sum(r.non_2xx for r in results),
        {k: sum(r.socket_errors.get(k, 0) for r in results) for k in results[0].socket_errors},
        counts,
        sum(r.duration_s for r in results),
    )


def measure_in_turns(
    service: Service,
    runs: list[tuple[str, dict[str, str]]],
    concurrency: int,
    seconds: float,
    for_round: Callable[[dict[str, str]], dict[str, str]] = lambda env: env,
) -> list[tuple[WrkResult, float | None, str]]:
    """The runs (url, wrk environment; `for_round` adapts it to each round) measured in alternating
    short rounds (floor, scenario, floor, scenario, ...) for `seconds` each in all, each combined
    (`combined`): on a machine whose speed drifts by tens of percent within a minute, the floor and
    the scenario are measured in the same spells, so their ratio holds where two back-to-back runs
    did not."""
    rounds, each = rounds_for(seconds)
    taken: list[list[WrkResult]] = [[] for _ in runs]
    used: list[dict[int, float]] = [{} for _ in runs]
    for _ in range(rounds):
        for index, (url, env) in enumerate(runs):
            result, cpu = _sampled_run(service, url, concurrency, each, for_round(env))
            taken[index].append(result)
            for pid, seconds_used in cpu.items():
                used[index][pid] = used[index].get(pid, 0.0) + seconds_used
    out = []
    for results, cpu in zip(taken, used, strict=True):
        result = combined(results)
        out.append((result, *_cpu_figures(cpu, result.requests)))
    return out


def time_parallel_queries(
    base_url: str, token: str, context: dict, repeats: int, parallel: int = 8
) -> float:
    """Median milliseconds to fetch all order-sign prefetch queries at once, `parallel` at a time,
    directly."""
    from concurrent.futures import ThreadPoolExecutor

    import httpx

    from fixtures.prefetch import prefetch_templates
    from service.record.prefetch import fill_template

    urls = [f"{base_url}/{fill_template(key.template, context)}" for key in prefetch_templates()]
    samples = []
    with (
        httpx.Client(
            timeout=10.0,
            headers={"Authorization": f"Bearer {token}"},
            limits=httpx.Limits(max_connections=parallel * 2),
        ) as client,
        ThreadPoolExecutor(parallel) as pool,
    ):

        def get(url: str) -> int:
            return len(client.get(url).raise_for_status().content)

        list(pool.map(get, urls))  # warm
        for _ in range(repeats):
            started = time.perf_counter()
            list(pool.map(get, urls))
            samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def time_batch_query(base_url: str, token: str, context: dict, repeats: int) -> float:
    """Median milliseconds of one FHIR `batch` Bundle carrying all order-sign prefetch queries,
    posted directly (what the service sends when the server's CapabilityStatement lists batch)."""
    import httpx

    from fixtures.prefetch import prefetch_templates
    from service.record.batch import batch_bundle
    from service.record.prefetch import fill_template

    # the Bundle the service itself sends
    bundle = batch_bundle(
        base_url, {key.key: fill_template(key.template, context) for key in prefetch_templates()}
    )
    samples = []
    with httpx.Client(
        timeout=10.0,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/fhir+json"},
    ) as client:

        def post() -> None:
            answer = client.post(base_url, content=bundle).raise_for_status().json()
            if answer.get("type") != "batch-response":
                raise RuntimeError("the local FHIR server did not answer the batch")

        post()  # warm
        for _ in range(repeats):
            started = time.perf_counter()
            post()
            samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def measure_against_queries_at_once(
    service: Service,
    url: str,
    env: dict[str, str],
    seconds: float,
    fhir_base: str,
    token: str,
    context: dict,
    queries: int,
) -> tuple[WrkResult, float | None, str, float]:
    """The service's FHIR path at concurrency 1 and the FHIR server's time for all its queries sent
    at once, in alternating rounds (as the floors are): the local FHIR server shares the two cores,
    and its speed drifts over a run by more than the 4 ms the target allows. (result, CPU ms per
    request, CPU split, median ms of all queries at once over the rounds)."""
    rounds, each = rounds_for(seconds)
    taken: list[WrkResult] = []
    used: dict[int, float] = {}
    at_once: list[float] = []
    for _ in range(rounds):
        at_once.append(time_parallel_queries(fhir_base, token, context, 5, parallel=queries))
        result, cpu = _sampled_run(service, url, 1, each, env)
        taken.append(result)
        for pid, seconds_used in cpu.items():
            used[pid] = used.get(pid, 0.0) + seconds_used
    result = combined(taken)
    return (result, *_cpu_figures(used, result.requests), statistics.median(at_once))


def run_fhir_parallel(
    args, bodies, floors, processes, fhir_base: str, fhir_token: str, results: dict
) -> list[Row]:
    """The FHIR-server path with batch Bundles off (BONECDS_FHIR_BATCH=off): the parallel GETs a
    server without batch gets, in a service of its own; at concurrency 1 next to the FHIR server's
    own time for all queries at once, measured in turns with it."""
    say("  FHIR-server path with parallel GETs (BONECDS_FHIR_BATCH=off) ...")
    context = json.loads(bodies["fhir"]["path"].read_bytes())["context"]
    queries = len(results.get("fhir_single_queries_ms", {})) or 20
    service = start_service(
        "service-fhir-get",
        WORKDIR,
        {"BONECDS_FHIR_ALLOWLIST": fhir_base, "BONECDS_FHIR_BATCH": "off"},
        processes,
    )
    wait_healthy(service)
    env = {"BENCH_MODE": "static", "BENCH_BODY": str(bodies["fhir"]["path"])}
    url = f"{service.base}{SIGN}"
    out = []
    for concurrency in (1, 8):
        run_wrk(url, concurrency, args.warmup, env)
        if concurrency == 1:
            result, cpu, split, at_once = measure_against_queries_at_once(
                service, url, env, args.duration, fhir_base, fhir_token, context, queries
            )
            results["fhir_all_queries_at_once_late_ms"] = round(at_once, 2)
        else:
            result, cpu, split = measure(service, url, concurrency, args.duration, env)
        floor = floors[("FHIR-server path (no prefetch)", concurrency)]
        out.append(
            Row.against_floor(
                "FHIR-server path, parallel GETs", concurrency, result, floor, cpu, split
            )
        )
    stop_service(service)
    processes.remove("service-fhir-get")
    return out


def run(args: argparse.Namespace) -> int:
    ensure_wrk()
    sys.path.insert(0, str(ROOT))
    from tests.support.fhir_server.harness import start_local_fhir_server, stop_local_fhir_server

    duration, warmup = args.duration, args.warmup
    processes = Processes()
    results: dict[str, Any] = {
        "started": datetime.now(UTC).isoformat(),
        "quick": args.quick,
        "duration_s": duration,
        "warmup_s": warmup,
    }
    rows: list[Row] = []
    try:
        if WORKDIR.exists():
            shutil.rmtree(WORKDIR)
        WORKDIR.mkdir(parents=True)
        say(f"building request bodies in {WORKDIR.relative_to(ROOT)}/ ...")
        bodies = build_bodies(WORKDIR / "bodies")

        say("starting the local FHIR server and loading the typical patient ...")
        from fixtures.load import load_fixtures

        fhir, fhir_proc = start_local_fhir_server(WORKDIR / "fhir-server")
        processes.add("fhir-server", lambda: stop_local_fhir_server(fhir_proc))
        if fhir.token is None:  # start_local_fhir_server always gives its LOCAL_TOKEN
            raise RuntimeError("the local FHIR server came up without a token")
        fhir_token = fhir.token
        load_fixtures(
            fhir.base_url, fhir.token, [bodies["typical"]["transaction"]], names=["bench-typical"]
        )
        fhir_body(WORKDIR / "bodies", bodies, fhir.base_url, fhir_token)
        context = json.loads(bodies["fhir"]["path"].read_bytes())["context"]
        single = time_single_queries(
            fhir.base_url, fhir_token, context, repeats=5 if args.quick else 11
        )
        slowest_key = max(single, key=single.__getitem__)
        results["fhir_single_queries_ms"] = {k: round(v, 2) for k, v in single.items()}
        results["fhir_slowest_single_query"] = {
            "key": slowest_key,
            "median_ms": round(single[slowest_key], 2),
        }
        parallel_ms = time_parallel_queries(
            fhir.base_url, fhir_token, context, repeats=5 if args.quick else 11
        )
        results["fhir_all_queries_parallel_ms"] = round(parallel_ms, 2)
        at_once_ms = time_parallel_queries(
            fhir.base_url,
            fhir_token,
            context,
            repeats=5 if args.quick else 11,
            parallel=len(single),
        )
        results["fhir_all_queries_at_once_ms"] = round(at_once_ms, 2)
        batch_ms = time_batch_query(
            fhir.base_url, fhir_token, context, repeats=5 if args.quick else 11
        )
        results["fhir_batch_alone_ms"] = round(batch_ms, 2)
        say(
            f"  slowest single FHIR query: {slowest_key} {single[slowest_key]:.1f} ms (median); all"
            f" {len(single)} in sequence {sum(single.values()):.1f} ms, 8 at a time"
            f" {parallel_ms:.1f} ms, all at once {at_once_ms:.1f} ms, as one batch Bundle"
            f" {batch_ms:.1f} ms"
        )

        for name in ("typical", "heavy", "with-card", "no-bone-agent", "fhir", "feedback"):
            say(
                f"  body {name:<14} {bodies[name]['bytes']:>9,} bytes"
                f" ({bodies[name]['bytes'] / 1024:,.1f} KiB)  {bodies[name]['scenario']}"
            )
        results["bodies"] = {
            name: {k: v for k, v in info.items() if k in ("bytes", "scenario", "observations")}
            for name, info in bodies.items()
            if not name.startswith("_")
        }

        say(
            "starting the service (bonecds serve, gunicorn, 2 workers, preload,"
            " BONECDS_AUTH=off) ..."
        )
        service = start_service(
            "service", WORKDIR, {"BONECDS_FHIR_ALLOWLIST": fhir.base_url}, processes
        )
        typical_bytes = bodies["typical"]["path"].read_bytes()
        cold = cold_start(service, typical_bytes)
        results["cold_start"] = {k: round(v, 3) for k, v in cold.items()}
        say(
            f"  cold start: /healthz after {cold['first_healthz_s']:.2f} s, first order-sign answer"
            f" after {cold['first_order_sign_s']:.2f} s"
        )
        results["cards"], first_card = check_answers(service, bodies)
        no_card = "00000000-0000-4000-8000-000000000000"
        card_uuid = first_card if first_card is not None else no_card
        sign_url, floor_url = f"{service.base}{SIGN}", f"{service.base}{FLOOR}"

        # Memory: RSS of each worker after N and 2N typical order-sign requests (concurrency 8).
        memory_n = 2000 if args.quick else 5000
        static_typical = {"BENCH_MODE": "static", "BENCH_BODY": str(bodies["typical"]["path"])}
        run_wrk(sign_url, 8, warmup, static_typical)
        rss_start = service.worker_rss_kib()
        first, _, split_first = measure(
            service, sign_url, 8, 600, static_typical, stop_after=memory_n
        )
        rss_n = service.worker_rss_kib()
        second, _, split_second = measure(
            service, sign_url, 8, 600, static_typical, stop_after=memory_n
        )
        rss_2n = service.worker_rss_kib()
        growth = rss_growth(rss_n, rss_2n)
        results["memory"] = {
            "requests_first": first.requests,
            "requests_second": second.requests,
            "errors": (
                first.non_2xx
                + second.non_2xx
                + first.socket_error_total
                + second.socket_error_total
            ),
            "rss_kib_after_warmup": rss_start,
            "rss_kib_after_n": rss_n,
            "rss_kib_after_2n": rss_2n,
            "n": memory_n,
            "worker_cpu_split_pct": [split_first, split_second],
            **growth,
        }
        say(
            f"  memory: RSS (KiB) after warm-up {rss_start}, after {memory_n:,} {rss_n}, after"
            f" {2 * memory_n:,} {rss_2n}; max growth {growth['max_growth_pct']}%; worker CPU split"
            f" {split_first}, {split_second}"
        )

        # Scenarios, each in turns with the floor endpoint with the same body and concurrency.
        run_counter = itertools.count(1)

        def new_run(env: dict[str, str]) -> dict[str, str]:
            """A feedback run sends new feedback (its run number is in the feedback ids)."""
            if env.get("BENCH_MODE") != "feedback":
                return env
            return {**env, "BENCH_RUN": str(next(run_counter))}

        scenarios = [
            (
                "typical order-sign (full prefetch)",
                sign_url,
                {"BENCH_MODE": "static", "BENCH_BODY": str(bodies["typical"]["path"])},
                "typical",
            ),
            (
                "order-sign with a card",
                sign_url,
                {"BENCH_MODE": "static", "BENCH_BODY": str(bodies["with-card"]["path"])},
                "with-card",
            ),
            (
                "heavy patient (1,000 obs)",
                sign_url,
                {"BENCH_MODE": "static", "BENCH_BODY": str(bodies["heavy"]["path"])},
                "heavy",
            ),
            (
                "no bone agent",
                sign_url,
                {"BENCH_MODE": "static", "BENCH_BODY": str(bodies["no-bone-agent"]["path"])},
                "no-bone-agent",
            ),
            (
                "FHIR-server path (no prefetch)",
                sign_url,
                {"BENCH_MODE": "static", "BENCH_BODY": str(bodies["fhir"]["path"])},
                "fhir",
            ),
            ("discovery (GET)", f"{service.base}/cds-services", {"BENCH_MODE": "static"}, None),
            (
                "feedback",
                f"{service.base}{FEEDBACK}",
                {
                    "BENCH_MODE": "feedback",
                    "BENCH_FEEDBACK_PATH": FEEDBACK,
                    "BENCH_CARD": card_uuid,
                },
                "feedback",
            ),
        ]
        floors: dict[tuple[str, int], WrkResult] = {}
        for label, url, env, body_name in scenarios:
            floor_env = {
                "BENCH_MODE": "static",
                **({"BENCH_BODY": str(bodies[body_name]["path"])} if body_name else {}),
            }
            floor_label = (
                f"  floor ({body_name or 'GET'} body)" if body_name else "  floor (GET, no body)"
            )
            for concurrency in (1, 8):
                say(f"  {label}, c={concurrency} ...")
                run_wrk(floor_url, concurrency, warmup, floor_env)
                run_wrk(url, concurrency, warmup, new_run(env))
                (floor, floor_cpu, floor_split), (result, cpu, split) = measure_in_turns(
                    service, [(floor_url, floor_env), (url, env)], concurrency, duration, new_run
                )
                floors[(label, concurrency)] = floor
                rows.append(
                    Row(
                        floor_label,
                        concurrency,
                        floor,
                        floor_of=label,
                        cpu_ms_per_request=floor_cpu,
                        worker_split=floor_split,
                    )
                )
                rows.append(Row.against_floor(label, concurrency, result, floor, cpu, split))

        # Soak: mixed typical / no-bone-agent / feedback at concurrency 16.
        say(
            f"  soak: {args.soak_seconds:g} s mixed (2 typical : 2 no-bone-agent : 1 feedback) at"
            " c=16 ..."
        )
        soak_env = {
            "BENCH_MODE": "mixed",
            "BENCH_BODY": str(bodies["typical"]["path"]),
            "BENCH_BODY_B": str(bodies["no-bone-agent"]["path"]),
            "BENCH_SIGN_PATH": SIGN,
            "BENCH_FEEDBACK_PATH": FEEDBACK,
            "BENCH_CARD": card_uuid,
            "BENCH_RUN": str(next(run_counter)),
        }
        time.sleep(1.0)  # let the previous run's requests still in flight finish before counting
        rows_before, logged_before = (
            count_feedback_rows(service.db_path),
            logged_feedback_stored(service.log_path),
        )
        rss_before = service.worker_rss_kib()
        soak, soak_cpu, soak_split = measure(service, sign_url, 16, args.soak_seconds, soak_env)
        time.sleep(1.0)  # let requests still in flight when wrk stopped finish
        rss_after = service.worker_rss_kib()
        rows_delta = count_feedback_rows(service.db_path) - rows_before
        logged_delta = logged_feedback_stored(service.log_path) - logged_before
        soak_growth = rss_growth(rss_before, rss_after)
        rows.append(
            Row(
                "soak mix (typ/no-agent/feedback)",
                16,
                soak,
                cpu_ms_per_request=soak_cpu,
                worker_split=soak_split,
            )
        )
        results["soak"] = {
            "seconds": args.soak_seconds,
            "requests": soak.requests,
            "requests_per_s": round(soak.rps, 1),
            "p50_ms": round(soak.p50_ms, 3),
            "p99_ms": round(soak.p99_ms, 3),
            "non_2xx": soak.non_2xx,
            "socket_errors": soak.socket_errors,
            "feedback_sent": soak.counts.get("sent_feedback"),
            "feedback_answered_stored": soak.counts.get("fb_stored"),
            "feedback_answered_duplicate": soak.counts.get("fb_dup"),
            "feedback_accepted_by_service": logged_delta,
            "feedback_rows_stored": rows_delta,
            "rss_kib_before": rss_before,
            "rss_kib_after": rss_after,
            **soak_growth,
        }
        say(
            f"    {soak.requests:,} requests, {soak.rps:.0f} req/s, errors {fmt_errors(soak)};"
            f" feedback sent {soak.counts.get('sent_feedback')}, answered stored"
            f" {soak.counts.get('fb_stored')}, accepted by the service {logged_delta}, rows stored"
            f" {rows_delta}; RSS {rss_before} -> {rss_after}"
        )
        results["service_log"] = str(service.log_path.relative_to(ROOT))
        errors_in_log = len(re.findall(r" ERROR ", service.log_path.read_text(errors="replace")))
        results["service_log_error_lines"] = errors_in_log
        stop_service(service)
        processes.remove("service")

        rows.extend(
            run_fhir_parallel(args, bodies, floors, processes, fhir.base_url, fhir_token, results)
        )

        # JWT authentication on: the typical order-sign, one fresh token per request.
        if not args.no_jwt:
            rows.extend(run_jwt(args, bodies, rows, floors, processes, results))
    finally:
        processes.stop_all()

    report(args, rows, results)
    return 0


def run_jwt(args, bodies, rows, floors, processes, results) -> list[Row]:
    from cryptography.hazmat.primitives.asymmetric import ec
    from jwt.algorithms import ECAlgorithm

    say(
        "  typical order-sign with JWT authentication (BONECDS_AUTH=on, trusted-clients file, one"
        " token per request) ..."
    )
    key = json.loads(ECAlgorithm.to_jwk(ec.generate_private_key(ec.SECP384R1())))
    key.update(kid="bench-1", alg="ES384", use="sig")
    issuer = "https://ehr.bench.test/"
    clients = WORKDIR / "clients.json"
    clients.write_text(
        json.dumps(
            {
                "clients": [
                    {"iss": issuer, "jwks": {"keys": [{k: v for k, v in key.items() if k != "d"}]}}
                ]
            }
        )
    )
    port = free_port()
    audience = f"http://127.0.0.1:{port}{SIGN}"
    typical_rows = {
        r.concurrency: r.result for r in rows if r.scenario.startswith("typical order-sign")
    }
    started = time.perf_counter()
    files = {}
    for concurrency in (1, 8):
        rate = typical_rows[concurrency].rps
        for phase, seconds in (("warm", args.warmup), ("run", args.duration)):
            count = int(math.ceil(rate * max(1, round(seconds)) * 1.3)) + 200
            path = WORKDIR / f"tokens-c{concurrency}-{phase}.txt"
            mint_tokens(count, key, issuer, audience, path)
            files[(concurrency, phase)] = (path, count)
    minted = sum(c for _, c in files.values())
    say(f"    minted {minted:,} tokens in {time.perf_counter() - started:.1f} s")
    service = start_service(
        "service-jwt",
        WORKDIR,
        {"_PORT": str(port), "BONECDS_AUTH": "on", "BONECDS_CLIENTS_FILE": str(clients)},
        processes,
    )
    wait_healthy(service)
    out = []
    for concurrency in (1, 8):
        for phase in ("warm", "run"):
            path, count = files[(concurrency, phase)]
            env = {
                "BENCH_MODE": "jwt",
                "BENCH_BODY": str(bodies["typical"]["path"]),
                "BENCH_TOKENS": str(path),
            }
            result, cpu, split = measure(
                service,
                f"{service.base}{SIGN}",
                concurrency,
                args.warmup if phase == "warm" else args.duration,
                env,
            )
            if phase == "run":
                if result.requests > count:
                    say(
                        f"    NOTE c={concurrency}: {result.requests} requests but only {count}"
                        " tokens; the rest were replays (401)"
                    )
                floor = floors[("typical order-sign (full prefetch)", concurrency)]
                out.append(
                    Row.against_floor(
                        "typical order-sign + JWT (ES384)", concurrency, result, floor, cpu, split
                    )
                )
    results["jwt"] = {
        "tokens_minted": minted,
        "service_log": str(service.log_path.relative_to(ROOT)),
    }
    stop_service(service)
    processes.remove("service-jwt")
    return out


# --------------------------------------------------------------------------------------------------
# the report


def evaluate_targets(rows: list[Row], results: dict) -> list[dict[str, Any]]:
    """Issue 18's targets (ratios to the floor from the same run; absolute figures where the issue
    gives them), then the earlier ones still tracked (cold start, memory)."""

    def row(prefix: str, concurrency: int, floor: bool = False) -> Row | None:
        for index, r in enumerate(rows):
            if r.scenario.startswith(prefix) and r.concurrency == concurrency:
                # floor rows come right before the scenario row they belong to
                return rows[index - 1] if floor else r
        return None

    targets = []

    def target(name: str, value: Any, limit: str, met: bool | None, issue: str = "18") -> None:
        targets.append({"issue": issue, "target": name, "value": value, "limit": limit, "met": met})

    def errors(r: Row) -> int:
        return r.result.non_2xx + r.result.socket_error_total

    card1, card1_floor = row("order-sign with a card", 1), row("order-sign with a card", 1, True)
    if card1 and card1_floor and card1.ratio is not None:
        target(
            "with-card order-sign p50 / floor, c=1",
            f"{card1.result.p50_ms:.2f} ms / {card1_floor.result.p50_ms:.2f} ms ="
            f" {card1.ratio:.2f}x",
            "<= 3x",
            card1.ratio <= 3,
        )
        target(
            "with-card order-sign p99, c=1",
            f"{card1.result.p99_ms:.2f} ms",
            "<= 8 ms",
            card1.result.p99_ms <= 8,
        )
    for prefix, label, share in (
        ("typical order-sign (full", "quiet typical", 0.5),
        ("order-sign with a card", "with-card", 0.45),
    ):
        r8, f8 = row(prefix, 8), row(prefix, 8, True)
        if not (r8 and f8):
            continue
        throughput = r8.result.rps / f8.result.rps
        target(
            f"{label} throughput / floor's, c=8",
            f"{r8.result.rps:.0f} / {f8.result.rps:.0f} req/s = {throughput:.2f}",
            f">= {share}",
            throughput >= share,
        )
        tail = r8.result.p99_ms / f8.result.p99_ms
        target(
            f"{label} p99 / floor's p99, c=8",
            f"{r8.result.p99_ms:.2f} / {f8.result.p99_ms:.2f} ms = {tail:.2f}x",
            "<= 2x",
            tail <= 2,
        )
        target(f"{label} errors, c=8", errors(r8), "0", errors(r8) == 0)
    heavy, heavy_floor = row("heavy patient", 1), row("heavy patient", 1, True)
    if heavy and heavy_floor and heavy.ratio is not None:
        target(
            "heavy patient (1,000 obs) p50 / floor, c=1",
            f"{heavy.result.p50_ms:.2f} ms / {heavy_floor.result.p50_ms:.2f} ms ="
            f" {heavy.ratio:.2f}x",
            "<= 2x",
            heavy.ratio <= 2,
        )
        target(
            "heavy patient (1,000 obs) p50, c=1",
            f"{heavy.result.p50_ms:.2f} ms",
            "<= 30 ms",
            heavy.result.p50_ms <= 30,
        )
    fh = row("FHIR-server path (no prefetch)", 1)
    if fh and "fhir_all_queries_at_once_ms" in results:
        at_once = results["fhir_all_queries_at_once_ms"]
        target(
            "FHIR-server path p50, c=1",
            f"{fh.result.p50_ms:.2f} ms = all queries at once {at_once:.2f} ms"
            f" {fh.result.p50_ms - at_once:+.2f} ms (8 at a time:"
            f" {results['fhir_all_queries_parallel_ms']:.2f} ms)",
            "<= all queries at once + 4 ms",
            fh.result.p50_ms <= at_once + 4,
        )
    gets = row("FHIR-server path, parallel GETs", 1)
    if gets and "fhir_all_queries_at_once_late_ms" in results:
        # measured in turns with this row: the FHIR server's speed drifts over a long run
        at_once = results["fhir_all_queries_at_once_late_ms"]
        target(
            "FHIR-server path p50 with batch off (parallel GETs), c=1",
            f"{gets.result.p50_ms:.2f} ms = all queries at once {at_once:.2f} ms"
            f" {gets.result.p50_ms - at_once:+.2f} ms",
            "<= all queries at once + 4 ms",
            gets.result.p50_ms <= at_once + 4,
        )
    if "soak" in results:
        soak = results["soak"]
        failures = soak["non_2xx"] + sum(soak["socket_errors"].values())
        target("soak: errors (non-2xx + socket)", failures, "0", failures == 0)
        answered, sent = soak["feedback_answered_stored"] or 0, soak["feedback_sent"] or 0
        # No row lost: every feedback the service answered "stored" is in the database, and no more
        # rows than were sent. (The log-line count is shown too, but log output is flushed later
        # than the database commits.)
        target(
            "soak: no feedback row lost",
            f"{soak['feedback_rows_stored']} rows; {answered} answered 'stored'; {sent} sent; "
            f"{soak['feedback_accepted_by_service']} logged",
            "answered <= rows <= sent",
            answered <= soak["feedback_rows_stored"] <= sent,
        )
        target(
            "soak: worker RSS growth",
            f"{soak['max_growth_pct']}% (worst worker)",
            "< 5%",
            soak["max_growth_pct"] is not None
            and soak["max_growth_pct"] < 5
            and not soak["workers_replaced"],
        )
    splits = [r for r in rows if r.concurrency > 1 and r.worker_split]
    if splits:
        lopsided = [
            f"{r.scenario.strip()} c={r.concurrency} {r.worker_split}"
            for r in splits
            if max(int(share) for share in r.worker_split.split("/")) > 80
        ]
        target(
            "both workers busy at c>1 (no worker above 80% of the CPU)",
            "; ".join(lopsided) or f"all {len(splits)} rows",
            "none lopsided",
            not lopsided,
        )
    t1, t8 = row("typical order-sign (full", 1), row("typical order-sign (full", 8)
    if t1:
        target(
            "typical order-sign p50, c=1",
            f"{t1.result.p50_ms:.2f} ms",
            "<= 2 ms",
            t1.result.p50_ms <= 2,
            "earlier",
        )
    if t8:
        target(
            "typical order-sign throughput, c=8",
            f"{t8.result.rps:.0f} req/s",
            ">= 1500 req/s",
            t8.result.rps >= 1500,
            "earlier",
        )
    if "cold_start" in results:
        cold = results["cold_start"]["first_order_sign_s"]
        target(
            "cold start to first order-sign answer", f"{cold:.2f} s", "<= 2 s", cold <= 2, "earlier"
        )
    if "memory" in results:
        memory = results["memory"]
        target(
            f"worker RSS growth {memory['n']:,} -> {2 * memory['n']:,} requests",
            f"{memory['max_growth_pct']}% (worst worker)",
            "< 5%",
            memory["max_growth_pct"] is not None
            and memory["max_growth_pct"] < 5
            and not memory["workers_replaced"],
            "earlier",
        )
    return targets


def report(args: argparse.Namespace, rows: list[Row], results: dict) -> None:
    targets = evaluate_targets(rows, results)
    table = print_table(rows)
    say("\n" + "=" * 100)
    say(
        f"bonecds benchmark ({'quick' if args.quick else 'full'}: {args.duration:g} s per run after"
        f" {args.warmup:g} s warm-up, scenario and floor in {rounds_for(args.duration)[0]}"
        f" alternating rounds (medians); {os.cpu_count()} CPUs; wrk, server and FHIR server"
        " share this machine)\n"
    )
    say(table)
    say("")
    if "fhir_slowest_single_query" in results:
        s = results["fhir_slowest_single_query"]
        say(
            f"FHIR server, slowest single prefetch query alone: {s['key']} {s['median_ms']:.2f} ms"
            f" (median); all {len(results['fhir_single_queries_ms'])} queries at once:"
            f" {results['fhir_all_queries_at_once_ms']:.2f} ms, 8 at a time:"
            f" {results['fhir_all_queries_parallel_ms']:.2f} ms, as one batch Bundle:"
            f" {results.get('fhir_batch_alone_ms', float('nan')):.2f} ms; per query: "
            + ", ".join(f"{k} {v:.1f}" for k, v in results["fhir_single_queries_ms"].items())
        )
    fhir_row = next(
        (r for r in rows if r.scenario.startswith("FHIR-server path (") and r.concurrency == 1),
        None,
    )
    if fhir_row is not None and "fhir_batch_alone_ms" in results:
        say(
            f"FHIR-server path (batch Bundle): p50 {fhir_row.result.p50_ms:.2f} ms, of which the"
            f" batch Bundle alone {results['fhir_batch_alone_ms']:.2f} ms: the service's own time"
            f" about {fhir_row.result.p50_ms - results['fhir_batch_alone_ms']:.1f} ms"
        )
    if "cold_start" in results:
        c = results["cold_start"]
        say(
            f"cold start: process start -> /healthz {c['first_healthz_s']:.2f} s, -> first typical"
            f" order-sign answer {c['first_order_sign_s']:.2f} s"
        )
    if "memory" in results:
        m = results["memory"]
        say(
            f"worker RSS (KiB): after warm-up {m['rss_kib_after_warmup']}, after {m['n']:,}"
            f" requests {m['rss_kib_after_n']}, after {2 * m['n']:,} {m['rss_kib_after_2n']};"
            " growth "
            + ", ".join(f"pid {pid} {w['growth_pct']:+.2f}%" for pid, w in m["workers"].items())
        )
    if "soak" in results:
        s = results["soak"]
        say(
            f"soak {s['seconds']:g} s at c=16: {s['requests']:,} requests"
            f" ({s['requests_per_s']:.0f} req/s, p50 {s['p50_ms']:.2f} ms, p99 {s['p99_ms']:.2f}"
            f" ms), non-2xx {s['non_2xx']}, socket errors {sum(s['socket_errors'].values())};"
            f" feedback sent {s['feedback_sent']}, answered 'stored'"
            f" {s['feedback_answered_stored']}, accepted by the service"
            f" {s['feedback_accepted_by_service']}, rows stored {s['feedback_rows_stored']}; worker"
            f" RSS (KiB) {s['rss_kib_before']} -> {s['rss_kib_after']} ({s['max_growth_pct']:+.2f}%"
            " worst)"
        )
    say(
        f"service log ERROR lines: {results.get('service_log_error_lines')}"
        f" ({results.get('service_log')})"
    )
    say("\ntargets (issue 18, then earlier ones still tracked):")
    for t in targets:
        mark = "info" if t["met"] is None else "PASS" if t["met"] else "FAIL"
        issue = "#18" if t["issue"] == "18" else t["issue"]
        say(f"  [{mark}] {issue:<7} {t['target']}: {t['value']} (target {t['limit']})")
    results["rows"] = [r.as_json() for r in rows]
    results["targets"] = targets
    results["table"] = table
    from hooks.knowledge import load_knowledge

    results["environment"] = {
        "knowledge": load_knowledge().version,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "wrk": (
            subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.splitlines()[0:1]
        ),
        "commit": (
            subprocess.run(
                ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True
            ).stdout.strip()
        ),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2, default=str) + "\n")
    say(f"\nwritten to {RESULTS.relative_to(ROOT)}")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="scripts/bench.py", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="short runs (3 s each, 1 s warm-up, 20 s soak) for a fast check",
    )
    parser.add_argument(
        "--duration", type=float, help="seconds per measured run (default 10, --quick 3)"
    )
    parser.add_argument(
        "--warmup", type=float, help="seconds of warm-up before each run (default 2, --quick 1)"
    )
    parser.add_argument(
        "--soak-seconds",
        type=float,
        help="seconds of the mixed soak at c=16 (default 120, --quick 20)",
    )
    parser.add_argument(
        "--no-jwt",
        action="store_true",
        help="skip the typical order-sign with JWT authentication on",
    )
    args = parser.parse_args(argv)
    bootstrap(argv)
    args.duration = args.duration or (3.0 if args.quick else 10.0)
    args.warmup = args.warmup or (1.0 if args.quick else 2.0)
    args.soak_seconds = args.soak_seconds or (20.0 if args.quick else 120.0)

    def terminate(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, terminate)
    try:
        return run(args)
    except KeyboardInterrupt:
        print("\ninterrupted; every process started by the benchmark was stopped", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
