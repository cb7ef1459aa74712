"""HTTP to one FHIR server on httpcore's connections: kept-alive connections taken from a stack, the
environment's proxy and CA bundle, gzip answers, and two errors (timed out; no answer, named)."""

from __future__ import annotations

import logging
import ssl
import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote, unquote, urlsplit
from urllib.request import getproxies_environment, proxy_bypass_environment  # type: ignore[attr-defined]

import httpcore
import httpx

from service.record.ssrf import DEFAULT_PORTS
from service.version import software_version

log = logging.getLogger("service.record.fhir_client")

# Characters left as they are in a request URL (RFC 3986 reserved, '%' of an existing escape, and
# '|' of FHIR token searches, which httpx also sent as it is); spaces and non-ASCII are escaped.
URL_SAFE = "!#$%&'()*+,/:;=?@[]~|"
# A decoded piece of a compressed answer is at most this long, so the size cap stops a small
# compressed answer that expands a thousandfold after one piece, not after the whole of it.
DECODED_PIECE_BYTES = 64 * 1024

NO_ANSWER = (
    httpcore.NetworkError,
    httpcore.ProtocolError,
    httpcore.ProxyError,
    httpcore.UnsupportedProtocol,
    httpcore.ConnectionNotAvailable,
)


class FhirTimedOut(Exception):
    """Connecting, sending, waiting for a pooled connection or reading took longer than allowed."""


class FhirUnreachable(Exception):
    """The server gave no usable HTTP answer; `kind` names how (ConnectError, ReadError, ...), the
    word the cards show."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


def ssl_context() -> ssl.SSLContext:
    """Certificates as httpx reads them: certifi's bundle, or SSL_CERT_FILE / SSL_CERT_DIR when set
    (made once per worker: loading the bundle takes milliseconds)."""
    return httpx.create_ssl_context()


class Answer:
    """An answer's status, headers and body, decoded (gzip, deflate) piece by piece."""

    __slots__ = ("status_code", "_headers", "_response")

    def __init__(self, response: httpcore.Response) -> None:
        self.status_code = response.status
        self._headers = response.headers
        self._response = response

    def header(self, name: str) -> str:
        """The first value of a header (names compared case-insensitively), or ""."""
        wanted = name.lower().encode("ascii")
        for key, value in self._headers:
            if key.lower() == wanted:
                return value.decode("latin-1")
        return ""

    def iter_bytes(self) -> Iterator[bytes]:
        encoding = self.header("Content-Encoding").strip().lower()
        stream: Any = self._response.iter_stream()
        if encoding in ("", "identity"):
            yield from stream
            return
        if encoding not in ("gzip", "x-gzip", "deflate"):
            raise FhirUnreachable("DecodingError")  # not offered in Accept-Encoding
        yield from _decoded(stream, encoding)


def _decoded(stream: Iterator[bytes], encoding: str) -> Iterator[bytes]:
    # gzip framing; "deflate" is zlib framing, sent raw by some servers (read as httpx does)
    decoder = zlib.decompressobj(16 + zlib.MAX_WBITS if "gzip" in encoding else zlib.MAX_WBITS)
    first = True
    try:
        for chunk in stream:
            if first and encoding == "deflate" and chunk:
                try:
                    zlib.decompressobj().decompress(chunk[:2])
                except zlib.error:
                    decoder = zlib.decompressobj(-zlib.MAX_WBITS)
            first = False
            data = chunk
            while data:
                piece = decoder.decompress(data, DECODED_PIECE_BYTES)
                if piece:
                    yield piece
                data = decoder.unconsumed_tail
        rest = decoder.flush()
        if rest:
            yield rest
        if not decoder.eof:  # the compressed stream stopped before its end: a cut answer
            raise zlib.error("truncated")
    except zlib.error:
        raise FhirUnreachable("DecodingError") from None


def environment_proxy(scheme: str, host: str) -> str | None:
    """The proxy URL the environment (HTTPS_PROXY, HTTP_PROXY, ALL_PROXY, NO_PROXY) names for this
    server, as httpx followed it; None to connect directly."""
    proxies = getproxies_environment()
    proxy = proxies.get(scheme) or proxies.get("all")
    if not proxy or proxy_bypass_environment(host, proxies):
        return None
    return proxy if "://" in proxy else f"http://{proxy}"


class DirectConnections:
    """Kept-alive connections to one server, taken and given back in a step each.

    httpcore's ConnectionPool matches its whole queue against every connection on each request and
    each release, polling each idle socket as it goes: with a call's 8 queries at once that
    bookkeeping cost more CPU than the requests. Here an idle connection is popped from a stack
    (newest first: the least likely to have been closed by the server), checked once, and pushed
    back when its answer was read to the end; the number open at once is capped, a request waiting
    for one at most its pool timeout.
    """

    def __init__(self, context: ssl.SSLContext, connections: int) -> None:
        self._context = context
        self._idle: list[httpcore.HTTPConnection] = []
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(connections)

    @contextmanager
    def stream(
        self,
        method: str,
        url: str,
        *,
        headers: list[tuple[str, str]],
        content: bytes | None,
        extensions: dict[str, Any],
    ) -> Iterator[httpcore.Response]:
        target = httpcore.URL(url)
        if target.scheme not in (b"http", b"https"):
            raise httpcore.UnsupportedProtocol(f"not an http(s) URL: {target.scheme!r}")
        host = target.host.decode("ascii")
        if ":" in host:
            host = f"[{host}]"  # an IPv6 address
        if target.port is not None and target.port != DEFAULT_PORTS[target.scheme.decode()]:
            host = f"{host}:{target.port}"
        request = httpcore.Request(
            method,
            target,
            headers=[("Host", host), *headers],
            content=content,
            extensions=extensions,
        )
        if not self._slots.acquire(timeout=extensions["timeout"]["pool"]):
            raise httpcore.PoolTimeout("every connection to this server is in use")
        try:
            connection, response = self._send(request)
            try:
                yield response
            finally:
                response.close()
                self._give_back(connection)
        finally:
            self._slots.release()

    def _send(self, request: httpcore.Request) -> tuple[httpcore.HTTPConnection, httpcore.Response]:
        while True:
            connection, reused = self._take(request.url.origin)
            try:
                return connection, connection.handle_request(request)
            except httpcore.ConnectionNotAvailable:
                connection.close()  # taken by the server between the check and the request
            except (httpcore.RemoteProtocolError, httpcore.ReadError, httpcore.WriteError):
                connection.close()
                if not reused:
                    raise
                # A kept-alive connection the server closed as the request went out (its idle
                # timeout): no answer came, and a read is safe to send again, on the next one.
            except BaseException:
                connection.close()
                raise

    def _take(self, origin: httpcore.Origin) -> tuple[httpcore.HTTPConnection, bool]:
        """An idle connection that still looks open (True), else a new one (False)."""
        while True:
            with self._lock:
                connection = self._idle.pop() if self._idle else None
            if connection is None:
                return httpcore.HTTPConnection(origin, ssl_context=self._context), False
            if connection.is_idle() and not connection.has_expired():
                return connection, True
            connection.close()

    def _give_back(self, connection: httpcore.HTTPConnection) -> None:
        # an answer not read to the end leaves its connection closed, never half-read in the stack
        if connection.is_idle() and not connection.is_closed():
            with self._lock:
                self._idle.append(connection)
        else:
            connection.close()


class HostConnections:
    """One FHIR server's pool of kept-alive connections (safe to share between threads), direct or
    through the environment's proxy."""

    def __init__(self, base_url: str, connections: int, context: ssl.SSLContext) -> None:
        parts = urlsplit(base_url)
        self.user_agent = f"bonecds/{software_version()}"
        self.proxy_refused = ""
        self.pool: DirectConnections | httpcore.HTTPProxy
        proxy = environment_proxy(parts.scheme.lower(), parts.hostname or "")
        proxy_parts = urlsplit(proxy) if proxy else None
        if proxy_parts is not None and proxy_parts.scheme.lower() not in ("http", "https"):
            # a SOCKS proxy needs a package the service does not install: reads fail, saying so
            # (never around the proxy: the network may allow only it)
            log.warning("FHIR reads: proxy scheme %r is not supported", proxy_parts.scheme)
            self.proxy_refused, proxy_parts = "UnsupportedProxy", None
        if proxy_parts is None:
            self.pool = DirectConnections(context, connections)
            return
        credentials = None
        if proxy_parts.username is not None:
            credentials = (unquote(proxy_parts.username), unquote(proxy_parts.password or ""))
        plain = proxy_parts._replace(netloc=proxy_parts.netloc.rpartition("@")[2]).geturl()
        self.pool = httpcore.HTTPProxy(
            proxy_url=plain,
            proxy_auth=credentials,
            ssl_context=context,
            max_connections=connections,
            max_keepalive_connections=connections,
        )

    @contextmanager
    def stream(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str],
        content: bytes | None = None,
        timeout: float,
    ) -> Iterator[Answer]:
        """The answer to one request, its body read while the block runs (the connection goes back
        to the pool after it); FhirTimedOut or FhirUnreachable when there is none, also while
        the body is read."""
        if self.proxy_refused:
            raise FhirUnreachable(self.proxy_refused)
        sent = {
            "Accept-Encoding": "gzip, deflate",
            "User-Agent": self.user_agent,
            **headers,
        }
        if content is not None:
            sent["Content-Length"] = str(len(content))
        limits = {"connect": timeout, "read": timeout, "write": timeout, "pool": timeout}
        try:
            with self.pool.stream(
                method,
                quote(url, safe=URL_SAFE),
                headers=list(sent.items()),
                content=content,
                extensions={"timeout": limits},
            ) as response:
                yield Answer(response)
        except httpcore.TimeoutException:
            raise FhirTimedOut() from None
        except NO_ANSWER as error:
            raise FhirUnreachable(type(error).__name__) from None
