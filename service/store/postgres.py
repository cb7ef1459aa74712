"""The feedback store and JWT replay cache in PostgreSQL (DATABASE_URL=postgresql://...), shared by
every replica.

Same interface and behaviour as `SqliteFeedbackStore`. Each process (and thread) opens its own
connection lazily, so a connection made before gunicorn's fork is never used by two processes; the
schema is created at start-up under an advisory lock, so replicas starting together do not race on
CREATE TABLE IF NOT EXISTS.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections.abc import Iterable, Sequence
from contextlib import nullcontext
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from service.store.base import (
    FEEDBACK_COLUMNS,
    ISSUED_SQL,
    OUTCOMES_SQL,
    POSTGRES_SCHEMA,
    FeedbackReceipt,
    IssuedCard,
    PendingWrite,
    card_rows,
    feedback_dedupe_key,
    outcome_stats,
    store_feedback_items,
    write_batch,
)

log = logging.getLogger("bonecds")

CONNECT_TIMEOUT_SECONDS = (
    3  # unless the URL says otherwise (?connect_timeout=N; libpq's minimum is 2)
)
SCHEMA_LOCK = 0x626F6E6563647331  # pg_advisory_xact_lock key for schema creation ("bonecds1")

# Claimed when new, or when the row left for this jti has expired but was not purged yet.
CLAIM_SQL = """
    INSERT INTO jwt_replay (issuer, jti, expires_at) VALUES (%s, %s, %s)
    ON CONFLICT (issuer, jti) DO UPDATE SET expires_at = EXCLUDED.expires_at
    WHERE jwt_replay.expires_at < %s
"""
CARD_INSERT = "INSERT INTO issued_card VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING"
# Built only from the constant column list and placeholders; every value is bound.
FEEDBACK_INSERT = (
    f"INSERT INTO feedback ({', '.join(FEEDBACK_COLUMNS)})"  # noqa: S608
    f" VALUES ({', '.join(['%s'] * len(FEEDBACK_COLUMNS))}) ON CONFLICT (dedupe_key) DO NOTHING"
)
# Rows another connection is already deleting are skipped, so concurrent purges never wait on each
# other.
PURGE_SQL = """
    DELETE FROM jwt_replay WHERE (issuer, jti) IN
        (SELECT issuer, jti FROM jwt_replay WHERE expires_at < %s FOR UPDATE SKIP LOCKED)
"""


def redacted_url(url: str) -> str:
    """Postgresql://user@host:port/db: what may be logged or shown (never the password, the query or
    the full URL)."""
    parts = urlsplit(url)
    user = f"{parts.username}@" if parts.username else ""
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ":?"
    return f"{parts.scheme}://{user}{parts.hostname or ''}{port}{parts.path}"


def _lock_key(dedupe_key: str) -> int:
    return int.from_bytes(hashlib.sha256(dedupe_key.encode()).digest()[:8], "big", signed=True)


def _lock_keys(connection: psycopg.Connection, items: Iterable[tuple[str, dict[str, Any]]]) -> None:
    """Two transactions inserting the same keys in opposite orders would deadlock on the unique
    index: take a lock per (service, item) key in one global order first, in one statement (rows
    are still inserted in order)."""
    keys = sorted({_lock_key(feedback_dedupe_key(service_id, item)) for service_id, item in items})
    if keys:
        connection.execute(
            "SELECT pg_advisory_xact_lock(k) FROM unnest(%s::bigint[]) AS k ORDER BY k", (keys,)
        )


class PostgresFeedbackStore:
    """One connection per process and thread, opened on first use (after gunicorn's fork),
    autocommit outside the explicit transactions; a broken connection is replaced on the next
    call."""

    def __init__(self, url: str, connect_timeout: float = CONNECT_TIMEOUT_SECONDS) -> None:
        self.url = url
        self.display_url = redacted_url(url)
        try:
            params = conninfo_to_dict(url)
        except psycopg.Error:
            raise ValueError(
                f"DATABASE_URL is not a valid PostgreSQL URL: {self.display_url}"
            ) from None
        params.setdefault("connect_timeout", str(max(1, int(connect_timeout))))
        params.setdefault("application_name", "bonecds")
        self._params = params
        self._local = threading.local()
        # a libpq older than 14 (possible with psycopg[c]) has no pipeline mode: two round trips
        self._pipelines = psycopg.capabilities.has_pipeline()
        # The start-up connection is closed at once: the preloading master never holds one its
        # workers would inherit.
        with self._connect() as connection, connection.transaction():
            connection.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
            connection.execute(POSTGRES_SCHEMA)
        log.info("feedback store: PostgreSQL %s", self.display_url)

    def _connect(self) -> psycopg.Connection:
        try:
            # The parameters as one conninfo string; psycopg parses it back into the same ones.
            return psycopg.connect(make_conninfo("", **self._params), autocommit=True)
        except psycopg.Error as error:
            message = str(error).strip()
            password = self._params.get("password")
            if isinstance(password, str) and password:
                message = message.replace(password, "***")
            raise ConnectionError(
                f"feedback store: cannot connect to PostgreSQL {self.display_url}: {message}"
            ) from None

    def _connection(self) -> psycopg.Connection:
        local = self._local
        connection = getattr(local, "connection", None)
        if connection is None or local.pid != os.getpid() or connection.broken or connection.closed:
            # A connection inherited through fork belongs to the parent: drop it unclosed (psycopg
            # does not send
            # a Terminate from another process); a broken one is simply replaced.
            local.connection, local.pid = self._connect(), os.getpid()
        return local.connection

    def claim_jti(self, issuer: str, jti: str, expires_at: float, now: float | None = None) -> bool:
        """Record a token id; False when this issuer already used it (atomic across processes and
        machines: the primary key decides).

        Rows are purged once the token could no longer be accepted anyway.
        """
        now = time.time() if now is None else now
        connection = self._connection()
        # both statements in one round trip to the server: every authenticated call waits for it
        with connection.pipeline() if self._pipelines else nullcontext():
            connection.execute(PURGE_SQL, (now,))
            claimed = connection.execute(CLAIM_SQL, (issuer, jti, expires_at, now))
        return claimed.rowcount == 1

    def record_cards(
        self, service_id: str, hook_instance: str, cards: Iterable[IssuedCard], issued_at: datetime
    ) -> None:
        rows = card_rows(service_id, hook_instance, cards, issued_at)
        if not rows:
            return
        connection = self._connection()
        with connection.transaction(), connection.cursor() as cursor:
            cursor.executemany(CARD_INSERT, rows)

    def record_feedback(
        self, service_id: str, items: list[dict[str, Any]], received_at: datetime
    ) -> FeedbackReceipt:
        connection = self._connection()
        with connection.transaction():
            _lock_keys(connection, ((service_id, item) for item in items))
            return store_feedback_items(
                connection.execute, "%s", FEEDBACK_INSERT, service_id, items, received_at
            )

    def record_batch(self, writes: Sequence[PendingWrite]) -> list[FeedbackReceipt | None]:
        """The writer's batch in one transaction: the card rows between feedback writes in one
        pipelined executemany, the feedback keys of the whole batch locked first in one order."""
        connection = self._connection()
        with connection.transaction(), connection.cursor() as cursor:
            feedback = [w for w in writes if w.kind == "feedback"]
            _lock_keys(connection, ((w.service_id, item) for w in feedback for item in w.payload))
            return write_batch(
                connection.execute, cursor.executemany, "%s", CARD_INSERT, FEEDBACK_INSERT, writes
            )

    def outcomes_by_rule(self) -> list[dict[str, Any]]:
        """Per rule: cards issued, accepted and overridden feedback, and the override rate among
        cards with feedback."""
        return outcome_stats(self._connection().execute(OUTCOMES_SQL).fetchall())

    def feedback_rows(self) -> list[dict[str, Any]]:
        cursor = self._connection().execute("SELECT * FROM feedback ORDER BY id")
        if cursor.description is None:  # a SELECT always describes its columns
            raise RuntimeError("SELECT * FROM feedback returned no column description")
        names = [d.name for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def issued_by_rule(self, since: str = "") -> dict[str, int]:
        """Cards issued per rule, at or after `since` (ISO text, compared as text; "" counts every
        card)."""
        return dict(self._connection().execute(ISSUED_SQL.format(param="%s"), (since,)).fetchall())

    def check_ready(self) -> None:
        """Raises when the database cannot be read (used by /readyz).

        A connection found broken (server restarted, fail-over) is replaced and the read tried once
        more; other calls fail once, then reconnect on the next.
        """
        for attempt in (1, 2):
            connection = self._connection()
            try:
                connection.execute("SELECT 1 FROM feedback LIMIT 1").fetchall()
                return
            except psycopg.OperationalError:
                if attempt == 2 or not connection.broken:
                    raise
