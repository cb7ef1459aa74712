"""The FHIR path's batch read against a real FHIR server (sekmet, or FHIR_BASE_URL when it offers
batch): the same cards as with parallel GETs, from one batch POST instead of one GET per query,
next pages still read with GETs; a thin proxy in front of the server counts what it is asked."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import httpx
import pytest

from fixtures.builder import draft_orders
from fixtures.load import load_fixtures
from fixtures.prefetch import hook_request, scenario_request
from fixtures.scenarios import scenario
from tests.support.fhir_apps import app_reading_from
from tests.support.order_sign_http import metastatic, new_patient, order, prepared

pytestmark = pytest.mark.integration

SCENARIOS = (
    "stale-creatinine",
    "bisphosphonate-allergy",
    "calcium-low",
    "review-denosumab-stopped",
)
SIGN = "bonecds-order-sign"


@dataclass
class CountingProxy:
    """Forwards every request to the FHIR server and writes down (method, path, query); the server's
    own base URL in the answers (next links, references) becomes the proxy's, so the service sees
    one server."""

    target: str
    seen: list[tuple[str, str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self.client = httpx.Client(timeout=30)
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _forwarder(self))
        self.httpd.daemon_threads = True
        target = urlsplit(self.target)
        self.target_root = f"{target.scheme}://{target.netloc}"
        self.root = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.base_url = self.root + target.path
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.client.close()

    def record(self, method: str, path: str) -> None:
        parts = urlsplit(path)
        with self._lock:
            self.seen.append((method, parts.path, parts.query))

    def kinds(self) -> Counter:
        with self._lock:
            return Counter(
                "metadata" if path.endswith("/metadata") else method.lower()
                for method, path, _ in self.seen
            )

    def clear(self) -> None:
        with self._lock:
            self.seen.clear()


def _forwarder(proxy: CountingProxy) -> type[BaseHTTPRequestHandler]:
    class Forward(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:
            pass

        def do_GET(self) -> None:
            self._forward("GET")

        def do_POST(self) -> None:
            self._forward("POST")

        def _forward(self, method: str) -> None:
            proxy.record(method, self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            headers = {
                k: v
                for k, v in self.headers.items()
                if k.lower() in ("authorization", "accept", "content-type")
            }
            answer = proxy.client.request(
                method, f"{proxy.target_root}{self.path}", content=body, headers=headers
            )
            content = answer.content.replace(proxy.target_root.encode(), proxy.root.encode())
            self.send_response(answer.status_code)
            self.send_header("Content-Type", answer.headers.get("Content-Type", ""))
            self.send_header("Content-Length", str(len(content)))
            self.end_headers()
            self.wfile.write(content)

    return Forward


def paging_patient():
    """A metastatic patient on zoledronic acid, well prepared, with two years of monthly weights and
    creatinine results and quarterly vitamin D: more weights (25) and vitamin D results (8) than
    their templates' _count (20, 5), so those searches page."""
    p = metastatic(prepared(new_patient("batch-paging")))
    for month in range(1, 25):
        p.weight(30 * month + 3, 70 - month * 0.1).creatinine(30 * month + 3, 0.8)
        if month % 3 == 0:
            p.vitamin_d(30 * month + 3, 60)
    return p


@pytest.fixture(scope="module")
def proxy(fhir_server) -> Iterator[CountingProxy]:
    counting = CountingProxy(fhir_server.base_url)
    try:
        yield counting
    finally:
        counting.close()


@pytest.fixture(scope="module")
def loaded(fhir_server, proxy):
    capability = httpx.get(f"{fhir_server.base_url}/metadata", timeout=10).json()
    codes = {
        i.get("code") for rest in capability.get("rest", []) for i in rest.get("interaction", [])
    }
    if "batch" not in codes:
        pytest.skip("this FHIR server does not offer batch")
    chosen = [scenario(name) for name in SCENARIOS]
    paging = paging_patient()
    load_fixtures(
        fhir_server.base_url,
        fhir_server.token,
        [s.patient.transaction() for s in chosen] + [paging.transaction()],
        names=[*SCENARIOS, paging.patient_id],
    )
    return chosen, paging


@pytest.fixture(scope="module")
def apps(proxy, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fhir-batch")
    return {
        batch: app_reading_from(proxy.base_url, tmp / f"{batch}.db", fhir_batch=batch)
        for batch in ("auto", "off")
    }


def without_uuids(value):
    if isinstance(value, dict):
        return {k: without_uuids(v) for k, v in value.items() if k != "uuid"}
    if isinstance(value, list):
        return [without_uuids(v) for v in value]
    return value


def call(app, proxy, body: dict, service_id: str) -> tuple[int, dict, Counter]:
    proxy.clear()
    response = app.test_client().post(f"/cds-services/{service_id}", json=body)
    return response.status_code, response.get_json(), proxy.kinds()


@pytest.mark.parametrize("name", SCENARIOS)
def test_batch_gives_the_cards_of_parallel_gets_from_one_post(
    loaded, apps, proxy, fhir_server, name
):
    scn = scenario(name)
    service = apps["auto"].extensions["bonecds"].services[scn.service_id]
    body = scenario_request(service, scn, fhir_server=proxy.base_url, token=fhir_server.token)
    call(apps["auto"], proxy, body, scn.service_id)  # the CapabilityStatement is read once
    status, batched, asked = call(apps["auto"], proxy, body, scn.service_id)
    assert status == 200 and asked == {"post": 1}, asked
    status, parallel, asked = call(apps["off"], proxy, body, scn.service_id)
    assert status == 200 and asked["post"] == 0 and asked["get"] >= 15, asked
    assert without_uuids(batched) == without_uuids(parallel)
    found = sorted((c["source"]["topic"]["code"], c["indicator"]) for c in batched["cards"])
    assert found == sorted(scn.expected)


def test_next_pages_after_a_batch_are_gets(loaded, apps, proxy, fhir_server):
    paging = loaded[1]
    service = apps["auto"].extensions["bonecds"].services[SIGN]
    body = hook_request(
        service,
        paging.patient_id,
        draft_orders(order(paging)),
        fhir_server=proxy.base_url,
        token=fhir_server.token,
    )
    call(apps["auto"], proxy, body, SIGN)
    status, batched, asked = call(apps["auto"], proxy, body, SIGN)
    pages = [query for method, _, query in proxy.seen if method == "GET"]
    assert status == 200 and asked == {"post": 1, "get": 2}, asked
    # the second pages of the weights and the vitamin D results, never a first page again
    assert all("_offset=" in query for query in pages)
    status, parallel, asked = call(apps["off"], proxy, body, SIGN)
    assert status == 200 and asked["get"] > len(pages)
    assert without_uuids(batched) == without_uuids(parallel)
    metrics = apps["auto"].test_client().get("/metrics").get_data(as_text=True)
    assert 'bonecds_fhir_reads_total{mode="batch"}' in metrics


def test_unknown_patient_in_a_batch_is_412(loaded, apps, proxy, fhir_server):
    service = apps["auto"].extensions["bonecds"].services[SIGN]
    paging = loaded[1]
    drafts = draft_orders(order(paging))
    for entry in drafts["entry"]:
        entry["resource"]["subject"] = {"reference": "Patient/bcds-batch-nobody"}
    body = hook_request(
        service, "bcds-batch-nobody", drafts, fhir_server=proxy.base_url, token=fhir_server.token
    )
    call(apps["auto"], proxy, body, SIGN)
    status, answer, asked = call(apps["auto"], proxy, body, SIGN)
    assert status == 412 and answer["resourceType"] == "OperationOutcome"
    assert asked == {"post": 1}
