"""JWT client authentication on discovery, service and feedback: every token defect is a bare 401,
valid ES384 and RS384 tokens pass; replay refused across app instances sharing one database; JWKS
fetched from allowed jku URLs and cached."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from fixtures.builder import ANCHOR_INSTANT
from service import create_app
from service.config import Settings
from service.dev_keys import mint_token
from tests.support.jwt_clients import (
    BASE,
    EHR_ISSUER,
    ENDPOINTS,
    SIGN,
    call,
    token_for,
)


def make_app(tmp_path, clients_file, database: str | None = None):
    return create_app(
        Settings(
            database_url=f"sqlite:///{database or tmp_path / 'db.sqlite3'}",
            frozen_now=ANCHOR_INSTANT,
            public_base_url=BASE,
            auth="on",
            clients_file=clients_file,
            jwks_timeout_seconds=0.5,
        )
    )


@pytest.fixture(scope="module")
def client(tmp_path_factory, clients_file):
    return make_app(tmp_path_factory.mktemp("app"), clients_file).test_client()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def unsigned(header: dict, payload: dict) -> str:
    return f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(payload).encode())}."


def hmac_signed(header: dict, payload: dict, secret: bytes) -> str:
    """The key-confusion attack: HS256 with the client's public key as the secret (PyJWT will not
    build it)."""
    signing_input = unsigned(header, payload)[:-1]
    return (
        f"{signing_input}.{_b64(hmac.new(secret, signing_input.encode(), hashlib.sha256).digest())}"
    )


def defect_tokens(keys, endpoint: str) -> dict[str, str | None]:
    now = int(time.time())
    audience = BASE + ENDPOINTS[endpoint][1]
    claims = {
        "iss": EHR_ISSUER,
        "aud": audience,
        "iat": now,
        "exp": now + 300,
        "jti": "x-1",
        "tenant": "hospital-a",
    }
    ec_public_pem = (
        ECAlgorithm.from_jwk(json.dumps(keys["ec"]))
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return {
        "missing": None,
        "not-a-jwt": "not.a.jwt",
        "alg-none": unsigned({"alg": "none", "typ": "JWT", "kid": "ec-1"}, claims),
        "hs256-with-public-key": hmac_signed(
            {"alg": "HS256", "typ": "JWT", "kid": "ec-1"}, claims, ec_public_pem
        ),
        "es256": jwt.encode(
            claims,
            ec.generate_private_key(ec.SECP256R1()),
            algorithm="ES256",
            headers={"kid": "ec-1"},
        ),
        "unknown-kid": token_for(keys, endpoint, headers={"kid": "nobody"}),
        "bad-signature": token_for(keys, endpoint, key="other-ec"),
        "expired": token_for(keys, endpoint, claims={"iat": now - 1000, "exp": now - 61}),
        "future-iat": token_for(keys, endpoint, claims={"iat": now + 120}),
        "not-yet-valid-nbf": token_for(keys, endpoint, claims={"nbf": now + 600}),
        "wrong-aud": token_for(keys, endpoint, aud=f"{BASE}/cds-services/some-other-service"),
        "aud-of-other-host": token_for(
            keys, endpoint, aud="https://attacker.example" + ENDPOINTS[endpoint][1]
        ),
        "untrusted-iss": token_for(keys, endpoint, issuer="https://evil.example.org/"),
        # an attacker's key (kid not pinned) announced by the attacker's jku: never fetched, refused
        "jku-not-allowed": token_for(
            keys,
            endpoint,
            key="other-ec",
            headers={"jku": "https://evil.example.org/jwks", "kid": "attacker-1"},
        ),
        "wrong-tenant": token_for(keys, endpoint, claims={"tenant": "hospital-b"}),
        "no-jti": token_for(keys, endpoint, claims={"jti": ""}),
        "bearer-missing-word": "",
    }


DEFECTS = [
    "missing",
    "not-a-jwt",
    "alg-none",
    "hs256-with-public-key",
    "es256",
    "unknown-kid",
    "bad-signature",
    "expired",
    "future-iat",
    "not-yet-valid-nbf",
    "wrong-aud",
    "aud-of-other-host",
    "untrusted-iss",
    "jku-not-allowed",
    "wrong-tenant",
    "no-jti",
    "bearer-missing-word",
]


@pytest.mark.parametrize("endpoint", list(ENDPOINTS))
@pytest.mark.parametrize("defect", DEFECTS)
def test_every_token_defect_is_a_bare_401(client, keys, endpoint, defect, caplog):
    token = defect_tokens(keys, endpoint)[defect]
    response = (
        call(client, endpoint, token)
        if defect != "bearer-missing-word"
        else client.open(
            ENDPOINTS[endpoint][1],
            method=ENDPOINTS[endpoint][0],
            headers={"Authorization": token_for(keys, endpoint)},
        )
    )
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    outcome = response.get_json()
    assert outcome["resourceType"] == "OperationOutcome"
    # no reason is given away
    assert outcome["issue"][0]["diagnostics"] == "Authentication required."
    if token:
        assert token not in caplog.text


@pytest.mark.parametrize("endpoint", list(ENDPOINTS))
@pytest.mark.parametrize(
    "variant",
    [
        "es384",
        "es384-with-sub-and-nbf",
        "es384-aud-array",
        "rs384-via-jku",
        "rs384-with-sub-and-nbf",
        "expired-within-leeway",
    ],
)
def test_valid_tokens_pass(client, keys, endpoint, variant):
    now = int(time.time())
    rsa_issuer = "https://rsa-ehr.example.org/"
    kwargs = {
        "es384": {},
        "es384-with-sub-and-nbf": {"claims": {"sub": "clinician-7", "nbf": now - 5}},
        "es384-aud-array": {"aud": ["https://other.example.org", BASE + ENDPOINTS[endpoint][1]]},
        "rs384-via-jku": {"key": "rsa", "issuer": rsa_issuer},
        "rs384-with-sub-and-nbf": {
            "key": "rsa",
            "issuer": rsa_issuer,
            "claims": {"sub": "x", "nbf": now},
        },
        "expired-within-leeway": {"claims": {"iat": now - 400, "exp": now - 30}},
    }[variant]
    response = call(client, endpoint, token_for(keys, endpoint, **kwargs))
    assert response.status_code == 200, response.get_data(as_text=True)


def test_replayed_jti_is_refused_by_another_worker_sharing_the_database(
    tmp_path, clients_file, keys
):
    """Two app instances on one database file stand for two gunicorn workers of one deployment."""
    database = str(tmp_path / "shared.sqlite3")
    first, second = (make_app(tmp_path, clients_file, database).test_client() for _ in range(2))
    token = token_for(keys, "discovery")
    assert call(first, "discovery", token).status_code == 200
    assert call(second, "discovery", token).status_code == 401
    assert call(first, "discovery", token).status_code == 401
    # a new jti is fine
    assert call(second, "discovery", token_for(keys, "discovery")).status_code == 200


def test_jwks_is_cached_and_an_unknown_kid_does_not_hammer_the_jku(
    tmp_path, clients_file, keys, jwks_server
):
    client = make_app(tmp_path, clients_file).test_client()  # fresh cache
    issuer = "https://rsa-ehr.example.org/"
    before = jwks_server.requests
    for _ in range(3):
        assert (
            call(
                client, "discovery", token_for(keys, "discovery", key="rsa", issuer=issuer)
            ).status_code
            == 200
        )
    assert jwks_server.requests - before == 1
    for _ in range(3):
        token = token_for(
            keys, "discovery", key="rsa", issuer=issuer, headers={"kid": "rotated-away"}
        )
        assert call(client, "discovery", token).status_code == 401
    # one re-fetch for the unknown kid, then the rate limit holds
    assert jwks_server.requests - before <= 2


def test_a_hanging_jku_is_a_quick_401(tmp_path, clients_file, keys, jwks_server):
    client = make_app(tmp_path, clients_file).test_client()  # fresh cache
    jwks_server.hang = True
    try:
        started = time.monotonic()
        token = token_for(keys, "discovery", key="rsa", issuer="https://rsa-ehr.example.org/")
        assert call(client, "discovery", token).status_code == 401
        assert time.monotonic() - started < 2.0  # jwks_timeout_seconds is 0.5
    finally:
        jwks_server.hang = False


def test_preflight_and_health_need_no_token(client):
    assert (
        client.options(
            SIGN,
            headers={
                "Origin": "https://sandbox.cds-hooks.org",
                "Access-Control-Request-Method": "POST",
            },
        ).status_code
        == 204
    )
    assert client.get("/healthz").status_code == 200


def test_auth_on_without_trusted_clients_refuses_to_start(tmp_path):
    with pytest.raises(ValueError, match="BONECDS_CLIENTS_FILE"):
        create_app(Settings(database_url=f"sqlite:///{tmp_path}/x.db", auth="on"))


def test_settings_default_to_auth_on_and_explicit_off_wins():
    assert Settings.from_env({}).auth == "on"
    assert Settings.from_env({"BONECDS_AUTH": "off"}).auth == "off"
    with pytest.raises(ValueError):
        Settings.from_env({"BONECDS_AUTH": "maybe"})


def test_dev_mode_trusts_the_minted_token_and_only_it(tmp_path):
    app = create_app(
        Settings(
            database_url=f"sqlite:///{tmp_path}/d.db",
            auth="dev",
            public_base_url=BASE,
            dev_key_path=str(tmp_path / "dev-key.json"),
        )
    )
    client = app.test_client()
    key = json.loads((tmp_path / "dev-key.json").read_text())
    assert oct((tmp_path / "dev-key.json").stat().st_mode & 0o777) == "0o600"
    assert client.get("/cds-services").status_code == 401
    token = mint_token(key, "bonecds-dev", f"{BASE}/cds-services")
    assert (
        client.get("/cds-services", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
