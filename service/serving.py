"""What `bonecds serve` hands gunicorn: the workers' shared count of who listens (readiness), which
connections to close, the metrics directory, the store flush at exit and gunicorn's log format."""

from __future__ import annotations

import multiprocessing
import threading
from typing import Any


class ListeningWorkers:
    """How many of the server's workers have booted and listen, shared by the master and the
    workers it forks (a counter in shared memory): /readyz answers 503 until all do."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self._count = multiprocessing.get_context("fork").Value("i", 0)

    def add(self) -> None:  # in a worker, once its socket listens
        self._change(1)

    def remove(self) -> None:  # in the master, when a worker has exited
        self._change(-1)

    def _change(self, step: int) -> None:
        lock = self._count.get_lock()
        # a worker killed while it held the lock must not stop the master for good
        held = lock.acquire(timeout=1.0)
        try:
            self._count.value = max(0, self._count.value + step)
        finally:
            if held:
                lock.release()

    def all_listening(self) -> bool:
        return self._count.value >= self.expected

    def describe(self) -> str:
        return f"{self._count.value} of {self.expected} listening"


class ConnectionControl:
    """Which keep-alive connections a worker lets go (gunicorn's pre_request and post_request
    hooks): the `requests`-th request of a connection, and the one answered 503 because the worker
    is at its limit of FHIR reads. Either answer says `Connection: close`, and the client's next
    connection goes to whichever worker's socket the kernel picks, so connections bunched on one
    worker (opened while only it listened, or by the kernel's draw) spread out again."""

    def __init__(self, requests: int) -> None:
        self.requests = requests
        self._answering = threading.local()  # the gunicorn request this thread answers

    def pre_request(self, _worker: Any, request: Any) -> None:
        self._answering.request = request
        if request.req_number >= self.requests:  # counts the requests of this connection, from 1
            request.force_close()

    def post_request(self, _worker: Any, _request: Any, _environ: Any, _response: Any) -> None:
        self._answering.request = None  # it holds the request's headers (tokens): not kept

    def close_after_answer(self) -> None:
        """The request this thread answers closes its connection once answered (before the
        answer's headers are written)."""
        request = getattr(self._answering, "request", None)
        if request is not None:
            request.force_close()


def prepare_metrics_dir(env: Any) -> str:
    """The multi-process metrics directory every worker writes to, so /metrics counts them all:
    PROMETHEUS_MULTIPROC_DIR when set, else a new private directory; emptied at start, so counters
    of an earlier run never come back."""
    import tempfile
    from pathlib import Path

    configured = env.get("PROMETHEUS_MULTIPROC_DIR")
    if not configured:
        configured = tempfile.mkdtemp(prefix="bonecds-metrics-")
        env["PROMETHEUS_MULTIPROC_DIR"] = configured
    directory = Path(configured)
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):
        stale.unlink()
    return configured


def flush_store(apps: list[Any]) -> None:
    """A stopping worker writes the issued cards and feedback its store writer still holds."""
    store = apps[0].extensions["bonecds"].store if apps else None
    flush = getattr(store, "flush", None)
    if flush is not None:
        flush(2.0)


def worker_exited(listening: ListeningWorkers, worker: Any) -> None:
    """In the master, for a worker that exited: it no longer listens, and it leaves the in-flight
    gauge (livesum counts live workers only)."""
    from prometheus_client import multiprocess

    listening.remove()
    multiprocess.mark_process_dead(worker.pid)


def gunicorn_logger_class() -> Any:
    """gunicorn's own log lines in the service's format: JSON objects in JSON mode, like every other
    line."""
    from gunicorn.glogging import Logger

    from service.jsonlog import json_or_text

    class BonecdsGunicornLogger(Logger):
        def setup(self, cfg: Any) -> None:
            super().setup(cfg)
            formatter = json_or_text()
            for handler in [*self.error_log.handlers, *self.access_log.handlers]:
                handler.setFormatter(formatter)

    return BonecdsGunicornLogger
