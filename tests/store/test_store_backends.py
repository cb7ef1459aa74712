"""Both feedback stores, SQLite and PostgreSQL (a real server started for the session by
tests/support/pg_server.py), behave the same: idempotent feedback, unknown cards per service,
override statistics, the JWT replay cache shared by replicas (two app instances on one
DATABASE_URL), no rows lost under concurrent writers in several processes, readiness, and a quick,
password-free error for an unreachable PostgreSQL server."""

from __future__ import annotations

import multiprocessing
import os
import socket
import sqlite3
import threading
import time
from datetime import UTC, datetime
from urllib.parse import quote

import psycopg
import pytest

from fixtures.builder import ANCHOR_INSTANT
from service import create_app
from service.config import Settings
from service.store import store_for
from service.store.base import FeedbackReceipt, IssuedCard
from service.store.postgres import PURGE_SQL as POSTGRES_PURGE
from service.store.sqlite import PURGE_SQL as SQLITE_PURGE
from service.store.sqlite import SqliteFeedbackStore
from tests.support.jwt_clients import BASE, call, token_for
from tests.support.pg_server import PASSWORD

NOW = datetime(2026, 10, 15, 10, 0, tzinfo=UTC)
SIGN, SELECT = "bonecds-order-sign", "bonecds-order-select"


@pytest.fixture()
def store(database_url):
    return store_for(Settings(database_url=database_url))


def table_count(database_url: str, table: str) -> int:
    # the table names come from the tests themselves, never from input
    if database_url.startswith("sqlite:///"):
        with sqlite3.connect(database_url[len("sqlite:///") :]) as connection:
            return connection.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]  # noqa: S608
    with psycopg.connect(database_url) as connection:
        return connection.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]  # noqa: S608


def item(card: str, outcome: str = "overridden", minute: int = 5, **extra) -> dict:
    return {
        "card": card,
        "outcome": outcome,
        "outcomeTimestamp": f"2026-10-15T10:{minute:02d}:00Z",
        **extra,
    }


def test_feedback_is_stored_once_and_a_card_is_known_only_on_its_service(store):
    store.record_cards(SIGN, "hook-1", [IssuedCard("c1", "renal-dose-adjust", "warning")], NOW)
    reason = {
        "reason": {"system": "http://s", "code": "cds-not-applicable"},
        "userComment": "reduced already",
    }
    accepted = item("c1", "accepted", acceptedSuggestions=[{"id": "s1"}])
    batch = [accepted, dict(accepted), item("c1", overrideReason=reason), item("unknown-card")]
    receipt = store.record_feedback(SIGN, batch, NOW)
    assert receipt == FeedbackReceipt(3, 1, 1)
    assert receipt.outcomes == (
        ("accepted", "renal-dose-adjust"),
        ("overridden", "renal-dose-adjust"),
        ("overridden", None),
    )
    assert store.record_feedback(SIGN, batch, NOW) == FeedbackReceipt(0, 4, 0)
    # c1 was issued by order-sign, not by order-select
    assert store.record_feedback(SELECT, [item("c1")], NOW) == FeedbackReceipt(1, 0, 1)
    rows = store.feedback_rows()
    assert [(r["service_id"], r["card_uuid"], r["rule_id"], r["known_card"]) for r in rows] == [
        (SIGN, "c1", "renal-dose-adjust", 1),
        (SIGN, "c1", "renal-dose-adjust", 1),
        (SIGN, "unknown-card", None, 0),
        (SELECT, "c1", None, 0),
    ]
    assert [
        (r["accepted_suggestions"], r["override_code"], r["user_comment"]) for r in rows[:2]
    ] == [('["s1"]', None, None), (None, "cds-not-applicable", "reduced already")]


def test_override_statistics_count_cards_answered_on_the_issuing_service(store):
    store.record_cards(
        SIGN,
        "hook-1",
        [IssuedCard(c, "renal-dose-adjust", "warning") for c in ("c1", "c2", "c3")],
        NOW,
    )
    store.record_cards(SIGN, "hook-2", [IssuedCard("c4", "calcium-low", "critical")], NOW)
    # a repeat is one card
    store.record_cards(SIGN, "hook-2", [IssuedCard("c4", "calcium-low", "critical")], NOW)
    answers = [
        item("c1", "accepted", acceptedSuggestions=[{"id": "s"}]),
        item("c2"),
        item("c2", minute=9),
    ]
    store.record_feedback(SIGN, answers, NOW)
    # sent to the wrong service: not an override of calcium-low
    store.record_feedback(SELECT, [item("c4")], NOW)
    assert store.outcomes_by_rule() == [
        {
            "rule_id": "calcium-low",
            "issued": 1,
            "accepted": 0,
            "overridden": 0,
            "override_rate": None,
        },
        {
            "rule_id": "renal-dose-adjust",
            "issued": 3,
            "accepted": 1,
            "overridden": 1,
            "override_rate": 0.5,
        },
    ]


def test_a_jti_is_claimed_once_per_issuer_and_expired_rows_are_purged(store, database_url):
    now = 1_800_000_000.0
    assert store.claim_jti("iss-a", "j1", now + 60, now) is True
    assert store.claim_jti("iss-a", "j1", now + 60, now + 1) is False
    assert store.claim_jti("iss-b", "j1", now + 90, now + 1) is True
    assert table_count(database_url, "jwt_replay") == 2
    assert store.claim_jti("iss-a", "j2", now + 200, now + 61) is True  # iss-a/j1 expired: purged
    assert table_count(database_url, "jwt_replay") == 2
    # expired, so claimable again
    assert store.claim_jti("iss-b", "j1", now + 300, now + 91) is True
    assert store.claim_jti("iss-b", "j1", now + 300, now + 92) is False


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
@pytest.mark.parametrize("pipeline", [True, False], ids=["pipelined", "libpq-without-pipeline"])
def test_a_jti_claim_on_postgresql_works_with_and_without_libpq_pipelines(
    database_url, monkeypatch, pipeline
):
    """Claims go to PostgreSQL in one round trip where libpq can pipeline (14 and later, always
    with psycopg[binary]); an older libpq (psycopg[c] on an old system) gets the same answers."""
    if not pipeline:  # as psycopg answers over a libpq without pipeline mode

        def has_pipeline(check: bool = False) -> bool:
            if check:
                raise psycopg.NotSupportedError("pipeline mode needs libpq 14")
            return False

        monkeypatch.setattr(psycopg.capabilities, "has_pipeline", has_pipeline)
    store = store_for(Settings(database_url=database_url))
    now = 1_800_000_000.0
    assert store.claim_jti("iss-a", "j1", now + 60, now) is True
    assert store.claim_jti("iss-a", "j1", now + 60, now + 1) is False
    assert store.claim_jti("iss-a", "j1", now + 200, now + 61) is True  # expired: claimable again
    assert table_count(database_url, "jwt_replay") == 1


def test_the_purge_before_each_claim_reads_only_expired_rows_through_the_expiry_index(
    store, database_url
):
    """The replay cache holds every token still valid (minutes of traffic); the purge that runs
    before each claim, under the write lock, must not read them all."""
    now = 1_800_000_000.0
    store.claim_jti("iss-a", "j0", now + 300, now)
    if database_url.startswith("sqlite:///"):
        with sqlite3.connect(database_url[len("sqlite:///") :]) as connection:
            plan = connection.execute(f"EXPLAIN QUERY PLAN {SQLITE_PURGE}", (now,)).fetchall()
        assert "USING INDEX jwt_replay_expiry (expires_at<?)" in " ".join(row[-1] for row in plan)
        return
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute(
            "INSERT INTO jwt_replay SELECT 'iss-b', 'j' || n, %s FROM generate_series(1, 20000) n",
            (now + 300,),
        )
        connection.execute("ANALYZE jwt_replay")
        plan = connection.execute(f"EXPLAIN {POSTGRES_PURGE}", (now,)).fetchall()
    assert "jwt_replay_expiry" in "\n".join(row[0] for row in plan)


def test_two_replicas_on_one_database_refuse_a_replay_and_share_feedback(
    database_url,
    clients_file,
    keys,
    caplog,
):
    # the second replica spells the scheme the other accepted way
    if database_url.startswith("postgresql://"):
        urls = (database_url, "postgres://" + database_url[len("postgresql://") :])
    else:
        urls = (database_url, database_url)
    replicas = [
        create_app(
            Settings(
                database_url=url,
                frozen_now=ANCHOR_INSTANT,
                public_base_url=BASE,
                auth="on",
                clients_file=clients_file,
            )
        )
        for url in urls
    ]
    first, second = (app.test_client() for app in replicas)
    token = token_for(keys, "discovery")
    assert [call(c, "discovery", token).status_code for c in (first, second, first)] == [
        200,
        401,
        401,
    ]
    assert call(second, "discovery", token_for(keys, "discovery")).status_code == 200
    feedback = [
        call(c, "feedback", token_for(keys, "feedback")).get_json() for c in (first, second)
    ]
    assert feedback == [
        {"stored": 1, "duplicates": 0, "unknownCards": 1},
        {"stored": 0, "duplicates": 1, "unknownCards": 0},
    ]
    # One token presented to both replicas at once by 8 threads: exactly one is let in.
    token, results = token_for(keys, "discovery"), []
    threads = [
        threading.Thread(
            target=lambda app=replicas[i % 2]: results.append(
                call(app.test_client(), "discovery", token).status_code
            )
        )
        for i in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [200] + [401] * 7
    assert PASSWORD not in caplog.text


def write_feedback(store, worker: int, results) -> None:
    """One process: 3 threads, each sending 10 batches of its own feedback plus 4 items every writer
    sends, in an order that differs from writer to writer (opposite orders must not deadlock)."""

    def thread(index: int) -> None:
        writer = worker * 3 + index
        shared = [item(f"shared-{n}", minute=n) for n in range(4)]
        for batch in range(10):
            own = [item(f"w{writer}-b{batch}-{n}") for n in range(3)]
            try:
                receipt = store.record_feedback(
                    SIGN, own + (shared if writer % 2 else shared[::-1]), NOW
                )
                results.put((receipt.stored, receipt.duplicates))
            except Exception as error:  # noqa: BLE001 - reported to the parent, which fails the test
                results.put((0, repr(error)))

    threads = [threading.Thread(target=thread, args=(i,)) for i in (1, 2)]
    for t in threads:
        t.start()
    thread(0)  # the main thread, whose connection slot the fork copied from the parent
    for t in threads:
        t.join()


def test_concurrent_feedback_from_several_processes_loses_no_rows(store):
    # the parent holds a connection the children must not use
    store.record_feedback(SIGN, [item("before-fork")], NOW)
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    processes = [
        context.Process(target=write_feedback, args=(store, w, results), daemon=True)
        for w in range(4)
    ]
    for process in processes:
        process.start()
    receipts = [results.get(timeout=60) for _ in range(4 * 3 * 10)]
    for process in processes:
        process.join(timeout=60)
    assert [p.exitcode for p in processes] == [0] * 4
    assert [error for _, error in receipts if isinstance(error, str)] == []
    expected = 12 * 10 * 3 + 4  # every writer's own items, and the shared items once
    assert sum(stored for stored, _ in receipts) == expected
    assert sum(duplicates for _, duplicates in receipts) == 12 * 10 * 4 - 4
    assert len(store.feedback_rows()) == expected + 1


def test_readiness_is_ok_and_survives_a_lost_connection(database_url):
    app = create_app(Settings(database_url=database_url, auth="off"))
    client = app.test_client()
    assert client.get("/readyz").get_json()["status"] == "ready"
    # the server drops every session (a restart, a fail-over)
    if database_url.startswith("postgresql://"):
        with psycopg.connect(database_url, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
    response = client.get("/readyz")
    assert response.status_code == 200 and response.get_json()["status"] == "ready"


def test_an_unreachable_postgresql_starts_degraded_quickly_without_the_password(caplog):
    """The service starts without its database (safety checks do not need it) and says so, never
    with the password."""
    # accepts TCP connections but never answers: only the connect timeout ends the wait
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))  # bound, not listening: connection refused
    try:
        for port, query in (
            (silent.getsockname()[1], ""),
            (closed.getsockname()[1], "?connect_timeout=2"),
        ):
            url = f"postgresql://bonecds:{quote(PASSWORD, safe='')}@127.0.0.1:{port}/db{query}"
            started = time.monotonic()
            app = create_app(Settings(database_url=url, auth="off"))
            assert time.monotonic() - started < 6  # the default connect timeout is 3 s
            ready = app.test_client().get("/readyz")
            assert ready.status_code == 200 and ready.get_json()["status"] == "degraded"
            assert ready.get_json()["database"].startswith("unreachable")
        assert "database unreachable" in caplog.text
        assert PASSWORD not in caplog.text and quote(PASSWORD, safe="") not in caplog.text
    finally:
        silent.close()
        closed.close()


@pytest.mark.parametrize(
    "url, backend",
    [
        ("sqlite:///var/x.sqlite3", "sqlite"),
        ("postgresql://u:p@h/db", "postgresql"),
        ("postgres://u:p@h:5432/db", "postgresql"),
        ("mysql://u:secret@h/db", None),
    ],
)
def test_database_url_scheme_picks_the_backend(url, backend):
    settings = Settings(database_url=url)
    if backend is None:
        with pytest.raises(ValueError, match="must be sqlite:///PATH or postgresql://") as error:
            _ = settings.database_backend
        assert "secret" not in str(error.value)
    else:
        assert settings.database_backend == backend
    if backend != "sqlite":
        with pytest.raises(ValueError):
            _ = settings.sqlite_path


def test_a_sqlite_worker_forked_while_the_master_was_writing_can_write(tmp_path):
    """gunicorn forks workers from a preloaded master: a write lock held by one of the master's
    threads at that moment must not be held forever in the worker."""
    sqlite_store = SqliteFeedbackStore(str(tmp_path / "forked.sqlite3"))
    # a master thread inside a write (its transaction ends in the master, never in the worker)
    with sqlite_store._write_lock:
        child = os.fork()
        if child == 0:  # the worker: claims a token id and leaves, without pytest's cleanup
            if not sqlite_store._write_lock.acquire(timeout=5):
                os._exit(2)  # the lock stayed held: every write of this worker would hang
            sqlite_store._write_lock.release()
            os._exit(0 if sqlite_store.claim_jti("iss-a", "j1", 2e9, 1e9) else 1)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
