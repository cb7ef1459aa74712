"""CDS clients for the authentication tests: signing keys, a loopback JWKS endpoint, a trusted
clients file naming them, tokens minted for an endpoint and a call to that endpoint. The fixtures
(keys, jwks_server, clients_file) are registered for every test in tests/conftest.py."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from fixtures.prefetch import hook_request, transaction_resources
from fixtures.scenarios import scenario
from service.dev_keys import mint_token

BASE = "https://cds.example.org"
EHR_ISSUER = "https://ehr.example.org/"
EHR_FHIR = "https://ehr.example.org/fhir"
SIGN = "/cds-services/bonecds-order-sign"
ENDPOINTS = {
    "discovery": ("GET", "/cds-services"),
    "service": ("POST", SIGN),
    "feedback": ("POST", f"{SIGN}/feedback"),
}


def private_jwk(key, kid: str) -> dict:
    algorithm = ECAlgorithm if isinstance(key, ec.EllipticCurvePrivateKey) else RSAAlgorithm
    jwk = json.loads(algorithm.to_jwk(key))
    jwk.update(kid=kid, alg="ES384" if algorithm is ECAlgorithm else "RS384", use="sig")
    return jwk


def public(jwk: dict) -> dict:
    return {k: v for k, v in jwk.items() if k not in ("d", "p", "q", "dp", "dq", "qi")}


class JwksServer:
    """A loopback JWKS endpoint that counts its requests and can be told to hang."""

    def __init__(self, jwks: dict) -> None:
        owner = self
        self.jwks, self.requests, self.hang = jwks, 0, False

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                owner.requests += 1
                if owner.hang:
                    time.sleep(3)
                body = json.dumps(owner.jwks).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/jwks.json"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture(scope="module")
def keys():
    return {
        "ec": private_jwk(ec.generate_private_key(ec.SECP384R1()), "ec-1"),
        "rsa": private_jwk(rsa.generate_private_key(public_exponent=65537, key_size=2048), "rsa-1"),
        "other-ec": private_jwk(ec.generate_private_key(ec.SECP384R1()), "ec-1"),
    }


@pytest.fixture(scope="module")
def jwks_server(keys):
    server = JwksServer({"keys": [public(keys["rsa"])]})
    yield server
    server.server.shutdown()


@pytest.fixture(scope="module")
def clients_file(tmp_path_factory, keys, jwks_server):
    path = tmp_path_factory.mktemp("auth") / "clients.json"
    path.write_text(
        json.dumps(
            {
                "clients": [
                    {
                        "iss": EHR_ISSUER,
                        "jwks": {"keys": [public(keys["ec"])]},
                        "fhir_servers": [EHR_FHIR],
                        "tenant": "hospital-a",
                    },
                    {
                        "iss": "https://rsa-ehr.example.org/",
                        "jku": [jwks_server.url],
                        "fhir_servers": [EHR_FHIR],
                    },
                ]
            }
        )
    )
    return str(path)


def call(client, endpoint: str, token: str | None):
    method, path = ENDPOINTS[endpoint]
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    if method == "GET":
        return client.get(path, headers=headers)
    if endpoint == "feedback":
        body = {
            "feedback": [
                {
                    "card": "00000000-0000-4000-8000-000000000000",
                    "outcome": "overridden",
                    "outcomeTimestamp": "2026-10-15T10:05:31Z",
                }
            ]
        }
    else:
        s = scenario("dose-adjust-first-dose")
        service = client.application.extensions["bonecds"].services["bonecds-order-sign"]
        body = hook_request(
            service,
            s.patient_id,
            s.draft_orders,
            resources=transaction_resources(s.patient.transaction()),
        )
    return client.post(path, json=body, headers=headers)


def token_for(
    keys,
    endpoint: str,
    *,
    key: str = "ec",
    issuer: str = EHR_ISSUER,
    claims: dict | None = None,
    headers: dict | None = None,
    aud: str | list | None = None,
) -> str:
    extra = {"tenant": "hospital-a"} if issuer == EHR_ISSUER else {}
    extra.update(claims or {})
    audience = aud if aud is not None else BASE + ENDPOINTS[endpoint][1]
    return mint_token(keys[key], issuer, audience, extra_claims=extra, headers=headers)
