"""A test HTTP server that answers on a daemon thread for the length of a `with` block."""

from __future__ import annotations

import threading
from http.server import ThreadingHTTPServer
from typing import Self


class ServedInBackground:
    """Serves `httpd` from `__enter__` to `__exit__`; `stopping` is set first on exit, so handlers
    that wait on it (a hanging or trickling answer) let go before the server shuts down."""

    httpd: ThreadingHTTPServer

    def serve_in_background(self, httpd: ThreadingHTTPServer) -> None:
        self.httpd = httpd
        self.stopping = threading.Event()
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=5)
