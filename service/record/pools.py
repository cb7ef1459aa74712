"""What a worker keeps for its FHIR reads across calls: one pooled HTTP client per FHIR host, and
one bounded pool of query threads on which each call runs its queries a few at a time."""

from __future__ import annotations

import os
import ssl
import threading
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar
from urllib.parse import urlsplit

from service.record.fhir_http import HostConnections, ssl_context

# FHIR hosts with a connection pool in one worker (the allowlist, or the clients' servers: a few)
MAX_POOLED_HOSTS = 32

T = TypeVar("T")


class WorkerPools:
    """Created on first use after fork (gunicorn's preloading master never hands its connections or
    threads to a worker), then reused by every call of the worker."""

    def __init__(self, connections: int) -> None:
        self._connections = connections
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._clients: dict[str, HostConnections] = {}
        self._executor: ThreadPoolExecutor | None = None
        self._ssl: ssl.SSLContext | None = None

    def prepare(self) -> None:
        """Load the CA bundle now (about 20 ms): `bonecds serve` calls it in the preloading master,
        so no worker's first FHIR read waits for it."""
        with self._lock:
            self._certificates()

    def _certificates(self) -> ssl.SSLContext:
        """The CA bundle's context, loaded on first use (the caller holds the lock)."""
        if self._ssl is None:
            self._ssl = ssl_context()
        return self._ssl

    def _this_process(self) -> None:
        if self._pid != os.getpid():
            self._clients, self._executor, self._pid = {}, None, os.getpid()

    def client(self, base_url: str) -> HostConnections:
        """The host's connection pool: its kept-alive connections serve the next calls too, so a
        call pays no TCP (or TLS) set-up."""
        parts = urlsplit(base_url)
        origin = f"{parts.scheme}://{parts.netloc}".lower()
        with self._lock:
            self._this_process()
            client = self._clients.get(origin)
            if client is None:
                if len(self._clients) >= MAX_POOLED_HOSTS:
                    # the oldest host's pool goes; a call still using it finishes with it
                    del self._clients[next(iter(self._clients))]
                client = HostConnections(base_url, self._connections, self._certificates())
                self._clients[origin] = client
            return client

    def executor(self) -> ThreadPoolExecutor:
        """The worker's query threads, started as needed and then reused. Bounded at twice what the
        admitted calls use at once: threads still waiting on a hanging server for a call that has
        answered (until that call's deadline at most) do not hold up the next calls."""
        with self._lock:
            self._this_process()
            if self._executor is None:
                self._executor = ThreadPoolExecutor(
                    max_workers=2 * self._connections, thread_name_prefix="fhir-fetch"
                )
            return self._executor


def run_in_lanes(
    pool: ThreadPoolExecutor, width: int, jobs: Mapping[str, Callable[[], T]], *, first: str | None
) -> dict[str, Future[T]]:
    """Run the jobs at most `width` at a time, on lanes of `pool` that take them one after another
    (`first` first); one future per job. A call never waits behind the queued jobs of another (with
    one shared queue, a later call's Patient read did not start behind a hanging server's: 412 for
    a patient whose record was there). Cancel the futures to drop the jobs not started yet."""
    futures: dict[str, Future[T]] = {key: Future() for key in jobs}
    waiting = deque(sorted(jobs, key=lambda key: key != first))

    def lane() -> None:
        while True:
            try:
                key = waiting.popleft()
            except IndexError:
                return
            future = futures[key]
            if not future.set_running_or_notify_cancel():
                continue  # the call has ended
            try:
                future.set_result(jobs[key]())
            except BaseException as error:  # as concurrent.futures does: the caller reports it
                future.set_exception(error)

    for _ in range(min(width, len(jobs))):
        pool.submit(lane)
    return futures
