"""The FHIR client on the wire, against real loopback servers: compressed answers decoded under the
size cap, URLs escaped as httpx escaped them, connections kept alive, the environment's proxy
followed (or refused when it cannot be)."""

from __future__ import annotations

import gzip
import ssl
import time
import zlib
from datetime import UTC, datetime, timedelta
from ipaddress import IPv4Address
from pathlib import Path

import orjson
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from hooks.facts.fetch_failure import FetchFailure, FetchReason
from service.record.fhir_client import FhirFetcher
from service.record.fhir_http import FhirTimedOut, FhirUnreachable, HostConnections, ssl_context
from service.record.pools import WorkerPools
from tests.support.answering_server import AnsweringServer, Asked, Reply

BUNDLE = orjson.dumps(
    {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [
            {
                "resource": {
                    "resourceType": "Condition",
                    "id": f"c{n}",
                    "note": [{"text": "x" * 200}],
                }
            }
            for n in range(20)
        ],
    }
)


def fetcher(**options) -> FhirFetcher:
    return FhirFetcher(
        timeout_seconds=2.0, budget_seconds=4.0, max_pages=3, max_parallel=2, batch="off", **options
    )


def conditions(base_url: str, **options):
    return fetcher(**options).fetch_all(base_url, None, {"c": "Condition?patient=p1"})["c"]


def raw_deflate(data: bytes) -> bytes:
    packer = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return packer.compress(data) + packer.flush()


@pytest.mark.parametrize(
    "encoding, body",
    [
        ("gzip", gzip.compress(BUNDLE)),
        ("deflate", zlib.compress(BUNDLE)),
        ("deflate", raw_deflate(BUNDLE)),  # deflate sent without its zlib header
        ("identity", BUNDLE),
    ],
    ids=["gzip", "deflate-zlib", "deflate-raw", "identity"],
)
def test_compressed_answers_are_read_and_compression_is_offered(encoding, body):
    with AnsweringServer(lambda _a: Reply(200, body, {"Content-Encoding": encoding})) as server:
        outcome = conditions(server.base_url)
    assert outcome.ok and [r["id"] for r in outcome.resources] == [f"c{n}" for n in range(20)]
    (asked,) = server.asked
    assert asked.headers["Accept-Encoding"] == "gzip, deflate"
    assert asked.headers["User-Agent"].startswith("bonecds/")
    assert asked.headers["Host"] == server.base_url.removeprefix("http://")


def test_a_small_compressed_answer_that_expands_past_the_cap_is_too_large():
    bomb = gzip.compress(b"[" + b" " * (6 * 1024 * 1024) + b"]")  # 6 MiB of JSON in a few KiB
    assert len(bomb) < 64 * 1024
    with AnsweringServer(lambda _a: Reply(200, bomb, {"Content-Encoding": "gzip"})) as server:
        outcome = conditions(server.base_url, max_response_bytes=1024 * 1024)
    assert outcome.error is not None and outcome.error.reason is FetchReason.TOO_LARGE


@pytest.mark.parametrize(
    "encoding, body",
    [("br", BUNDLE), ("gzip", b"not gzip at all"), ("gzip", gzip.compress(BUNDLE)[:-30])],
    ids=["not-offered", "corrupt", "cut-short"],
)
def test_an_answer_that_cannot_be_decoded_says_so(encoding, body):
    with AnsweringServer(lambda _a: Reply(200, body, {"Content-Encoding": encoding})) as server:
        outcome = conditions(server.base_url)
    assert outcome.error == FetchFailure(
        FetchReason.UNREACHABLE, "FHIR server unreachable (DecodingError)"
    )


def test_urls_are_escaped_as_httpx_sent_them_and_connections_are_kept_alive():
    with AnsweringServer(lambda _a: Reply(200, b"{}")) as server:
        host = HostConnections(server.base_url, 4, ssl_context())
        for _ in range(5):
            url = (
                f"{server.base_url}/fhir/Observation?code=http://loinc.org|2160-0,x&name=a bé&p=%41"
            )
            with host.stream(
                "GET", url, headers={"Accept": "application/fhir+json"}, timeout=2
            ) as a:
                assert a.status_code == 200 and b"".join(a.iter_bytes()) == b"{}"
    targets = {asked.target for asked in server.asked}
    assert targets == {"/fhir/Observation?code=http://loinc.org|2160-0,x&name=a%20b%C3%A9&p=%41"}
    assert len({asked.peer_port for asked in server.asked}) == 1  # one kept-alive connection


def test_the_environments_proxy_carries_the_reads_with_its_credentials(monkeypatch):
    def as_proxy(asked: Asked) -> Reply:
        return Reply(200, BUNDLE)

    with AnsweringServer(as_proxy) as proxy:
        port = proxy.base_url.rsplit(":", 1)[1]
        monkeypatch.setenv("HTTP_PROXY", f"http://ops:s%40cret@127.0.0.1:{port}")
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        outcome = conditions("http://ehr.invalid/fhir")
    assert outcome.ok and len(outcome.resources) == 20
    (asked,) = proxy.asked
    assert asked.target == "http://ehr.invalid/fhir/Condition?patient=p1"  # absolute form
    assert asked.headers["Proxy-Authorization"] == "Basic b3BzOnNAY3JldA=="  # ops:s@cret


def test_no_proxy_names_the_servers_read_directly(monkeypatch):
    with AnsweringServer(lambda _a: Reply(200, BUNDLE)) as server:
        monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # nothing listens there
        monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
        outcome = conditions(server.base_url)
    assert outcome.ok and len(server.asked) == 1


def test_a_proxy_the_service_cannot_use_fails_the_reads_instead_of_going_around_it(monkeypatch):
    monkeypatch.setenv("ALL_PROXY", "socks5://127.0.0.1:1080")
    monkeypatch.delenv("HTTP_PROXY", raising=False)
    monkeypatch.delenv("http_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    with AnsweringServer(lambda _a: Reply(200, BUNDLE)) as server:
        outcome = conditions(server.base_url)
        host = HostConnections(server.base_url, 1, ssl_context())
        with pytest.raises(FhirUnreachable):
            with host.stream("GET", server.base_url, headers={}, timeout=1):
                pass
    assert server.asked == []
    assert outcome.error == FetchFailure(
        FetchReason.UNREACHABLE, "FHIR server unreachable (UnsupportedProxy)"
    )


@pytest.fixture(scope="module")
def loopback_certificate(tmp_path_factory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bonecds test FHIR server")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(IPv4Address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    cert_file, key_file = folder / "server.pem", folder / "server.key"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


def test_https_servers_are_trusted_through_the_environments_ca_bundle(
    monkeypatch, loopback_certificate
):
    cert_file, _key = loopback_certificate
    with AnsweringServer(lambda _a: Reply(200, BUNDLE), tls=loopback_certificate) as server:
        assert server.base_url.startswith("https://")
        monkeypatch.delenv("SSL_CERT_FILE", raising=False)
        monkeypatch.delenv("SSL_CERT_DIR", raising=False)
        untrusted = conditions(server.base_url)
        monkeypatch.setenv("SSL_CERT_FILE", str(cert_file))
        trusted = conditions(server.base_url)
    assert untrusted.error == FetchFailure(
        FetchReason.UNREACHABLE, "FHIR server unreachable (ConnectError)"
    )
    assert trusted.ok and len(trusted.resources) == 20
    assert len(server.asked) == 1  # the unverified server was never sent the query


def read_all(host: HostConnections, url: str, timeout: float = 2.0) -> tuple[int, bytes]:
    with host.stream("GET", url, headers={}, timeout=timeout) as answer:
        return answer.status_code, b"".join(answer.iter_bytes())


@pytest.mark.parametrize(
    "reply",
    [
        Reply(200, b"{}", {"Connection": "close"}),  # says it closes
        Reply(200, b"{}", then_close=True),  # closes an idle connection without a word
    ],
    ids=["announced", "silent"],
)
def test_a_connection_the_server_closed_is_replaced_not_used(reply):
    with AnsweringServer(lambda _a: reply) as server:
        host = HostConnections(server.base_url, 4, ssl_context())
        answers = [read_all(host, server.base_url + "/fhir/Patient/p1") for _ in range(3)]
    assert answers == [(200, b"{}")] * 3
    assert len({asked.peer_port for asked in server.asked}) == 3


def test_an_answer_left_unread_closes_its_connection_instead_of_returning_it():
    with AnsweringServer(lambda _a: Reply(401, b'{"resourceType": "OperationOutcome"}')) as server:
        host = HostConnections(server.base_url, 4, ssl_context())
        for _ in range(3):
            with host.stream("GET", server.base_url + "/fhir/Patient/p1", headers={}, timeout=2):
                pass  # the status says enough: the body is not read
        assert read_all(host, server.base_url + "/fhir/Patient/p1")[0] == 401
    assert len({asked.peer_port for asked in server.asked}) == 4


def test_connections_are_capped_and_a_request_waits_only_its_timeout_for_one():
    with AnsweringServer(lambda _a: Reply(200, b"{}")) as server:
        host = HostConnections(server.base_url, 2, ssl_context())
        url = server.base_url + "/fhir/Patient/p1"
        with (
            host.stream("GET", url, headers={}, timeout=2) as first,
            host.stream("GET", url, headers={}, timeout=2) as second,
        ):
            assert b"".join(first.iter_bytes()) == b"".join(second.iter_bytes()) == b"{}"
            started = time.monotonic()
            with pytest.raises(FhirTimedOut):
                read_all(host, url, timeout=0.2)
            waited = time.monotonic() - started
        assert read_all(host, url) == (200, b"{}")  # both back in the pool
    assert 0.2 <= waited < 1.0
    assert len(server.asked) == 3  # the third request was never sent
    assert len({asked.peer_port for asked in server.asked}) == 2


def test_a_read_the_server_hung_up_on_goes_again_once_on_a_new_connection():
    """The server closes a kept-alive connection as the next request arrives (its idle timeout): no
    answer came, so the read goes again on a new connection; on a new connection it is not
    repeated."""
    seen_ports: set[int] = set()

    def answer(asked: Asked) -> Reply:
        reused = asked.peer_port in seen_ports
        seen_ports.add(asked.peer_port)
        return Reply(hang_up=True) if reused else Reply(200, b"{}")

    with AnsweringServer(answer) as server:
        host = HostConnections(server.base_url, 4, ssl_context())
        url = server.base_url + "/fhir/Patient/p1"
        assert read_all(host, url) == (200, b"{}")
        assert read_all(host, url) == (200, b"{}")
    first, hung_up, again = (asked.peer_port for asked in server.asked)
    assert first == hung_up != again

    with AnsweringServer(lambda _a: Reply(hang_up=True)) as server:
        outcome = conditions(server.base_url)
    assert outcome.error == FetchFailure(
        FetchReason.UNREACHABLE, "FHIR server unreachable (RemoteProtocolError)"
    )
    assert len(server.asked) == 1


def test_the_ca_bundle_is_loaded_once_and_before_the_first_read_when_prepared(monkeypatch):
    """`bonecds serve` prepares the fetcher in the preloading master: the workers inherit the CA
    bundle instead of each loading it (about 20 ms) on its first FHIR read."""
    loaded: list[ssl.SSLContext] = []

    def load() -> ssl.SSLContext:
        loaded.append(ssl_context())
        return loaded[-1]

    monkeypatch.setattr("service.record.pools.ssl_context", load)
    pools = WorkerPools(2)
    pools.prepare()
    assert len(loaded) == 1
    pools.prepare()
    first = pools.client("https://ehr-a.example.org/fhir")
    second = pools.client("https://ehr-b.example.org/fhir")
    assert len(loaded) == 1
    assert first.pool._context is second.pool._context is loaded[0]
