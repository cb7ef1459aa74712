"""A misbehaving FHIR R4 test server: answers like a real server for one scenario's resources, or
fails on purpose.

Faults are set per resource type (the first path segment: "Patient", "Observation", ...) or for all
of them ("*"); `faults = {"*": "http503", "Patient": "ok"}` breaks every search but lets the Patient
read through. Every request is recorded (server-side) so tests can assert what was, and what was
never, asked for.

`GET /metadata` answers a CapabilityStatement (with the `batch` interaction when `batch` is True)
whatever the "*" fault, or fails as `faults["metadata"]` says (a METADATA_MODES value). With
`batch`, `POST [base]` answers a batch Bundle: each entry as its resource type's fault says (the
GET faults that fit in an entry: ok, not-found, outcome, httpNNN and the Bundle faults), or the
whole batch fails as `faults["batch"]` says (a BATCH_MODES value).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import orjson

from fixtures.prefetch import answer_template
from tests.support.served_in_background import ServedInBackground

FHIR_JSON = "application/fhir+json"
# mode -> what the server does; "ok" serves the real answer
FAULT_MODES = (
    "ok",
    "hang",
    "slow",
    "trickle",
    "http500",
    "http502",
    "http503",
    "http401",
    "not-found",
    "malformed",
    "html",
    "html-bundle",
    "not-fhir",
    "outcome",
    "endless",
    "huge",
    "many",
    "foreign-next",
    "redirect-foreign",
    "redirect-local",
    "garbage-entries",
)


METADATA_MODES = ("ok", "hang", "http500", "malformed")
BATCH_MODES = (
    "ok",
    "hang",
    "http500",
    "http405",
    "http401",
    "not-bundle",
    "wrong-count",
    "malformed",
)


@dataclass(frozen=True)
class Seen:
    """One request as the server received it (the token itself is not kept, only whether one
    came)."""

    path: str
    query: str
    authorized: bool
    method: str = "GET"
    entries: tuple[str, ...] = ()  # a batch's request URLs


@dataclass
class FaultyFhirServer(ServedInBackground):
    resources: list[dict]
    prefix: str = "/fhir"
    faults: dict[str, str] = field(default_factory=dict)
    other_base: str = (  # where foreign links and redirects point (set to a recording server)
        "http://127.0.0.1:9/fhir"
    )
    hang_seconds: float = 30.0
    slow_seconds: float = 0.2
    trickle_interval: float = 0.1
    huge_bytes: int = 12 * 1024 * 1024
    # "many": a server ignoring _count (4x the largest _count the templates ask); more only costs
    # time, in the GIL the service under test shares
    many_entries: int = 400
    requests: list[Seen] = field(default_factory=list)
    batch: bool = False  # advertise (and answer) batch Bundles

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        httpd = _Server(("127.0.0.1", 0), _handler_for(self))
        self.base_url = f"http://127.0.0.1:{httpd.server_address[1]}{self.prefix}"
        self.serve_in_background(httpd)

    def reset(self, faults: dict[str, str] | None = None) -> None:
        with self._lock:
            self.faults = dict(faults or {})
            self.requests.clear()

    def mode_for(self, resource_type: str) -> str:
        mode = self.faults.get(resource_type) or self.faults.get("*") or "ok"
        if mode not in FAULT_MODES:
            raise ValueError(f"unknown fault mode {mode!r}")
        return mode

    def reads(self) -> list[Seen]:
        """The requests but the CapabilityStatement reads (asked once per worker and hour)."""
        with self._lock:
            return [seen for seen in self.requests if not seen.path.endswith("/metadata")]

    def record(self, seen: Seen) -> None:
        with self._lock:
            self.requests.append(seen)

    def pause(self, seconds: float) -> bool:
        """Sleep, but wake up at shutdown; True if the server is stopping."""
        return self.stopping.wait(seconds)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = (
        128  # the default 5 drops connections when the service opens its parallel queries at once
    )

    def handle_error(self, request, client_address) -> None:
        # clients that give up (timeouts, size caps) reset connections: expected here, not worth a
        # traceback
        pass


def _handler_for(server: FaultyFhirServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:  # quiet: the test output is for assertions
            pass

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            server.record(
                Seen(
                    parts.path,
                    parts.query,
                    self.headers.get("Authorization", "").startswith("Bearer "),
                )
            )
            if not parts.path.startswith(server.prefix + "/"):
                return self._send(404, _outcome("not-found", "no such path"))
            relative = parts.path[len(server.prefix) + 1 :]
            query = relative + (f"?{parts.query}" if parts.query else "")
            if relative == "metadata":
                return self._metadata(server.faults.get("metadata", "ok"))
            try:
                self._serve(server.mode_for(relative.split("/", 1)[0]), query, parts)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeout): nothing to do

        def _serve(self, mode: str, query: str, parts) -> None:
            answer = _real_answer(server.resources, query)
            if answer is None and mode not in ("hang", "trickle") and not mode.startswith("http"):
                return self._send(404, _outcome("not-found", "resource not found"))
            if mode == "hang":
                server.pause(server.hang_seconds)
                return
            if mode == "slow":
                server.pause(server.slow_seconds)
            elif mode == "trickle":
                return self._trickle(_json(answer))
            elif mode.startswith("http"):
                return self._send(
                    int(mode[4:]), _outcome("exception", f"simulated HTTP {mode[4:]}")
                )
            elif mode == "not-found":
                return self._send(404, _outcome("not-found", "resource not found"))
            elif mode == "malformed":
                return self._send(200, _json(answer)[:-7])
            elif mode == "html":
                return self._send(
                    200, b"<!DOCTYPE html><html><body><h1>Sign in</h1></body></html>", "text/html"
                )
            elif mode == "html-bundle":
                return self._send(200, _json(answer), "text/html; charset=utf-8")
            elif mode == "not-fhir":
                return self._send(200, _json({"status": "ok", "data": answer}), "application/json")
            elif mode == "outcome":
                return self._send(200, _outcome("too-costly", "search too expensive"))
            elif mode in ("redirect-foreign", "redirect-local"):
                target = (
                    server.other_base if mode == "redirect-foreign" else server.prefix + "/moved"
                )
                return self._send(302, b"", headers={"Location": f"{target}/{query}"})
            elif answer.get("resourceType") == "Bundle":
                answer = _bundle_fault(mode, answer, server, query, parts)
                if mode == "huge":
                    return self._stream(_huge_chunks(answer, server.huge_bytes))
            self._send(200, _json(answer))

        def _metadata(self, mode: str) -> None:
            if mode not in METADATA_MODES:
                raise ValueError(f"unknown metadata mode {mode!r}")
            if mode == "hang":
                server.pause(server.hang_seconds)
                return
            if mode == "http500":
                return self._send(500, _outcome("exception", "simulated HTTP 500"))
            statement = _capability(server.batch)
            self._send(200, _json(statement)[: -7 if mode == "malformed" else None])

        def do_POST(self) -> None:
            parts = urlsplit(self.path)
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                bundle = json.loads(raw)
                urls = tuple(e["request"]["url"] for e in bundle["entry"])
            except (ValueError, KeyError, TypeError):
                bundle, urls = None, ()
            server.record(
                Seen(
                    parts.path,
                    parts.query,
                    self.headers.get("Authorization", "").startswith("Bearer "),
                    "POST",
                    urls,
                )
            )
            if parts.path.rstrip("/") != server.prefix or not server.batch:
                return self._send(405, _outcome("not-supported", "POST not allowed here"))
            if not isinstance(bundle, dict) or bundle.get("type") != "batch":
                return self._send(400, _outcome("invalid", "expected a batch Bundle"))
            mode = server.faults.get("batch", "ok")
            if mode not in BATCH_MODES:
                raise ValueError(f"unknown batch mode {mode!r}")
            try:
                self._batch(mode, urls)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeout): nothing to do

        def _batch(self, mode: str, urls: tuple[str, ...]) -> None:
            if mode == "hang":
                server.pause(server.hang_seconds)
                return
            if mode.startswith("http"):
                return self._send(int(mode[4:]), _outcome("exception", f"simulated {mode}"))
            if mode == "not-bundle":
                return self._send(200, _outcome("informational", "all is well"))
            entries = [_batch_entry(server, url) for url in urls]
            if mode == "wrong-count":
                entries = entries[:-1]
            answer = _json({"resourceType": "Bundle", "type": "batch-response", "entry": entries})
            self._send(200, answer[:-7] if mode == "malformed" else answer)

        def _send(
            self,
            status: int,
            body: bytes,
            content_type: str = FHIR_JSON,
            headers: dict | None = None,
        ) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def _stream(self, chunks: Iterator[bytes]) -> None:
            """No Content-Length, body until the connection closes: the client cannot know the size
            up front."""
            self.send_response(200)
            self.send_header("Content-Type", FHIR_JSON)
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            for chunk in chunks:
                self.wfile.write(chunk)

        def _trickle(self, body: bytes) -> None:
            """Headers at once, then one byte at a time: each read is quick, the whole never arrives
            in time."""
            self.send_response(200)
            self.send_header("Content-Type", FHIR_JSON)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            for byte in body:
                if server.pause(server.trickle_interval):
                    return
                self.wfile.write(bytes([byte]))
                self.wfile.flush()

    return Handler


def _capability(batch: bool) -> dict:
    interactions = [{"code": "search-system"}] + ([{"code": "batch"}] if batch else [])
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "kind": "instance",
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json"],
        "rest": [{"mode": "server", "interaction": interactions}],
    }


def _batch_entry(server: FaultyFhirServer, url: str) -> dict:
    """One batch entry as a batch-response carries it, under its resource type's fault."""
    parts = urlsplit(url)
    query = url.lstrip("/")
    mode = server.mode_for(parts.path.lstrip("/").split("/", 1)[0])
    answer = _real_answer(server.resources, query)
    if mode.startswith("http"):
        status, text = int(mode[4:]), f"simulated HTTP {mode[4:]}"
    elif mode == "not-found" or answer is None:
        status, text = 404, "resource not found"
    elif mode == "outcome":
        outcome = json.loads(_outcome("too-costly", "search too expensive"))
        return {"resource": outcome, "response": {"status": "200 OK"}}
    else:
        if answer.get("resourceType") == "Bundle":
            answer = _bundle_fault(mode, answer, server, query, parts)
        return {"resource": answer, "response": {"status": "200 OK"}}
    outcome = json.loads(_outcome("exception" if status != 404 else "not-found", text))
    return {"response": {"status": str(status), "outcome": outcome}}


def _real_answer(resources: list[dict], query: str) -> dict | None:
    """What a correct server would answer (a read -> the resource or None; a search -> a
    searchset)."""
    base, _, params = query.partition("?")
    params = "&".join(p for p in params.split("&") if p and not p.startswith("_page="))
    return answer_template(base + (f"?{params}" if params else ""), resources)


def _bundle_fault(mode: str, bundle: dict, server: FaultyFhirServer, query: str, parts) -> dict:
    bundle = dict(bundle)
    if mode == "endless":
        # the same page again and again, each with a next link to a new page on the same server
        page = int(
            dict(p.split("=", 1) for p in parts.query.split("&") if "=" in p).get("_page", "1")
        )
        path, _, params = query.partition("?")
        params = "&".join(p for p in params.split("&") if p and not p.startswith("_page="))
        bundle["link"] = [
            {"relation": "next", "url": f"{server.base_url}/{path}?{params}&_page={page + 1}"}
        ]
    elif mode == "foreign-next":
        bundle["link"] = [{"relation": "next", "url": f"{server.other_base}/{query}&_page=2"}]
    elif mode == "many":
        bundle["entry"] = (
            [_copy_entry(bundle["entry"][0], n) for n in range(server.many_entries)]
            if bundle["entry"]
            else []
        )
        bundle["total"] = len(bundle["entry"])
    elif mode == "garbage-entries":
        bundle["entry"] = [
            *bundle["entry"],
            7,
            {"resource": "text"},
            {"resource": {"resourceType": 3}},
            {
                "resource": {
                    "resourceType": "Observation",
                    "id": "junk-1",
                    "status": "final",
                    "valueQuantity": {"value": "high", "unit": None},
                    "effectiveDateTime": "last week",
                    "subject": "Patient",
                }
            },
            {
                "resource": {
                    "resourceType": "MedicationRequest",
                    "id": "junk-2",
                    "dosageInstruction": "4 mg",
                }
            },
            {
                "resource": {
                    "resourceType": "Condition",
                    "id": "junk-3",
                    "code": [],
                    "clinicalStatus": 1,
                }
            },
        ]
    return bundle


def _copy_entry(entry: dict, n: int) -> dict:
    resource = dict(entry["resource"], id=f"{entry['resource']['id']}-copy{n}")
    return {
        "fullUrl": f"{resource['resourceType']}/{resource['id']}",
        "resource": resource,
        "search": {"mode": "match"},
    }


def _huge_chunks(bundle: dict, size: int) -> Iterator[bytes]:
    """A syntactically valid Bundle of about `size` bytes: thousands of padded entries."""
    head = _json({k: v for k, v in bundle.items() if k != "entry"})[:-1] + b',"entry":['
    yield head
    entry = {
        "resource": {
            "resourceType": "Basic",
            "id": "pad",
            "text": {"status": "generated", "div": "x" * 4000},
        }
    }
    chunk = _json(entry)
    written, first = len(head), True
    while written < size:
        yield (b"" if first else b",") + chunk
        written, first = written + len(chunk) + 1, False
    yield b"]}"


def _json(value) -> bytes:
    # orjson: a page of 1,000 entries (0.7 MB) takes 0.6 ms instead of json's 8 ms, and this
    # server shares the GIL with the service under test, whose reads time out after 0.5 s.
    return orjson.dumps(value)


def _outcome(code: str, text: str) -> bytes:
    return _json(
        {
            "resourceType": "OperationOutcome",
            "issue": [{"severity": "error", "code": code, "diagnostics": text}],
        }
    )
