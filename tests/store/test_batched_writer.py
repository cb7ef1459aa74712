"""The store's writer: issued cards and feedback are written in batches (one transaction each) off
the request, flushed within a short interval and at exit, and what a full queue cannot hold is
dropped and counted; feedback calls still get their receipt, or "queued" while the database is
away."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from service.config import Settings
from service.store import store_for
from service.store.base import FeedbackReceipt, IssuedCard
from service.store.resilient import FLUSH_INTERVAL_SECONDS, ResilientStore
from service.store.sqlite import SqliteFeedbackStore

NOW = datetime(2026, 10, 15, 10, 0, tzinfo=UTC)
SIGN = "bonecds-order-sign"
ROOT = Path(__file__).resolve().parents[2]


def item(card: str, minute: int = 5) -> dict:
    return {"card": card, "outcome": "accepted", "outcomeTimestamp": f"2026-10-15T10:{minute:02d}Z"}


class CountingStore:
    """The real store, counting the writer's transactions."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.batches: list[int] = []

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def record_batch(self, writes):
        self.batches.append(len(writes))
        return self.inner.record_batch(writes)


def wait_for(predicate, seconds: float = 5.0) -> float:
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > seconds:
            raise AssertionError(f"not within {seconds:g} s")
        time.sleep(0.005)
    return time.monotonic() - started


def test_a_burst_of_cards_is_one_transaction_written_within_the_interval(database_url):
    counting = CountingStore(store_for(Settings(database_url=database_url)))
    store = ResilientStore(lambda: counting, backend="test")
    for n in range(50):
        store.record_cards(SIGN, f"hook-{n}", [IssuedCard(f"c{n}", "calcium-low", "warning")], NOW)
    seconds = wait_for(lambda: store.pending == 0)
    assert sum(counting.issued_by_rule().values()) == 50
    assert sum(counting.batches) == 50 and len(counting.batches) <= 3  # not one commit per answer
    assert seconds < max(1.0, 10 * FLUSH_INTERVAL_SECONDS)
    # feedback goes through the same writer, behind the cards it is about: a real receipt
    assert store.record_feedback(SIGN, [item("c1"), item("nope")], NOW) == FeedbackReceipt(2, 0, 1)
    assert store.record_feedback(SIGN, [item("c1")], NOW) == FeedbackReceipt(0, 1, 0)
    assert [row["rule_id"] for row in counting.feedback_rows()] == ["calcium-low", None]


def test_what_is_queued_at_exit_is_written(tmp_path):
    """The writer would wait a minute; the process exits at once and the exit flush writes."""
    path = tmp_path / "exit.sqlite3"
    script = f"""
import datetime
import service.store.resilient as resilient
from service.store.base import IssuedCard
from service.store.sqlite import SqliteFeedbackStore
resilient.FLUSH_INTERVAL_SECONDS = 60
store = resilient.ResilientStore(lambda: SqliteFeedbackStore({str(path)!r}), backend="sqlite")
at = datetime.datetime(2026, 10, 15, tzinfo=datetime.UTC)
for n in range(20):
    store.record_cards("s", f"h{{n}}", [IssuedCard(f"c{{n}}", "calcium-low", "warning")], at)
assert store.pending > 0
"""
    subprocess.run([sys.executable, "-c", script], cwd=ROOT, check=True, timeout=60, env=os.environ)
    with sqlite3.connect(path) as connection:
        assert connection.execute("SELECT COUNT(*) FROM issued_card").fetchone()[0] == 20


class BlockedStore:
    """A database that hangs until released, then fails until `up`."""

    def __init__(self, inner: SqliteFeedbackStore) -> None:
        self.inner = inner
        self.release = threading.Event()
        self.up = True

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def record_batch(self, writes):
        self.release.wait(10)
        if not self.up:
            raise ConnectionError("database away")
        return self.inner.record_batch(writes)


def test_a_full_queue_drops_counts_and_keeps_the_rest(tmp_path):
    blocked = BlockedStore(SqliteFeedbackStore(str(tmp_path / "full.sqlite3")))
    events: Counter = Counter()
    store = ResilientStore(
        lambda: blocked,
        backend="sqlite",
        queue_limit=3,
        on_event=lambda event, operation, count: events.update({(event, operation): count}),
    )
    for n in range(6):
        cards = [IssuedCard(f"c{n}-{i}", "calcium-low", "warning") for i in range(2)]
        store.record_cards(SIGN, f"hook-{n}", cards, NOW)
    assert store.pending == 3
    assert events[("dropped", "cards")] == 6  # three answers of two cards each
    late = store.record_feedback(SIGN, [item("c0-0")], NOW)
    assert late.not_kept == 1 and late.stored == 0 and events[("dropped", "feedback")] == 1
    blocked.release.set()
    wait_for(lambda: store.pending == 0)
    assert sum(blocked.inner.issued_by_rule().values()) == 6


def test_feedback_while_the_database_is_away_is_queued_then_written(tmp_path):
    blocked = BlockedStore(SqliteFeedbackStore(str(tmp_path / "away.sqlite3")))
    blocked.release.set()
    blocked.up = False
    events: Counter = Counter()
    store = ResilientStore(
        lambda: blocked,
        backend="sqlite",
        on_event=lambda event, operation, count: events.update({(event, operation): count}),
    )
    first = store.record_feedback(SIGN, [item("a")], NOW)  # the writer tries, fails: "queued"
    second = store.record_feedback(SIGN, [item("b")], NOW)  # known to be away: at once
    assert (first.stored, first.queued) == (0, 1) and (second.stored, second.queued) == (0, 1)
    assert store.status()["queuedWrites"] == 2
    blocked.up = True
    assert store.flush(5.0)
    assert len(blocked.inner.feedback_rows()) == 2
    assert events[("flushed-feedback", "record_feedback")] == 2
    assert events[("error", "record_feedback")] >= 1


@pytest.mark.parametrize("limit", [1, 500])
def test_batches_keep_the_order_of_writes(tmp_path, limit):
    inner = SqliteFeedbackStore(str(tmp_path / f"order-{limit}.sqlite3"))
    store = ResilientStore(lambda: inner, backend="sqlite", batch_limit=limit)
    store.record_cards(SIGN, "h", [IssuedCard("k1", "onj-history", "critical")], NOW)
    assert store.record_feedback(SIGN, [item("k1")], NOW) == FeedbackReceipt(1, 0, 0)
    assert store.flush(5.0) and store.pending == 0
