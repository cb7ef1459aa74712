"""`bonecds feedback-report` on a seeded store (SQLite and PostgreSQL): exact table rows and rates,
JSON with --since, the SVG chart's bars, ticks, labels and title, and an empty store."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime

import pytest

from hooks.knowledge import load_knowledge
from service.cli import main
from service.config import Settings
from service.store import store_for
from service.store.base import IssuedCard

NOW, OLD = (
    datetime(2026, 10, 15, 10, 0, tzinfo=UTC),
    datetime(2025, 3, 1, 9, 0, tzinfo=UTC),
)
SIGN, SVG = "bonecds-order-sign", "{http://www.w3.org/2000/svg}"
SNOMED = "http://snomed.info/sct"


def fb(
    card: str, outcome: str, minute: int = 5, code: str | None = None, display: str | None = None
) -> dict:
    item = {"card": card, "outcome": outcome, "outcomeTimestamp": f"2026-10-15T10:{minute:02d}:00Z"}
    if code:
        item["overrideReason"] = {"reason": {"system": SNOMED, "code": code, "display": display}}
    return item


def seed(database_url: str) -> None:
    store = store_for(Settings(database_url=database_url))
    cards = [
        ("a1", "renal-dose-adjust"),
        ("a2", "renal-dose-adjust"),
        ("a3", "renal-dose-adjust"),
        ("b1", "dental-check-missing"),
        ("b2", "dental-check-missing"),
        ("b3", "dental-check-missing"),
        ("b4", "dental-check-missing"),
        ("c1", "vitamin-d-low"),
        ("c2", "vitamin-d-low"),
        ("d1", "calcium-data-missing"),
    ]
    store.record_cards(SIGN, "hook-1", [IssuedCard(c, r, "warning") for c, r in cards], NOW)
    store.record_cards(SIGN, "hook-0", [IssuedCard("o1", "onj-history", "critical")], OLD)
    store.record_feedback(
        SIGN,
        [
            fb("a1", "overridden", 1, "declined", "Patient declined"),
            fb(
                "a1", "overridden", 2, "declined", "Patient declined"
            ),  # the same card twice: counted once
            fb("a2", "overridden", 3, "declined", "Patient declined"),
            fb("a3", "accepted"),
            fb("b1", "overridden", 4, "elsewhere", "Done elsewhere"),
            fb("b2", "overridden", 5),
            fb("b3", "accepted"),
            fb("b4", "accepted"),
            fb("c1", "overridden", 6, "elsewhere", "Done elsewhere"),
            fb("c2", "accepted"),
            fb("zz", "overridden", 7, "declined"),  # a card this service never issued
        ],
        NOW,
    )
    store.record_feedback(SIGN, [fb("o1", "accepted")], OLD)


def run(capsys, monkeypatch, database_url: str, *args: str) -> tuple[int, str, str]:
    monkeypatch.setenv("DATABASE_URL", database_url)
    code = main(["feedback-report", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_table_rates_reasons_and_chart(database_url, tmp_path, capsys, monkeypatch):
    seed(database_url)
    chart = tmp_path / "rates.svg"
    code, out, err = run(capsys, monkeypatch, database_url, "--chart", str(chart))
    assert code == 0 and "reading the feedback store" in err and f"chart written to {chart}" in err
    title = {
        r: load_knowledge().rule_meta(r)["title"]
        for r in (
            "renal-dose-adjust",
            "dental-check-missing",
            "vitamin-d-low",
            "onj-history",
            "calcium-data-missing",
        )
    }
    lines = out.splitlines()
    table = lines[2 : lines.index("", 2)]
    assert len({len(line) for line in table}) == 1  # aligned: last column right-aligned
    assert [re.split(r"\s{2,}", line) for line in table] == [
        ["rule id", "title", "issued", "feedback", "accepted", "overridden", "override", "accept"],
        ["renal-dose-adjust", title["renal-dose-adjust"], "3", "3", "1", "2", "66.7 %", "33.3 %"],
        [
            "dental-check-missing",
            title["dental-check-missing"],
            "4",
            "4",
            "2",
            "2",
            "50.0 %",
            "50.0 %",
        ],
        ["vitamin-d-low", title["vitamin-d-low"], "2", "2", "1", "1", "50.0 %", "50.0 %"],
        ["onj-history", title["onj-history"], "1", "1", "1", "0", "0.0 %", "100.0 %"],
        ["calcium-data-missing", title["calcium-data-missing"], "1", "0", "0", "0", "-", "-"],
    ]
    reasons = lines[lines.index("Override reasons") + 2 :]
    assert [re.split(r"\s{2,}", line) for line in reasons[:5]] == [
        ["rule id", "reason (system|code)", "display", "overrides", "of rule's overrides"],
        ["renal-dose-adjust", f"{SNOMED}|declined", "Patient declined", "2", "100.0 %"],
        ["dental-check-missing", "-", "(no reason given)", "1", "50.0 %"],
        ["dental-check-missing", f"{SNOMED}|elsewhere", "Done elsewhere", "1", "50.0 %"],
        ["vitamin-d-low", f"{SNOMED}|elsewhere", "Done elsewhere", "1", "100.0 %"],
    ]
    assert out.rstrip().endswith(
        "1 feedback item(s) for cards this service did not issue are left out."
    )

    root = ET.parse(chart).getroot()  # noqa: S314  (the chart this test just wrote)
    assert root.find(f"{SVG}title").text == "Override rate per rule"
    assert root.find(f"{SVG}text[@class='title']").text == "Override rate per rule"
    ticks = {
        int(t.get("data-percent")): float(t.get("x1"))
        for t in root.iter(f"{SVG}line")
        if t.get("class") == "tick"
    }
    assert sorted(ticks) == [0, 25, 50, 75, 100]
    axis = ticks[100] - ticks[0]
    assert ticks[50] - ticks[0] == pytest.approx(axis / 2) and axis > 0
    bars = [g for g in root.iter(f"{SVG}g") if g.get("class") == "bar"]
    assert [g.get("data-rule") for g in bars] == [
        "renal-dose-adjust",
        "dental-check-missing",
        "vitamin-d-low",
        "onj-history",
        "calcium-data-missing",
    ]
    expected = {
        "renal-dose-adjust": (2 / 3, "(2/3 overridden, 3 issued)"),
        "dental-check-missing": (0.5, "(2/4 overridden, 4 issued)"),
        "vitamin-d-low": (0.5, "(1/2 overridden, 2 issued)"),
        "onj-history": (0.0, "(0/1 overridden, 1 issued)"),
    }
    for bar in bars:
        label = bar.find(f"{SVG}text[@class='label']").text
        rule = bar.get("data-rule")
        assert label.startswith(rule)
        if rule == "calcium-data-missing":
            assert bar.find(f"{SVG}rect") is None and "(0/0 overridden, 1 issued)" in label
            continue
        rate, counts = expected[rule]
        assert counts in label
        override, accept = (
            bar.find(f"{SVG}rect[@class='override']"),
            bar.find(f"{SVG}rect[@class='acceptance']"),
        )
        assert float(override.get("x")) == pytest.approx(ticks[0])
        assert float(override.get("width")) / axis == pytest.approx(rate, abs=1e-4)
        assert float(accept.get("width")) / axis == pytest.approx(1 - rate, abs=1e-4)


def test_json_since_leaves_out_older_cards_and_feedback(tmp_path, capsys, monkeypatch):
    url = f"sqlite:///{tmp_path}/store.sqlite3"
    seed(url)
    code, out, _ = run(capsys, monkeypatch, url, "--json", "--since", "2026-01-01")
    report = json.loads(out)
    assert code == 0 and report["since"] == "2026-01-01" and report["unknown_card_feedback"] == 1
    rows = {r["rule_id"]: r for r in report["rules"]}
    assert "onj-history" not in rows and len(rows) == 4
    assert rows["renal-dose-adjust"]["override_rate"] == pytest.approx(2 / 3)
    assert rows["renal-dose-adjust"]["reasons"] == [
        {
            "system": SNOMED,
            "code": "declined",
            "display": "Patient declined",
            "count": 2,
            "share": 1.0,
        }
    ]
    with pytest.raises(SystemExit):
        main(["feedback-report", "--since", "last week"])


def test_empty_store_says_so_and_succeeds(tmp_path, capsys, monkeypatch):
    chart = tmp_path / "rates.svg"
    code, out, err = run(
        capsys, monkeypatch, f"sqlite:///{tmp_path}/empty.sqlite3", "--chart", str(chart)
    )
    assert (
        code == 0
        and "No cards issued and no feedback recorded" in out
        and "nothing to report" in out
    )
    assert not chart.exists() and "no chart written" in err
