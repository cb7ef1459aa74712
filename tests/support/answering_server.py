"""A real HTTP/1.1 server on a loopback port, answering as the test's function of the request says:
for the FHIR client's wire-level cases (statuses, headers, compressed bodies, a dropped answer, a
proxy)."""

from __future__ import annotations

import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tests.support.served_in_background import ServedInBackground


@dataclass(frozen=True)
class Asked:
    """One request as the server read it."""

    method: str
    target: str  # the request line's target, as sent (absolute-form through a proxy)
    headers: dict[str, str]
    body: bytes
    peer_port: int  # the client's port: one per connection


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds before the answer (a slow server)
    cut_after: int | None = None  # send only this many body bytes, then close (a dropped answer)
    then_close: bool = False  # close the connection after the answer, without saying so before
    hang_up: bool = False  # close the connection without answering (an idle timeout's race)


class AnsweringServer(ServedInBackground):
    """`with AnsweringServer(answer) as server:` then `server.base_url`; `server.asked` lists the
    requests."""

    def __init__(
        self, answer: Callable[[Asked], Reply], *, tls: tuple[Path, Path] | None = None
    ) -> None:
        """`tls`: a certificate and its key file, to answer HTTPS."""
        self.answer = answer
        self.asked: list[Asked] = []
        httpd = _Quiet(("127.0.0.1", 0), _handler(self))
        scheme = "http"
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
            scheme = "https"
        self.base_url = f"{scheme}://127.0.0.1:{httpd.server_address[1]}"
        self.serve_in_background(httpd)


class _Quiet(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client that hangs up (a failed TLS check, a timeout) is what the tests do


def _handler(server: AnsweringServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def _any(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            asked = Asked(
                self.command, self.path, dict(self.headers.items()), body, self.client_address[1]
            )
            server.asked.append(asked)
            reply = server.answer(asked)
            if reply.hang_up:
                self.close_connection = True
                return
            if reply.delay and server.stopping.wait(reply.delay):
                return
            try:
                self.send_response(reply.status)
                headers = {"Content-Type": "application/fhir+json", **reply.headers}
                headers.setdefault("Content-Length", str(len(reply.body)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                if reply.cut_after is not None:
                    self.wfile.write(reply.body[: reply.cut_after])
                    self.close_connection = True
                    return
                self.wfile.write(reply.body)
                self.close_connection = reply.then_close
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up

        do_GET = do_POST = _any

    return Handler
