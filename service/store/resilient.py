"""A store that degrades instead of failing: replay checks fall back to memory; ledger and feedback
writes go through one batching writer per process."""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

from service.store.base import FeedbackReceipt, FeedbackStore, IssuedCard, PendingWrite

log = logging.getLogger("bonecds")

# writes held while the database is away; beyond this they are dropped, counted and logged
QUEUE_LIMIT = 10_000
JTI_MEMORY_LIMIT = 100_000
# issued cards wait at most this long for the writer (a burst of answers gathers into one commit)
FLUSH_INTERVAL_SECONDS = 0.05
BATCH_LIMIT = 500  # writes per transaction
# a feedback call waits this long for its batch's receipt before it is answered "queued"
FEEDBACK_WAIT_SECONDS = 3.0
RETRY_SECONDS = (0.5, 1.0, 2.0, 5.0)

# metric events: (event, operation) -> counted by service.http.metrics
Event = Callable[[str, str, int], None]
_Write = PendingWrite


class _Waiter:
    """A feedback call waiting for the writer's receipt; once it stops waiting (answered
    "queued"), a later write of its items counts as flushed-feedback."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._done = threading.Event()
        self.receipt: FeedbackReceipt | None = None
        self.abandoned = False

    def deliver(self, receipt: FeedbackReceipt | None) -> bool:
        """The receipt (None: not written now); False when the caller no longer waits."""
        with self._lock:
            if self.abandoned:
                return False
            self.receipt = receipt
            self._done.set()
            return True

    def wait(self, timeout: float) -> FeedbackReceipt | None:
        self._done.wait(timeout)
        with self._lock:
            if self.receipt is None:
                self.abandoned = True
            return self.receipt


class ResilientStore:
    """Wraps the configured store.

    When the database cannot be reached:
    - a token's jti is claimed in this process' memory (bounded; each entry lives until the token
      expires plus the leeway), so a replay to the same process is still refused, with a WARNING
      naming the store and the fallback;
    - issued-card rows are written by a background writer from a bounded queue (always, so the
      ledger is off the request's critical path), and the queue is flushed when the database
      returns;
    - feedback that cannot be written is queued and answered as queued, never as stored; what the
      full queue cannot hold is dropped, counted and logged.
    One writer thread per process writes whatever is queued in one transaction per batch (cards
    gather for FLUSH_INTERVAL_SECONDS; a feedback call wakes it at once and waits for its receipt),
    so concurrent requests never contend for the database lock; the queue is flushed at exit.
    Nothing here raises into a request.
    """

    def __init__(
        self,
        open_store: Callable[[], FeedbackStore],
        *,
        backend: str,
        queue_limit: int = QUEUE_LIMIT,
        batch_limit: int = BATCH_LIMIT,
        on_event: Event | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._open_store = open_store
        self.backend = backend
        self._inner: FeedbackStore | None = None
        self._lock = threading.Lock()
        # one writer at a time: the writer thread, or a request flushing first
        self._flush_lock = threading.Lock()
        self._queue: deque[_Write] = deque()
        self._queue_limit = queue_limit
        self._wake = threading.Event()
        self._urgent = threading.Event()
        self._batch_limit = batch_limit
        self._writer_pid: int | None = None
        self._jti_memory: dict[tuple[str, str], float] = {}
        self._degraded_since: float | None = None
        self._monotonic = monotonic
        self.on_event: Event = on_event or (lambda _event, _operation, _count: None)
        try:
            self._inner = open_store()
        except Exception as error:  # the service starts without its database and degrades
            self._degrade("open", error)

    # --- the store protocol
    # --------------------------------------------------------------------------------------

    def claim_jti(self, issuer: str, jti: str, expires_at: float, now: float | None = None) -> bool:
        now = time.time() if now is None else now
        with self._lock:
            remembered = self._jti_memory.get((issuer, jti))
        if remembered is not None and remembered >= now:
            return False  # seen by this process during an outage: a replay
        inner = self._store()
        if inner is not None:
            try:
                claimed = inner.claim_jti(issuer, jti, expires_at, now)
                self._recovered()
                return claimed
            except Exception as error:
                self._degrade("claim_jti", error)
        self.on_event("fallback", "claim_jti", 1)
        with self._lock:
            if len(self._jti_memory) >= JTI_MEMORY_LIMIT:
                for key in [k for k, expiry in self._jti_memory.items() if expiry < now]:
                    del self._jti_memory[key]
                # all still valid: forget the soonest to expire
                if len(self._jti_memory) >= JTI_MEMORY_LIMIT:
                    del self._jti_memory[min(self._jti_memory, key=self._jti_memory.__getitem__)]
            self._jti_memory[(issuer, jti)] = expires_at
        return True

    def record_cards(
        self, service_id: str, hook_instance: str, cards: Iterable[IssuedCard], issued_at: datetime
    ) -> None:
        rows = tuple(cards)
        if rows:
            self._enqueue(_Write("cards", service_id, hook_instance, rows, issued_at))

    def record_feedback(
        self, service_id: str, items: list[dict[str, Any]], received_at: datetime
    ) -> FeedbackReceipt:
        # Known to be away: answered "queued" at once. Otherwise the writer stores it in its next
        # batch, behind this process' earlier writes (the cards it is about come first).
        waiter = None if self._degraded_since is not None else _Waiter()
        write = _Write("feedback", service_id, "", tuple(items), received_at, waiter)
        if not self._enqueue(write, urgent=True):
            return FeedbackReceipt(0, 0, 0, not_kept=len(items))
        receipt = waiter.wait(FEEDBACK_WAIT_SECONDS) if waiter is not None else None
        return receipt or FeedbackReceipt(0, 0, 0, queued=len(items))

    def outcomes_by_rule(self) -> list[dict[str, Any]]:
        return self._required().outcomes_by_rule()

    def feedback_rows(self) -> list[dict[str, Any]]:
        return self._required().feedback_rows()

    def issued_by_rule(self, since: str = "") -> dict[str, int]:
        return self._required().issued_by_rule(since)

    def check_ready(self) -> None:
        self._required().check_ready()

    # --- health and shutdown
    # ----------------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """For /readyz: whether the database answers, and how many writes wait for it."""
        try:
            self.check_ready()
            state = "ok"
        except Exception as error:
            state = f"unreachable ({type(error).__name__})"
        with self._lock:
            pending = len(self._queue)
        return {"database": state, "backend": self.backend, "queuedWrites": pending}

    def flush(self, timeout_seconds: float = 5.0) -> bool:
        """Write what is queued now (at a clean stop too); True when the queue is empty."""
        deadline = self._monotonic() + timeout_seconds
        while self._monotonic() < deadline:
            if not self._flush_once():
                return not self._queue
            if not self._queue:
                return True
        return not self._queue

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._queue)

    # --- internals -------------------------------------------------------------------------------

    def _store(self) -> FeedbackStore | None:
        if self._inner is None:
            try:
                self._inner = self._open_store()
            except Exception as error:
                self._degrade("open", error)
        return self._inner

    def _required(self) -> FeedbackStore:
        inner = self._store()
        if inner is None:
            raise ConnectionError("the database cannot be reached")
        return inner

    def _enqueue(self, write: _Write, *, urgent: bool = False) -> bool:
        with self._lock:
            if len(self._queue) >= self._queue_limit:
                dropped = True
            else:
                self._queue.append(write)
                dropped = False
        if dropped:
            count = len(write.payload)
            self.on_event("dropped", write.kind, count)
            log.error(
                "store queue full (%d writes waiting for the %s database): %d %s row(s) not kept",
                self._queue_limit,
                self.backend,
                count,
                write.kind,
            )
            return False
        self._ensure_writer()
        if urgent:
            self._urgent.set()
        self._wake.set()
        return True

    def _ensure_writer(self) -> None:
        """One writer thread per process, started after gunicorn's fork (a thread does not survive
        fork); what it has not written yet is flushed at exit (gunicorn's worker_exit too)."""
        pid = os.getpid()
        if self._writer_pid == pid:
            return
        with self._lock:
            if self._writer_pid == pid:
                return
            self._writer_pid = pid
        threading.Thread(target=self._writer, name="bonecds-store-writer", daemon=True).start()
        atexit.register(self.flush, 2.0)

    def _writer(self) -> None:
        failures = 0
        while True:
            self._wake.wait(
                RETRY_SECONDS[min(failures, len(RETRY_SECONDS) - 1)] if failures else 1.0
            )
            self._wake.clear()
            if not failures:
                # issued cards gather into one commit; a waiting feedback call cuts this short
                self._urgent.wait(FLUSH_INTERVAL_SECONDS)
            self._urgent.clear()
            while self._queue:
                if self._flush_once():
                    failures = 0
                else:
                    failures += 1
                    break

    def _flush_once(self) -> bool:
        """Write the oldest pending writes (one batch, one transaction); False (and they stay
        queued) when the database fails."""
        with self._flush_lock:
            return self._write_batch()

    def _write_batch(self) -> bool:
        with self._lock:
            batch = [self._queue[i] for i in range(min(len(self._queue), self._batch_limit))]
        if not batch:
            return True
        inner = self._store()
        if inner is None:
            self._fail_waiters(batch)
            return False
        try:
            receipts = self._write(inner, batch)
        except Exception as error:
            self._degrade(f"record_{batch[0].kind}", error)
            self._fail_waiters(batch)
            return False
        with self._lock:
            # only this writer (under _flush_lock) removes from the head: the batch is still there
            for _ in batch:
                self._queue.popleft()
        for write, receipt in zip(batch, receipts, strict=True):
            if receipt is None:
                continue
            if write.waiter is None or not write.waiter.deliver(receipt):
                self.on_event("flushed-feedback", "record_feedback", receipt.stored)
        self._recovered()
        return True

    @staticmethod
    def _write(inner: FeedbackStore, batch: Sequence[_Write]) -> list[FeedbackReceipt | None]:
        record_batch = getattr(inner, "record_batch", None)
        if record_batch is not None:
            return list(record_batch(batch))
        receipts: list[FeedbackReceipt | None] = []  # a store without batches: one write at a time
        for write in batch:
            if write.kind == "cards":
                inner.record_cards(write.service_id, write.key, write.payload, write.at)
                receipts.append(None)
            else:
                items = list(write.payload)
                receipts.append(inner.record_feedback(write.service_id, items, write.at))
        return receipts

    @staticmethod
    def _fail_waiters(batch: Sequence[_Write]) -> None:
        for write in batch:
            if write.waiter is not None:
                # answered "queued" now; written when the database returns
                write.waiter.deliver(None)

    def _degrade(self, operation: str, error: Exception) -> None:
        self.on_event("error", operation, 1)
        first = self._degraded_since is None
        if first:
            self._degraded_since = self._monotonic()
            log.warning(
                "%s database unreachable (%s during %s): JWT replay checks fall back to this"
                " process' memory; issued cards and feedback are queued (at most %d writes) until"
                " it returns",
                self.backend,
                type(error).__name__,
                operation,
                self._queue_limit,
            )

    def _recovered(self) -> None:
        if self._degraded_since is not None:
            seconds = self._monotonic() - self._degraded_since
            self._degraded_since = None
            log.warning(
                "%s database reachable again after %.1f s; %d queued write(s) being flushed",
                self.backend,
                seconds,
                len(self._queue),
            )


def with_queue_fields(receipt: FeedbackReceipt) -> dict[str, int]:
    """The feedback answer: what was stored, what waits in the queue, and what could not be kept."""
    answer = {
        "stored": receipt.stored,
        "duplicates": receipt.duplicates,
        "unknownCards": receipt.unknown_cards,
    }
    if receipt.queued or receipt.not_kept:
        answer.update(queued=receipt.queued, notKept=receipt.not_kept)
    return answer
