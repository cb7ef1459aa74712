"""The first hour without Python: `bonecds example` prints a scenario request dated for the clock's
day, `bonecds evaluate` reads it (or `--scenario`) without writing the feedback store, a closed pipe
ends a command quietly, the preview dates its scenarios for the service clock, and the feedback
report names the override reasons clients send as code and system only."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from fixtures.dates import FIXTURE_ANCHOR_DATE
from fixtures.scenarios import scenario
from service import create_app
from service.cli import main
from service.config import Settings
from service.report import build_report

ROOT = Path(__file__).resolve().parents[2]
BONECDS = str(Path(sys.executable).with_name("bonecds"))


@pytest.fixture()
def env(tmp_path, monkeypatch):
    """A clock frozen one week after the fixtures' anchor day, and a store path that must stay
    untouched."""
    monkeypatch.setenv("BONECDS_NOW", "2026-10-22T09:30:00Z")
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path}/store.sqlite3")
    monkeypatch.setenv("BONECDS_DEV_KEY_FILE", str(tmp_path / "dev-key.json"))
    monkeypatch.delenv("BONECDS_AUTH", raising=False)
    return tmp_path


def _subprocess_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BONECDS_", "DATABASE_URL"))}
    env.update(
        DATABASE_URL=f"sqlite:///{tmp_path}/store.sqlite3",
        BONECDS_DEV_KEY_FILE=str(tmp_path / "dev-key.json"),
        **extra,
    )
    return env


def _calcium_day(request: dict) -> date:
    """The day of the scenario's calcium result, as the request's prefetch carries it."""
    entry = request["prefetch"]["calcium"]["entry"][0]["resource"]
    return date.fromisoformat(entry["effectiveDateTime"][:10])


def test_example_pipes_into_evaluate_and_the_store_stays_unwritten(tmp_path):
    """`bonecds example calcium-low | bonecds evaluate -` through the installed console script, with
    the real clock (dates moved to today)."""
    env = _subprocess_env(tmp_path)
    example = subprocess.run(
        [BONECDS, "example", "calcium-low"], capture_output=True, text=True, env=env, timeout=120
    )
    assert example.returncode == 0, example.stderr
    request = json.loads(example.stdout)
    assert {"hook", "hookInstance", "context", "prefetch"} <= set(request)
    anchored = subprocess.run(
        [BONECDS, "example", "calcium-low", "--at", FIXTURE_ANCHOR_DATE.isoformat()],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    moved = _calcium_day(request) - _calcium_day(json.loads(anchored.stdout))
    assert moved == datetime.now(UTC).date() - FIXTURE_ANCHOR_DATE
    evaluated = subprocess.run(
        [BONECDS, "evaluate", "-"],
        input=example.stdout,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert evaluated.returncode == 0, evaluated.stderr
    assert "[CRITICAL] Calcium 8.06 mg/dL is low" in evaluated.stdout
    # quiet about what only a server needs, and read-only: not even the database file is created
    for server_only in ("authentication is OFF", "preview", "DEVELOPMENT MODE"):
        assert server_only not in evaluated.stderr
    assert not (tmp_path / "store.sqlite3").exists()


def test_example_is_dated_for_the_clock_or_the_day_asked(env, capsys):
    assert main(["example", "calcium-low", "--at", FIXTURE_ANCHOR_DATE.isoformat()]) == 0
    at_anchor = json.loads(capsys.readouterr().out)
    assert main(["example", "calcium-low"]) == 0  # BONECDS_NOW is a week after the anchor
    captured = capsys.readouterr()
    a_week_later = json.loads(captured.out)
    assert "bonecds-order-sign" in captured.err
    assert _calcium_day(a_week_later) - _calcium_day(at_anchor) == timedelta(days=7)
    births = [
        date.fromisoformat(r["prefetch"]["patient"]["birthDate"]) for r in (at_anchor, a_week_later)
    ]
    assert births[1] - births[0] == timedelta(days=7)  # the patient keeps her age
    assert main(["example", "calcium-low", "--service-id"]) == 0
    assert capsys.readouterr().out.strip() == "bonecds-order-sign"


def test_example_without_prefetch_names_the_fhir_server(env, capsys):
    base = "http://127.0.0.1:8090/fhir"
    assert main(["example", "calcium-low", "--fhir-server", base, "--fhir-token", "t0k"]) == 0
    request = json.loads(capsys.readouterr().out)
    assert "prefetch" not in request and request["fhirServer"] == base
    assert request["fhirAuthorization"]["access_token"] == "t0k"
    assert request["context"]["patientId"] == scenario("calcium-low").patient_id


def test_example_list_and_unknown_names(env, capsys):
    assert main(["example", "--list"]) == 0
    listing = capsys.readouterr().out
    line = next(line for line in listing.splitlines() if line.startswith("calcium-low "))
    assert scenario("calcium-low").description in line
    assert main(["example", "calcium-lo"]) == 2
    assert "did you mean calcium-low" in capsys.readouterr().err


def test_evaluate_scenario_is_dated_for_the_clock_and_records_only_when_asked(env, capsys):
    store = env / "store.sqlite3"
    assert main(["evaluate", "--scenario", "calcium-low"]) == 0
    assert "[CRITICAL] Calcium 8.06 mg/dL is low" in capsys.readouterr().out
    assert not store.exists()
    assert main(["evaluate", "--scenario", "calcium-low", "--record"]) == 0
    assert "[CRITICAL]" in capsys.readouterr().out
    with sqlite3.connect(store) as db:
        assert db.execute("SELECT rule_id FROM issued_card").fetchall() == [("calcium-low",)]
    assert main(["evaluate", "--scenario", "no-such-scenario"]) == 2


def test_a_closed_pipe_ends_quietly(tmp_path):
    env = _subprocess_env(tmp_path)
    for command in (
        f"{BONECDS} token | head -c 10",
        f"{BONECDS} example --list | head -n 1",
        f"{BONECDS} example calcium-low | head -c 10",
    ):
        result = subprocess.run(
            ["bash", "-c", f"{command} >/dev/null; echo status=${{PIPESTATUS[0]}}"],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        for noise in ("Traceback", "BrokenPipe", "Exception ignored"):
            assert noise not in result.stderr, (command, result.stderr)
        assert re.search(r"status=[01]$", result.stdout.strip()), result.stdout


def test_preview_dates_the_scenarios_for_the_service_clock(tmp_path, capsys):
    day = date(2027, 3, 9)
    app = create_app(
        Settings(
            database_url=f"sqlite:///{tmp_path}/db.sqlite3",
            auth="off",
            frozen_now=datetime(2027, 3, 9, 8, 0, tzinfo=UTC),
        )
    )
    client = app.test_client()
    body = client.get("/preview/scenarios/calcium-low").json
    assert body["dated"] == day.isoformat()
    assert main(["example", "calcium-low", "--at", day.isoformat()]) == 0
    assert _calcium_day(body["request"]) == _calcium_day(json.loads(capsys.readouterr().out))
    answer = client.post(f"/cds-services/{body['service']}", json=body["request"]).json
    card = answer["cards"][0]
    assert card["source"]["topic"]["code"] == "calcium-low"
    assert card["overrideReasons"]  # the page shows them, and links (preview.html)
    page = client.get("/preview").data.decode()
    assert "overrideReasons" in page and "card.links" in page and 'id="dated"' in page
    assert client.get("/preview/scenarios/no-such-scenario").status_code == 404


class _Store:
    """Feedback rows as the store returns them: a client sent the reason's code and system only."""

    def __init__(self, system: str, code: str) -> None:
        self.row = {
            "service_id": "bonecds-order-sign",
            "card_uuid": "c1",
            "rule_id": "calcium-low",
            "outcome": "overridden",
            "override_system": system,
            "override_code": code,
            "override_display": None,
            "received_at": "2026-10-15T10:00:00+00:00",
        }

    def issued_by_rule(self, since: str = "") -> dict[str, int]:
        return {"calcium-low": 1}

    def feedback_rows(self) -> list[dict]:
        return [self.row]


def test_report_fills_the_reason_display_from_the_knowledge():
    from hooks.knowledge import load_knowledge

    reason = load_knowledge().override_reason("data-outside-record")
    known = _Store(reason["system"], reason["code"])
    reasons = build_report(known, title=lambda _rule: "")["rules"][0]["reasons"]  # type: ignore[arg-type]
    assert reasons[0]["display"] == reason["display"] != ""
    unknown = _Store("http://example.org/local", "other")
    reasons = build_report(unknown, title=lambda _rule: "")["rules"][0]["reasons"]  # type: ignore[arg-type]
    assert reasons[0]["display"] == ""


def test_constraints_lock_the_runtime_dependencies_and_no_test_tools():
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    pins = {}
    for line in (ROOT / "constraints.txt").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[re.sub(r"[-_.]+", "-", name).lower()] = version
    for requirement in project["dependencies"]:
        name, _, version = re.sub(r"\[.*\]", "", requirement).partition("==")
        assert pins.get(re.sub(r"[-_.]+", "-", name).lower()) == version, requirement
    for tool in project["optional-dependencies"]["test"]:
        assert re.sub(r"[-_.]+", "-", tool.partition("==")[0]).lower() not in pins, tool
