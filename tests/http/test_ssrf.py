"""The SSRF guard: the service calls only fhirServer base URLs allowed for the client, compared
strictly; a refused server is never contacted (a listener counts connections) and the cards say what
could not be read."""

from __future__ import annotations

import json
import socket
import threading

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from fixtures.prefetch import hook_request, transaction_resources
from fixtures.scenarios import scenario
from service.dev_keys import mint_token
from service.record.ssrf import fhir_server_refusal

ALLOWED = ("https://ehr.example.org/fhir",)


@pytest.mark.parametrize(
    "url, allowed",
    [
        ("https://ehr.example.org/fhir", True),
        ("https://ehr.example.org/fhir/", True),
        ("HTTPS://EHR.Example.ORG/fhir", True),
        ("https://ehr.example.org./fhir", True),
        ("https://ehr.example.org:443/fhir", True),
        ("https://ehr.example.org/fhir/tenant-7", True),
        ("https://ehr.example.org/fhir-evil", False),
        ("https://ehr.example.org/", False),
        ("http://ehr.example.org/fhir", False),
        ("https://ehr.example.org:8443/fhir", False),
        ("https://ehr.example.org@127.0.0.1/fhir", False),
        ("https://user:pw@ehr.example.org/fhir", False),
        ("https://ehr.example.org.attacker.net/fhir", False),
        ("https://127.0.0.1/fhir", False),
        ("http://localhost:8080/fhir", False),
        ("http://[::1]/fhir", False),
        ("https://0x7f000001/fhir", False),
        ("file:///etc/passwd", False),
        ("gopher://ehr.example.org/fhir", False),
        ("https://ehr.example.org/fhir?x=1", False),
        ("https://ehr.example.org/fhir#frag", False),
        ("https://ehr.example.org\\@evil.example/fhir", False),
        ("https://ehr.example.org/fhir\n", False),
        ("not a url", False),
    ],
)
def test_allowlist_comparison_is_strict(url, allowed):
    assert (fhir_server_refusal(url, ALLOWED, allow_loopback=False) is None) is allowed


@pytest.mark.parametrize(
    "url, allowed",
    [
        ("http://localhost:8080/fhir", True),
        ("http://127.0.0.1:9/fhir", True),
        ("http://[::1]/fhir", True),
        ("http://127.0.0.1.nip.io/fhir", False),
        ("file:///etc/passwd", False),
        ("http://10.0.0.5/fhir", False),
    ],
)
def test_development_mode_adds_only_loopback(url, allowed):
    assert (fhir_server_refusal(url, (), allow_loopback=True) is None) is allowed


class ConnectionCounter:
    """A loopback listener that accepts and counts connections (and answers nothing useful)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.connections = 0
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/fhir"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            conn.close()


@pytest.fixture()
def listener():
    counter = ConnectionCounter()
    yield counter
    counter.sock.close()


def patient_only_request(
    app,
    fhir_server: str,
    token: str | None = "ehr-access-token",  # noqa: S107  (a fixed test token)
) -> dict:
    s = scenario("dose-adjust-first-dose")
    service = app.extensions["bonecds"].services["bonecds-order-sign"]
    return hook_request(
        service,
        s.patient_id,
        s.draft_orders,
        resources=transaction_resources(s.patient.transaction()),
        prefetch_keys=["patient"],
        fhir_server=fhir_server,
        token=token,
    )


def assert_refused_and_said(response) -> None:
    assert response.status_code == 200
    cards = {c["source"]["topic"]["code"]: c for c in response.get_json()["cards"]}
    assert "renal-data-missing" in cards
    assert (
        "the fhirServer is not on the allowlist for this client"
        in cards["renal-data-missing"]["detail"]
    )


def test_auth_off_uses_the_allowlist_and_never_contacts_other_servers(make_app, listener):
    app = make_app(public_base_url=None, fhir_allowlist=ALLOWED)
    assert_refused_and_said(
        app.test_client().post(
            "/cds-services/bonecds-order-sign", json=patient_only_request(app, listener.url)
        )
    )
    assert listener.connections == 0


def test_allowed_server_is_contacted(make_app, listener):
    """The positive control: the same listener, allowlisted, does get the calls."""
    app = make_app(
        public_base_url=None,
        fhir_allowlist=(listener.url,),
        fhir_timeout_seconds=0.3,
        fhir_budget_seconds=1.0,
    )
    response = app.test_client().post(
        "/cds-services/bonecds-order-sign", json=patient_only_request(app, listener.url)
    )
    assert response.status_code == 200
    assert listener.connections > 0


def test_a_client_may_use_only_its_own_fhir_servers(tmp_path, make_app, listener):
    key = json.loads(ECAlgorithm.to_jwk(ec.generate_private_key(ec.SECP384R1())))
    key.update(kid="k1", alg="ES384")
    public = {k: v for k, v in key.items() if k != "d"}
    clients = tmp_path / "clients.json"
    clients.write_text(
        json.dumps(
            {
                "clients": [
                    {
                        "iss": "https://ehr-a.example.org/",
                        "jwks": {"keys": [public]},
                        "fhir_servers": list(ALLOWED),
                    },
                    {
                        "iss": "https://ehr-b.example.org/",
                        "jwks": {"keys": [public]},
                        "fhir_servers": [listener.url],
                    },
                ]
            }
        )
    )
    app = make_app(
        auth="on",
        clients_file=str(clients),
        public_base_url="https://cds.example.org",
        fhir_allowlist=(listener.url,),
    )  # the auth-off allowlist does not widen a client's list
    url = "https://cds.example.org/cds-services/bonecds-order-sign"
    token = mint_token(key, "https://ehr-a.example.org/", url)
    response = app.test_client().post(
        "/cds-services/bonecds-order-sign",
        json=patient_only_request(app, listener.url),
        headers={"Authorization": f"Bearer {token}"},
    )
    assert_refused_and_said(response)
    assert listener.connections == 0
