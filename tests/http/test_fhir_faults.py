"""The FHIR fallback path against a misbehaving FHIR server: every fault is answered within the time
budget, never with a 5xx, and the cards say what could not be checked and why.

Outcome per fault: when the Patient read itself fails the answer is 412 (OperationOutcome with the
reason); when only the searches fail it is 200 and every card that needed the data says "could not
be retrieved (<reason>)". Timeouts are short (0.5 s per call, 1.5 s in total) so the slowest fault
costs about 1.5 s.
"""

from __future__ import annotations

import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from fixtures.builder import ANCHOR_INSTANT
from fixtures.prefetch import hook_request, transaction_resources
from fixtures.scenarios import scenario
from service import create_app
from service.config import Settings
from tests.support.fhir_server.faulty import FaultyFhirServer
from tests.support.gunicorn import gunicorn

TIMEOUT, BUDGET, MARGIN, MAX_PAGES = 0.5, 1.5, 0.75, 5
TOKEN = "faulty-server-token-7f3a"
SCN = scenario("adjuvant-za-prepared")  # well prepared: no card at all when the server behaves
URL = "/cds-services/bonecds-order-sign"
DATA_CARDS = {
    "renal-data-missing",
    "calcium-data-missing",
    "dental-check-missing",
    "record-incomplete",
}
TIMES: dict[str, float] = {}
# hook calls at once against gunicorn (2 workers x 4 threads; more only measures CPU contention)
CONCURRENT = 4


@pytest.fixture(scope="module")
def servers():
    """The faulty server, and a second one standing for "another host" that must never be asked
    anything."""
    with (
        FaultyFhirServer([]) as other,
        FaultyFhirServer(
            transaction_resources(SCN.patient.transaction()), other_base=other.base_url
        ) as main,
    ):
        yield main, other
    print(
        "\nelapsed per fault (s): "
        + ", ".join(f"{k}={v:.2f}" for k, v in sorted(TIMES.items(), key=lambda kv: -kv[1]))
    )


@pytest.fixture(scope="module")
def fault_client(servers, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("faults")
    app = create_app(
        Settings(
            database_url=f"sqlite:///{tmp}/t.db",
            frozen_now=ANCHOR_INSTANT,
            auth="off",
            fhir_allowlist=(servers[0].base_url,),
            fhir_timeout_seconds=TIMEOUT,
            fhir_budget_seconds=BUDGET,
            fhir_max_pages=MAX_PAGES,
            fhir_breaker_failures=10_000,
        )
    )  # each fault on its own: the breaker is tested elsewhere
    return app.test_client(), app.extensions["bonecds"].services["bonecds-order-sign"]


@pytest.fixture()
def call(servers, fault_client, caplog):
    """Call(label, faults) -> (status, body): posts the order with no prefetch and checks what holds
    for every fault."""
    main, other = servers
    client, service = fault_client

    def run(label: str, faults: dict[str, str]):
        main.reset(faults)
        other.reset()
        body = hook_request(
            service, SCN.patient_id, SCN.draft_orders, fhir_server=main.base_url, token=TOKEN
        )
        started = time.monotonic()
        response = client.post(URL, json=body)
        TIMES[label] = elapsed = time.monotonic() - started
        assert response.status_code < 500, response.get_data(as_text=True)
        assert elapsed < BUDGET + MARGIN, f"{label}: {elapsed:.2f} s"
        time.sleep(0.05)  # let in-flight requests land in the log
        assert other.requests == [], "a request went to another host"
        assert main.requests and all(seen.authorized for seen in main.requests)
        assert not any(seen.path.startswith("/fhir/moved") for seen in main.requests), (
            "a redirect was followed"
        )
        assert TOKEN not in caplog.text and SCN.patient.family not in caplog.text
        return response.status_code, response.get_json()

    return run


def cards_by_rule(body: dict) -> dict[str, dict]:
    return {card["source"]["topic"]["code"]: card for card in body["cards"]}


DATA_FAULTS = {  # searches fail, the Patient read works: 200, each card names the reason
    "hang": "FHIR server timed out",
    "trickle": "within the 1.5 s budget",
    "http500": "HTTP 500",
    "http502": "HTTP 502",
    "http503": "HTTP 503",
    "http401": "HTTP 401",
    "not-found": "HTTP 404",
    "malformed": "not JSON",
    "html": "sent text/html, not FHIR JSON",
    "html-bundle": "sent text/html, not FHIR JSON",
    "not-fhir": "not a FHIR resource",
    "outcome": "answered with an OperationOutcome",
    "huge": "larger than 4 MiB",
    "redirect-foreign": "HTTP 302 (a redirect, not followed)",
    "redirect-local": "HTTP 302 (a redirect, not followed)",
}


@pytest.mark.parametrize("mode", DATA_FAULTS)
def test_failed_searches_are_named_on_the_cards(call, mode):
    status, body = call(mode, {"*": mode, "Patient": "ok"})
    assert status == 200
    cards = cards_by_rule(body)
    assert set(cards) == DATA_CARDS
    for card in cards.values():
        assert card["indicator"] == "warning"
        assert "could not be retrieved" in card["detail"] and DATA_FAULTS[mode] in card["detail"], (
            card["detail"]
        )
    for what in ("Allergies", "Medication orders", "Problem list", "allergy to the ordered agent"):
        assert what in cards["record-incomplete"]["detail"]


# the Patient read fails too: 412 with the reason, never a guess about the patient
PATIENT_FAULTS = {
    "hang": "timed out",
    "trickle": "budget",
    "http500": "HTTP 500",
    "http401": "HTTP 401",
    "not-found": "was not found",
    "malformed": "not JSON",
    "html": "text/html",
    "not-fhir": "not a FHIR resource",
    "outcome": "OperationOutcome",
    "redirect-foreign": "redirect, not followed",
}


@pytest.mark.parametrize("mode", PATIENT_FAULTS)
def test_patient_that_cannot_be_read_is_412(call, mode):
    status, body = call(f"patient-{mode}", {"*": mode})
    assert status == 412
    assert body["resourceType"] == "OperationOutcome"
    assert PATIENT_FAULTS[mode] in body["issue"][0]["diagnostics"]


@pytest.mark.parametrize("mode", ["ok", "slow", "garbage-entries"])
def test_slow_or_sloppy_server_gives_the_full_answer(call, servers, mode):
    """Slow within the timeout, or bundles with junk entries among the real ones: the same (empty)
    answer as a good server."""
    status, body = call(mode, {"*": mode})
    assert (status, body["cards"]) == (200, [])
    # one read per prefetch template (dialysis procedures, stage, magnesium and dental work
    # orders and procedures since rev. 2)
    assert len(servers[0].reads()) == 20


def _per_query(requests) -> Counter:
    return Counter(
        f"{seen.path}?{'&'.join(p for p in seen.query.split('&') if not p.startswith('_page='))}"
        for seen in requests
        if seen.query
    )


# The order is a later dose of a course: the eligibility rules, the only readers of oophorectomy
# procedures, stay quiet on it, so no card names that group.
CUT_SHORT = ("Allergies", "Problem list (conditions)")


@pytest.mark.parametrize("mode, cut_short", [("endless", CUT_SHORT), ("many", CUT_SHORT[1:2])])
def test_paging_and_page_size_are_capped(call, servers, mode, cut_short):
    """An endless next chain stops at the page cap; a server ignoring _count is cut to it.

    Sorted searches keep the newest results; the unsorted ones (problem list, allergies,
    oophorectomy) say they were cut short ("many" copies the first entry 400 times, and this
    patient has no allergy or oophorectomy to copy).
    """
    status, body = call(mode, {"*": mode})
    assert status == 200
    pages = set(_per_query(servers[0].requests).values())
    assert pages == ({MAX_PAGES} if mode == "endless" else {1})
    cards = cards_by_rule(body)
    assert set(cards) == {"record-incomplete"}
    detail = cards["record-incomplete"]["detail"]
    assert detail.count("the rest was not read") == len(cut_short)
    for what in cut_short:
        assert f"{what} could not be retrieved" in detail, detail
    for sorted_group in ("Creatinine", "Medication orders", "Dental", "Calcium"):
        assert (
            f"{sorted_group} results could not" not in detail
            and f"{sorted_group} could not" not in detail
        )


def test_next_link_to_another_host_is_not_followed(call, servers):
    status, body = call("foreign-next", {"*": "foreign-next"})
    assert status == 200
    assert set(_per_query(servers[0].requests).values()) == {1}
    cards = cards_by_rule(body)
    assert "record-incomplete" in cards
    for card in cards.values():
        assert (
            "could not be retrieved" in card["detail"]
            and "next-page link points to another server" in card["detail"]
        )


@pytest.mark.parametrize("mode", ["hang", "http503", "huge"])
def test_one_failing_resource_type_only_costs_its_own_checks(call, mode):
    """Only Observations fail: creatinine, weight, calcium and DXA are reported, medications and
    allergies are not."""
    status, body = call(f"observation-{mode}", {"Observation": mode})
    assert status == 200
    cards = cards_by_rule(body)
    assert {"renal-data-missing", "calcium-data-missing"} <= set(
        cards
    ) and "dental-check-missing" not in cards
    assert "Allergies" not in cards.get("record-incomplete", {}).get("detail", "")


def test_gunicorn_answers_concurrent_calls_to_a_hanging_server_within_budget(
    servers, tmp_path, service
):
    """The service as deployed (gunicorn, 2 workers of 4 threads): calls at once while the server
    hangs or trickles."""
    main, other = servers
    env = {
        "BONECDS_NOW": ANCHOR_INSTANT.isoformat(),
        "DATABASE_URL": f"sqlite:///{tmp_path}/f.db",
        "BONECDS_AUTH": "off",
        "BONECDS_FHIR_ALLOWLIST": main.base_url,
        "BONECDS_FHIR_TIMEOUT": str(TIMEOUT),
        "BONECDS_FHIR_BUDGET": str(BUDGET),
        "BONECDS_FHIR_BREAKER_FAILURES": "10000",
    }
    log_path = tmp_path / "service.log"
    body = hook_request(
        service, SCN.patient_id, SCN.draft_orders, fhir_server=main.base_url, token=TOKEN
    )
    with gunicorn(env, log_path) as base:

        def timed(_) -> tuple[int, set[str], float]:
            started = time.monotonic()
            response = httpx.post(f"{base}{URL}", json=body, timeout=10)
            assert response.status_code == 200, log_path.read_text()[-3000:]
            return (
                response.status_code,
                set(cards_by_rule(response.json())),
                time.monotonic() - started,
            )

        # "ok" first: each worker's first call pays one-time costs
        for mode in (
            "ok",
            "hang",
            "trickle",
        ):
            main.reset({"*": mode, "Patient": "ok"})
            with ThreadPoolExecutor(CONCURRENT) as pool:
                results = list(pool.map(timed, range(CONCURRENT)))
            TIMES[f"gunicorn-{CONCURRENT}x-{mode}"] = slowest = max(
                elapsed for _, _, elapsed in results
            )
            assert all(
                cards == (set() if mode == "ok" else DATA_CARDS) for _, cards, _ in results
            ), results
            assert slowest < BUDGET + MARGIN, f"{mode}: {slowest:.2f} s"
    assert other.requests == []
    log_text = log_path.read_text()
    assert "fetched=" in log_text and TOKEN not in log_text and SCN.patient.family not in log_text
