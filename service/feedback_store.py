"""Feedback persistence: cards issued (card uuid -> rule id), clinicians' accept/override outcomes and the JWT replay
cache, in SQLite (one machine) or PostgreSQL (`service/pg_store.py`, any number of replicas); `store_for` picks one."""
from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Protocol

if TYPE_CHECKING:
    from service.config import Settings

SCHEMA = """
CREATE TABLE IF NOT EXISTS issued_card (
    card_uuid     TEXT PRIMARY KEY,
    service_id    TEXT NOT NULL,
    rule_id       TEXT NOT NULL,
    indicator     TEXT NOT NULL,
    hook_instance TEXT NOT NULL,
    issued_at     TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS feedback (
    id                   INTEGER PRIMARY KEY AUTOINCREMENT,
    dedupe_key           TEXT NOT NULL UNIQUE,
    service_id           TEXT NOT NULL,
    card_uuid            TEXT NOT NULL,
    rule_id              TEXT,
    known_card           INTEGER NOT NULL,
    outcome              TEXT NOT NULL,
    outcome_timestamp    TEXT NOT NULL,
    accepted_suggestions TEXT,
    override_system      TEXT,
    override_code        TEXT,
    override_display     TEXT,
    user_comment         TEXT,
    received_at          TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS feedback_rule ON feedback (rule_id, outcome);
CREATE TABLE IF NOT EXISTS jwt_replay (
    issuer     TEXT NOT NULL,
    jti        TEXT NOT NULL,
    expires_at REAL NOT NULL,
    PRIMARY KEY (issuer, jti)
);
"""


@dataclass(frozen=True)
class IssuedCard:
    card_uuid: str
    rule_id: str
    indicator: str


@dataclass(frozen=True)
class FeedbackReceipt:
    stored: int
    duplicates: int
    unknown_cards: int


def feedback_dedupe_key(service_id: str, item: dict[str, Any]) -> str:
    """The same clinician action sent twice is one row: key on everything that describes the action."""
    reason = (item.get("overrideReason") or {}).get("reason") or {}
    parts = [service_id, item["card"], item["outcome"], item["outcomeTimestamp"],
             ",".join(sorted(s["id"] for s in item.get("acceptedSuggestions") or [])),
             str(reason.get("system", "")), str(reason.get("code", ""))]
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


FEEDBACK_COLUMNS = ("dedupe_key", "service_id", "card_uuid", "rule_id", "known_card", "outcome", "outcome_timestamp",
                    "accepted_suggestions", "override_system", "override_code", "override_display", "user_comment",
                    "received_at")

# Per rule: cards issued, and cards with accepted / overridden feedback sent to the service that issued them.
OUTCOMES_SQL = """
    SELECT i.rule_id,
           COUNT(DISTINCT i.card_uuid),
           COUNT(DISTINCT CASE WHEN f.outcome = 'accepted' THEN f.card_uuid END),
           COUNT(DISTINCT CASE WHEN f.outcome = 'overridden' THEN f.card_uuid END)
    FROM issued_card i LEFT JOIN feedback f ON f.card_uuid = i.card_uuid AND f.service_id = i.service_id
    GROUP BY i.rule_id ORDER BY i.rule_id
"""


def feedback_values(service_id: str, item: dict[str, Any], rule_id: str | None, received_at: datetime) -> tuple:
    """One feedback row in FEEDBACK_COLUMNS order; rule_id is None when the service never issued the card."""
    override = item.get("overrideReason") or {}
    reason = override.get("reason") or {}
    accepted = item.get("acceptedSuggestions")
    return (feedback_dedupe_key(service_id, item), service_id, item["card"], rule_id, 0 if rule_id is None else 1,
            item["outcome"], item["outcomeTimestamp"], json.dumps([s["id"] for s in accepted]) if accepted else None,
            reason.get("system"), reason.get("code"), reason.get("display"), override.get("userComment"),
            received_at.isoformat())


def outcome_stats(rows: Iterable[tuple]) -> list[dict[str, Any]]:
    result = []
    for rule_id, issued, accepted, overridden in rows:
        answered = accepted + overridden
        result.append({"rule_id": rule_id, "issued": issued, "accepted": accepted, "overridden": overridden,
                       "override_rate": overridden / answered if answered else None})
    return result


class FeedbackStore(Protocol):
    """What the service needs from a store; both backends behave the same (tests/test_store_backends.py)."""

    def claim_jti(self, issuer: str, jti: str, expires_at: float, now: float | None = None) -> bool: ...
    def record_cards(self, service_id: str, hook_instance: str, cards: Iterable[IssuedCard], issued_at: datetime) -> None: ...
    def record_feedback(self, service_id: str, items: list[dict[str, Any]], received_at: datetime) -> FeedbackReceipt: ...
    def outcomes_by_rule(self) -> list[dict[str, Any]]: ...
    def feedback_rows(self) -> list[dict[str, Any]]: ...
    def check_ready(self) -> None: ...


def store_for(settings: "Settings") -> FeedbackStore:
    """The store DATABASE_URL names: sqlite:///PATH, or postgresql:// (postgres://) for a store shared by replicas."""
    if settings.database_backend == "postgresql":
        from service.pg_store import PostgresFeedbackStore
        return PostgresFeedbackStore(settings.database_url)
    return SqliteFeedbackStore(settings.sqlite_path)


class SqliteFeedbackStore:
    """One connection per process and thread, opened lazily so gunicorn's preload fork never shares one."""

    def __init__(self, path: str) -> None:
        self.path = path
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        with self._connection() as connection:
            connection.executescript(SCHEMA)

    def _connection(self) -> sqlite3.Connection:
        local = self._local
        if getattr(local, "pid", None) != os.getpid():
            connection = sqlite3.connect(self.path, timeout=10.0, isolation_level=None, check_same_thread=True)
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
            connection.execute("PRAGMA busy_timeout=10000")
            local.connection, local.pid = connection, os.getpid()
        return local.connection

    def claim_jti(self, issuer: str, jti: str, expires_at: float, now: float | None = None) -> bool:
        """Record a token id; False when this issuer already used it. Shared by every worker through the database file;
        rows are kept until the token could no longer be accepted anyway."""
        now = time.time() if now is None else now
        connection = self._connection()
        connection.execute("BEGIN IMMEDIATE")
        try:
            connection.execute("DELETE FROM jwt_replay WHERE expires_at < ?", (now,))
            inserted = connection.execute("INSERT OR IGNORE INTO jwt_replay VALUES (?, ?, ?)",
                                          (issuer, jti, expires_at)).rowcount == 1
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        return inserted

    def record_cards(self, service_id: str, hook_instance: str, cards: Iterable[IssuedCard], issued_at: datetime) -> None:
        rows = [(c.card_uuid, service_id, c.rule_id, c.indicator, hook_instance, issued_at.isoformat()) for c in cards]
        if not rows:
            return
        connection = self._connection()
        connection.execute("BEGIN IMMEDIATE")
        try:
            connection.executemany("INSERT OR IGNORE INTO issued_card VALUES (?, ?, ?, ?, ?, ?)", rows)
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise

    def record_feedback(self, service_id: str, items: list[dict[str, Any]], received_at: datetime) -> FeedbackReceipt:
        connection = self._connection()
        stored = duplicates = unknown = 0
        insert = (f"INSERT OR IGNORE INTO feedback ({', '.join(FEEDBACK_COLUMNS)}) "
                  f"VALUES ({', '.join('?' * len(FEEDBACK_COLUMNS))})")
        connection.execute("BEGIN IMMEDIATE")
        try:
            for item in items:
                # A card counts as known only on the service that issued it.
                issued = connection.execute("SELECT rule_id FROM issued_card WHERE card_uuid = ? AND service_id = ?",
                                            (item["card"], service_id)).fetchone()
                cursor = connection.execute(insert, feedback_values(service_id, item, issued[0] if issued else None,
                                                                    received_at))
                if cursor.rowcount == 0:
                    duplicates += 1
                else:
                    stored += 1
                    unknown += 0 if issued else 1
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        return FeedbackReceipt(stored, duplicates, unknown)

    def outcomes_by_rule(self) -> list[dict[str, Any]]:
        """Per rule: cards issued, accepted and overridden feedback, and the override rate among cards with feedback."""
        return outcome_stats(self._connection().execute(OUTCOMES_SQL).fetchall())

    def feedback_rows(self) -> list[dict[str, Any]]:
        cursor = self._connection().execute("SELECT * FROM feedback ORDER BY id")
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row)) for row in cursor.fetchall()]

    def check_ready(self) -> None:
        """Raises when the database cannot be read (used by /readyz); cheap, whatever the table sizes."""
        self._connection().execute("SELECT 1 FROM feedback LIMIT 1").fetchall()
