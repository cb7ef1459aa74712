"""The FHIR client on the wire, against real loopback servers: compressed answers decoded under the
size cap, URLs escaped as httpx escaped them, connections kept alive, the environment's proxy
followed (or refused when it cannot be)."""

from __future__ import annotations

import gzip
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
from service.record.fhir_http import FhirUnreachable, HostConnections, ssl_context
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
