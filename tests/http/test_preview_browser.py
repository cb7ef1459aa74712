"""The development card preview page: served only when auth is "dev" or "off", and it shows the
cards in a real browser.

The browser test starts the service as users run it (`bonecds serve`) and drives headless Chromium
through chromedriver with the raw W3C WebDriver HTTP API (httpx, no Selenium dependency). Chromium
comes from apt (`scripts/dev.py test` installs `chromium` and `chromium-driver` when missing).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from fixtures.builder import ANCHOR_INSTANT
from fixtures.scenarios import scenario
from service import create_app
from service.config import Settings

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


# --- registration (Flask test client) -------------------------------------------------------------


def _app(tmp_path, auth: str):
    clients = tmp_path / "clients.json"
    jwk = json.loads(ECAlgorithm.to_jwk(ec.generate_private_key(ec.SECP384R1()).public_key()))
    jwk.update(kid="preview-1", alg="ES384", use="sig")
    clients.write_text(
        json.dumps({"clients": [{"iss": "https://ehr.preview.test/", "jwks": {"keys": [jwk]}}]})
    )
    return create_app(
        Settings(
            database_url=f"sqlite:///{tmp_path}/db.sqlite3",
            auth=auth,
            clients_file=str(clients),
            dev_key_path=str(tmp_path / "dev-key.json"),
            frozen_now=ANCHOR_INSTANT,
        )
    )


def test_preview_is_absent_when_auth_is_on(tmp_path):
    client = _app(tmp_path, "on").test_client()
    for path in (
        "/preview",
        "/preview/scenarios",
        "/preview/scenarios/calcium-low",
        "/preview/token?aud=/cds-services",
    ):
        assert client.get(path).status_code == 404, path


def test_preview_in_dev_mode_mints_tokens_the_service_accepts(tmp_path):
    client = _app(tmp_path, "dev").test_client()
    page = client.get("/preview")
    assert (
        page.status_code == 200 and b"<select" in page.data and b'const AUTH = "dev"' in page.data
    )
    # self-contained
    assert b"http://" not in page.data.replace(b"https?:\\/\\/", b"") and b"<link" not in page.data
    names = {s["name"] for s in client.get("/preview/scenarios").json}
    assert {"calcium-low", "adjuvant-za-prepared"} <= names
    body = client.get("/preview/scenarios/calcium-low").json
    assert body["service"] == "bonecds-order-sign" and body["request"]["hook"] == "order-sign"
    path = "/cds-services/bonecds-order-sign"
    assert client.post(path, json=body["request"]).status_code == 401
    token = client.get(f"/preview/token?aud={path}").json["token"]
    answer = client.post(path, json=body["request"], headers={"Authorization": f"Bearer {token}"})
    assert (
        answer.status_code == 200
        and answer.json["cards"][0]["source"]["topic"]["code"] == "calcium-low"
    )
    assert client.get("/preview/token?aud=https://elsewhere.example/").status_code == 400


def test_no_token_endpoint_when_auth_is_off(tmp_path):
    client = _app(tmp_path, "off").test_client()
    assert client.get("/preview").status_code == 200
    assert client.get("/preview/token?aud=/cds-services/bonecds-order-sign").status_code == 404


# --- the real service in headless Chromium --------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_http(url: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} did not answer in {seconds} s")


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@pytest.fixture(scope="module")
def preview_service(tmp_path_factory):
    """`bonecds serve` with authentication off (so the preview page is on), clock frozen at the
    fixtures' anchor."""
    port = _free_port()
    workdir = tmp_path_factory.mktemp("preview-service")
    database = workdir / "feedback.sqlite3"
    env = {
        **os.environ,
        "BONECDS_AUTH": "off",
        "BONECDS_NOW": "2026-10-15T10:00:00Z",
        "DATABASE_URL": f"sqlite:///{database}",
    }
    env.pop("BONECDS_CLIENTS_FILE", None)
    log = open(workdir / "service.log", "wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "service.cli",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        try:
            _wait_http(f"{base}/readyz")
        except AssertionError as err:
            log_tail = (workdir / "service.log").read_text(errors="replace")[-4000:]
            raise AssertionError(log_tail) from err
        yield base, database
    finally:
        _stop(process)
        log.close()


def _element(reference: dict) -> str:
    """A WebDriver element reference is a one-key object (the W3C web element identifier) holding
    the element id."""
    return next(iter(reference.values()))


class WebDriver:
    """Just enough of the W3C WebDriver protocol, over HTTP to chromedriver."""

    def __init__(self, url: str) -> None:
        self.http = httpx.Client(base_url=url, timeout=60)
        self.session: str | None = None

    def call(self, method: str, path: str, body: dict | None = None):
        prefix = f"/session/{self.session}" if self.session else ""
        response = self.http.request(method, prefix + path, json=body if method == "POST" else None)
        value = response.json().get("value")
        if response.status_code != 200:
            raise AssertionError(f"WebDriver {method} {path}: {response.status_code} {value}")
        return value

    def start(self, chromium: str, profile: Path) -> None:
        args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            "--window-size=1280,1000",
        ]
        value = self.call(
            "POST",
            "/session",
            {
                "capabilities": {
                    "alwaysMatch": {
                        "browserName": "chrome",
                        "goog:chromeOptions": {"binary": chromium, "args": args},
                    }
                }
            },
        )
        self.session = value["sessionId"]

    def quit(self) -> None:
        if self.session:
            try:
                self.call("DELETE", "")
            finally:
                self.session = None
        self.http.close()

    def find(self, css: str) -> str:
        return _element(self.call("POST", "/element", {"using": "css selector", "value": css}))

    def find_all(self, css: str) -> list[str]:
        return [
            _element(e)
            for e in self.call("POST", "/elements", {"using": "css selector", "value": css})
        ]

    def script(self, source: str, *args):
        return self.call("POST", "/execute/sync", {"script": source, "args": list(args)})

    def wait(self, source: str, *args, seconds: float = 20):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            result = self.script(source, *args)
            if result:
                return result
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for: {source}")


@pytest.fixture
def browser(tmp_path):
    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        pytest.fail(
            "chromium and chromedriver are needed: apt-get install chromium chromium-driver "
            "(scripts/dev.py test installs them)"
        )
    port = _free_port()
    log = open(tmp_path / "chromedriver.log", "wb")
    driver_process = subprocess.Popen(
        [CHROMEDRIVER, f"--port={port}"], stdout=log, stderr=subprocess.STDOUT
    )
    driver = WebDriver(f"http://127.0.0.1:{port}")
    try:
        _wait_http(f"http://127.0.0.1:{port}/status")
        driver.start(CHROMIUM, tmp_path / "chromium-profile")
        yield driver
    finally:
        try:
            driver.quit()  # closes Chromium
        finally:
            _stop(driver_process)
            log.close()


def _run_scenario(driver: WebDriver, base: str, name: str) -> None:
    driver.call("POST", "/url", {"url": f"{base}/preview"})
    driver.wait("return document.body.dataset.ready === '1'")
    driver.script(
        "const s = document.getElementById('scenario'); s.value = arguments[0];"
        "s.dispatchEvent(new Event('change'));",
        name,
    )
    driver.wait("return document.body.dataset.loaded === arguments[0]", name)
    driver.call("POST", f"/element/{driver.find('#run')}/click", {})
    driver.wait("return /card\\(s\\) from/.test(document.getElementById('status').textContent)")


def test_calcium_low_card_in_the_browser(preview_service, browser, tmp_path):
    base, database = preview_service
    _run_scenario(browser, base, "calcium-low")
    cards = browser.find_all("#cards .card")
    assert len(cards) == 1
    card = cards[0]
    assert "indicator-critical" in browser.call("GET", f"/element/{card}/attribute/class").split()
    assert browser.call("GET", f"/element/{card}/attribute/data-rule") == "calcium-low"
    expected = scenario("calcium-low")
    text = browser.call("GET", f"/element/{card}/text")
    assert "Calcium 8.06 mg/dL is low: correct it before zoledronic acid" in text
    strong = browser.find_all("#cards .card .detail strong")
    assert strong and "Do not give zoledronic acid" in browser.call(
        "GET", f"/element/{strong[0]}/text"
    )
    assert "**" not in text and "<strong>" not in text  # rendered, not shown as markup
    buttons = browser.find_all("#cards .card button.suggestion")
    assert (
        len(buttons) == 1
        and browser.call("GET", f"/element/{buttons[0]}/text") == "Remove this order"
    )
    # what the EHR offers on dismissal, and the day the scenario's dates were moved to
    overrides = browser.find_all("#cards .card button.override")
    assert overrides and all(browser.call("GET", f"/element/{b}/text") for b in overrides)
    dated = browser.call("GET", f"/element/{browser.find('#dated')}/text")
    assert "2026-10-15" in dated  # BONECDS_NOW's day

    png = base64.b64decode(browser.call("GET", "/screenshot"))
    shot = tmp_path / "calcium-low.png"
    shot.write_bytes(png)
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5 * 1024

    browser.call("POST", f"/element/{buttons[0]}/click", {})
    browser.wait(
        "return (document.querySelector('#cards .card .feedback-sent') || {}).textContent ==="
        " 'Feedback sent'"
    )
    with sqlite3.connect(database) as db:
        rows = db.execute("SELECT * FROM feedback").fetchall()
        names = [d[0] for d in db.execute("SELECT * FROM feedback").description]
    stored = [dict(zip(names, row, strict=True)) for row in rows]
    assert len(stored) == 1 and stored[0]["outcome"] == "accepted"
    assert expected.service_id == "bonecds-order-sign"


def test_quiet_scenario_shows_no_cards(preview_service, browser):
    base, _ = preview_service
    _run_scenario(browser, base, "adjuvant-za-prepared")
    assert browser.find_all("#cards .card") == []
    assert browser.call("GET", f"/element/{browser.find('#cards .empty')}/text") == "No cards"
