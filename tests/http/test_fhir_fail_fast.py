"""Failing fast on the FHIR path: a failed Patient read answers 412 at once, a FHIR host that keeps
timing out is skipped by a circuit breaker (half-open probe), and health probes stay quick while 24
slow calls are in flight.

Real components: the misbehaving FHIR server of tests/support/fhir_server/faulty.py, and for the
load test the service as deployed (`bonecds serve`, 2 gunicorn workers). Figures go to pytest's
summary.
"""

from __future__ import annotations

import statistics
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from fixtures.builder import ANCHOR_INSTANT
from fixtures.prefetch import hook_request, transaction_resources
from fixtures.scenarios import scenario
from service.config import Settings
from tests.support.fhir_apps import app_reading_from
from tests.support.fhir_server.faulty import FaultyFhirServer
from tests.support.gunicorn import gunicorn
from tests.support.summary import add_summary_line

SCN = scenario("adjuvant-za-prepared")
SIGN = "/cds-services/bonecds-order-sign"
TOKEN = "fail-fast-token"
FIGURES: dict[str, str] = {}


@pytest.fixture(scope="module", autouse=True)
def summary():
    add_summary_line(
        "fhir-fail-fast",
        lambda: "FHIR fail-fast: " + "; ".join(f"{k} {v}" for k, v in FIGURES.items()),
    )


@pytest.fixture()
def server():
    with FaultyFhirServer(
        transaction_resources(SCN.patient.transaction()), hang_seconds=5.0
    ) as fhir:
        yield fhir


def app_for(server, tmp_path, **settings):
    return app_reading_from(server.base_url, tmp_path / "t.db", **settings)


def body_for(server, prefetch_patient: bool = False) -> dict:
    resources = transaction_resources(SCN.patient.transaction())
    service = type("S", (), {"hook": "order-sign"})()
    body = hook_request(
        service, SCN.patient_id, SCN.draft_orders, fhir_server=server.base_url, token=TOKEN
    )
    if prefetch_patient:
        body["prefetch"] = {"patient": next(r for r in resources if r["resourceType"] == "Patient")}
    return body


@pytest.mark.parametrize(
    "fault, limit", [("hang", "timeout"), ("http500", "at once"), ("not-found", "at once")]
)
def test_a_failed_patient_read_is_412_without_waiting_for_the_rest(server, tmp_path, fault, limit):
    """Observations hang for 5 s; the Patient read fails: the answer comes within the per-call
    timeout + 0.5 s (a hanging Patient read) or at once (an error), not after the whole budget."""
    timeout = 1.5
    client = app_for(
        server, tmp_path, fhir_timeout_seconds=timeout, fhir_budget_seconds=2.5
    ).test_client()
    server.reset({"*": "hang", "Patient": fault})
    started = time.monotonic()
    response = client.post(SIGN, json=body_for(server))
    elapsed = time.monotonic() - started
    assert response.status_code == 412 and response.get_json()["resourceType"] == "OperationOutcome"
    assert elapsed < (timeout + 0.5 if limit == "timeout" else 0.5), f"{elapsed:.2f} s"
    FIGURES[f"patient {fault} -> 412"] = f"{elapsed:.2f} s"


def test_defaults_fit_ehr_budgets():
    settings = Settings.from_env({})
    assert settings.fhir_timeout_seconds <= 1.5 and settings.fhir_budget_seconds <= 2.5


def test_a_host_that_keeps_timing_out_is_skipped_then_probed(server, tmp_path):
    """Three calls in a row with timeouts open the circuit: the next calls answer at once, their
    cards saying the server was skipped; after the open interval one call probes it (half-open) and,
    the server healthy again, closes it.

    The transitions are counted in /metrics.
    """
    # Timeout and budget leave room for the probe's reads on a machine busy with the rest of the
    # suite: at 0.3 s and 0.6 s the probe once drew a "could not be read" card in a full run.
    app = app_for(
        server,
        tmp_path,
        fhir_timeout_seconds=0.5,
        fhir_budget_seconds=1.0,
        fhir_breaker_failures=3,
        fhir_breaker_seconds=1.0,
    )
    client = app.test_client()
    # the patient came with the request: cards, not 412
    body = body_for(server, prefetch_patient=True)
    server.reset({"*": "hang"})
    for _ in range(3):
        assert client.post(SIGN, json=body).status_code == 200
    seen = len(server.requests)
    started = time.monotonic()
    skipped = client.post(SIGN, json=body)
    elapsed = time.monotonic() - started
    assert skipped.status_code == 200 and elapsed < 0.3, f"{elapsed:.2f} s"
    assert len(server.requests) == seen  # not contacted while open
    assert any("circuit open" in card["detail"] for card in skipped.get_json()["cards"])
    FIGURES["circuit-open call"] = f"{elapsed * 1000:.0f} ms"
    time.sleep(1.1)
    server.reset({"*": "ok"})  # (also forgets the requests seen so far)
    # half-open: this call goes through, and closes the circuit
    probe = client.post(SIGN, json=body)
    assert probe.status_code == 200 and server.requests
    assert probe.get_json()["cards"] == []
    metrics = client.get("/metrics").get_data(as_text=True)
    for state in ("open", "half-open", "closed"):
        assert f'bonecds_fhir_circuit_transitions_total{{state="{state}"}} 1.0' in metrics, state


def test_health_stays_quick_with_24_slow_calls_in_flight(server, tmp_path):
    """24 order-sign calls whose FHIR reads take 3 s, at once, against gunicorn (2 workers x 8
    threads): /healthz and /readyz answer in under 250 ms meanwhile, every call answers 200 (the
    ones over the per-worker limit of concurrent FHIR reads at once, saying what could not be read),
    and none waits longer than the budget."""
    server.slow_seconds = 3.0
    server.reset({"*": "slow", "Patient": "ok"})
    env = {
        "BONECDS_NOW": ANCHOR_INSTANT.isoformat(),
        "DATABASE_URL": f"sqlite:///{tmp_path}/f.db",
        "BONECDS_AUTH": "off",
        "BONECDS_FHIR_ALLOWLIST": server.base_url,
        "BONECDS_FHIR_BREAKER_FAILURES": "10000",
    }
    body = body_for(server, prefetch_patient=True)
    with gunicorn(env, tmp_path / "service.log") as base:

        def sign(_) -> tuple[int, float, bool]:
            started = time.monotonic()
            response = httpx.post(f"{base}{SIGN}", json=body, timeout=15)
            busy = any("service is busy" in c["detail"] for c in response.json().get("cards", []))
            return response.status_code, time.monotonic() - started, busy

        with ThreadPoolExecutor(24) as pool:
            calls = [pool.submit(sign, n) for n in range(24)]
            time.sleep(0.5)  # every call is in flight now
            probes = []
            for path in ("/healthz", "/readyz") * 4:
                started = time.monotonic()
                status = httpx.get(f"{base}{path}", timeout=5).status_code
                probes.append((path, status, time.monotonic() - started))
            results = [c.result() for c in calls]
    slowest_probe = max(elapsed for _, _, elapsed in probes)
    median_probe = statistics.median(elapsed for _, _, elapsed in probes)
    FIGURES["health with 24 slow calls"] = (
        f"median {median_probe * 1000:.0f} ms, max {slowest_probe * 1000:.0f} ms"
    )
    FIGURES["24 slow calls"] = (
        f"all {sorted({s for s, _, _ in results})}, slowest {max(t for _, t, _ in results):.2f} s, "
        f"{sum(b for _, _, b in results)} answered busy"
    )
    # the median of 8 probes: one probe can lose its core to the 24 calls on a noisy 2-core machine
    assert all(status == 200 for _, status, _ in probes) and median_probe < 0.25, probes
    assert all(status == 200 for status, _, _ in results)
    assert max(t for _, t, _ in results) < 2.5 + 1.0
    # over the limit: answered at once, saying what was not read
    assert any(busy for _, _, busy in results)


def test_a_worker_at_its_limit_answers_503_with_retry_after_when_it_cannot_read_the_patient(
    server, tmp_path, caplog
):
    """One FHIR call at a time on this worker, its reads slow: the calls that cannot start their
    reads (the patient's among them) are told the service is busy (503, Retry-After), not that the
    patient's record could not be obtained (412). A call whose patient came with the request still
    answers with cards saying what was not read."""
    server.slow_seconds = 2.0
    server.reset({"*": "slow", "Patient": "ok"})
    app = app_for(server, tmp_path, fhir_max_concurrent_calls=1, fhir_budget_seconds=2.5)
    without_patient = body_for(server)
    with_patient = body_for(server, prefetch_patient=True)

    def sign(body: dict):
        return app.test_client().post(SIGN, json=body)

    with ThreadPoolExecutor(4) as pool:
        first = pool.submit(sign, without_patient)
        time.sleep(0.3)  # the first call holds the worker's one FHIR slot now
        started = time.monotonic()
        others = [pool.submit(sign, without_patient) for _ in range(2)]
        prefetched = pool.submit(sign, with_patient)
        shed = [call.result() for call in others]
        elapsed = time.monotonic() - started
        assert first.result().status_code == 200
        answered = prefetched.result()
    assert answered.status_code == 200
    assert any("service is busy" in card["detail"] for card in answered.get_json()["cards"])
    assert [response.status_code for response in shed] == [503, 503]
    for response in shed:
        assert response.headers["Retry-After"] == "1"
        outcome = response.get_json()
        assert outcome["resourceType"] == "OperationOutcome"
        assert outcome["issue"][0]["code"] == "transient"
        assert "busy" in outcome["issue"][0]["diagnostics"]
    assert elapsed < 1.8, f"{elapsed:.2f} s"  # at most the one-second wait for a slot
    # load shed by design: logged as a warning (capacity), not an error (fault)
    shed_lines = [
        r for r in caplog.records if r.name == "bonecds.http" and "status=503" in r.message
    ]
    assert len(shed_lines) == 2 and {r.levelname for r in shed_lines} == {"WARNING"}
    FIGURES["busy worker without the patient -> 503"] = f"{elapsed:.2f} s"
