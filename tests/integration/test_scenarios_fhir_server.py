"""Every scenario gives the same cards with full prefetch, partial prefetch and none (read from a
real FHIR server by the running service)."""

from __future__ import annotations

import copy
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from fixtures.builder import ANCHOR_INSTANT
from fixtures.load import load_fixtures
from fixtures.offers import offers
from fixtures.prefetch import hook_request, scenario_request, transaction_resources
from fixtures.scenarios import all_scenarios
from service.dev_keys import mint_token

SCENARIOS = all_scenarios()
ROOT = Path(__file__).resolve().parents[2]


def rules(cards: list[dict]) -> list[tuple[str, str]]:
    return sorted((c["source"]["topic"]["code"], c["indicator"]) for c in cards)


@pytest.fixture(scope="module")
def loaded_server(fhir_server):
    names = load_fixtures(
        fhir_server.base_url,
        fhir_server.token,
        [s.patient.transaction() for s in SCENARIOS],
        names=[s.name for s in SCENARIOS],
    )
    assert len(names) == len(SCENARIOS)
    return fhir_server


CLIENT_ISSUER = "https://ehr.integration.test/"
PUBLIC_BASE = "https://cds.example.org"


@pytest.fixture(scope="module")
def client_key():
    """The EHR's signing key: the service trusts it through a trusted-clients file, as in
    production."""
    jwk = json.loads(ECAlgorithm.to_jwk(ec.generate_private_key(ec.SECP384R1())))
    jwk.update(kid="integration-1", alg="ES384", use="sig")
    return jwk


MINTED: list[str] = []  # every JWT sent in this module, to prove none reaches the service log


def signed(client_key, path: str) -> dict[str, str]:
    """Authorization header with a fresh JWT for one call (each jti is accepted once)."""
    MINTED.append(mint_token(client_key, CLIENT_ISSUER, PUBLIC_BASE + path))
    return {"Authorization": f"Bearer {MINTED[-1]}"}


@pytest.fixture(scope="module")
def running_service(tmp_path_factory, loaded_server, client_key):
    """The service as users run it: `bonecds serve` under gunicorn, on a free loopback port, clock
    frozen at the anchor."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    workdir = tmp_path_factory.mktemp("service")
    clients = workdir / "clients.json"
    clients.write_text(
        json.dumps(
            {
                "clients": [
                    {
                        "iss": CLIENT_ISSUER,
                        "jwks": {"keys": [{k: v for k, v in client_key.items() if k != "d"}]},
                        "fhir_servers": [loaded_server.base_url],
                    }
                ]
            }
        )
    )
    env = {
        **os.environ,
        "BONECDS_NOW": ANCHOR_INSTANT.isoformat(),
        "DATABASE_URL": f"sqlite:///{workdir}/feedback.sqlite3",
        "BONECDS_PUBLIC_BASE_URL": PUBLIC_BASE,
        "BONECDS_AUTH": "on",
        "BONECDS_CLIENTS_FILE": str(clients),
    }
    log = open(workdir / "service.log", "wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "service.cli",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "2",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(150):
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None:
                break
            time.sleep(0.1)
        else:
            raise RuntimeError("service did not start")
        if process.poll() is not None:
            raise RuntimeError((workdir / "service.log").read_text()[-2000:])
        yield base, workdir / "service.log"
    finally:
        process.terminate()
        process.wait(timeout=15)
        log.close()


@pytest.mark.integration
@pytest.mark.parametrize("scn", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_same_cards_with_full_partial_and_no_prefetch(
    scn, loaded_server, running_service, client, client_key
):
    service = client.application.extensions["bonecds"].services[scn.service_id]
    path = f"/cds-services/{scn.service_id}"
    resources = transaction_resources(scn.patient.transaction())
    full = client.post(path, json=scenario_request(service, scn, resources=resources))
    assert full.status_code == 200
    assert rules(full.get_json()["cards"]) == sorted(scn.expected)

    partial_body = scenario_request(
        service,
        scn,
        resources=resources,
        prefetch_keys=["patient", "renal", "conditions"],
        fhir_server=loaded_server.base_url,
        token=loaded_server.token,
    )
    base, _log = running_service
    partial = httpx.post(
        f"{base}{path}", json=partial_body, headers=signed(client_key, path), timeout=10
    )
    assert partial.status_code == 200, partial.text
    assert rules(partial.json()["cards"]) == sorted(scn.expected)

    none_body = scenario_request(
        service, scn, fhir_server=loaded_server.base_url, token=loaded_server.token
    )
    assert "prefetch" not in none_body
    fetched = httpx.post(
        f"{base}{path}", json=none_body, headers=signed(client_key, path), timeout=10
    )
    assert fetched.status_code == 200, fetched.text
    assert rules(fetched.json()["cards"]) == sorted(scn.expected)
    # the buttons too: the same orders whichever way the record was read
    for answer in (full.get_json(), partial.json(), fetched.json()):
        assert offers(answer["cards"]) == dict(scn.offers)
    full_details = [c["detail"] for c in full.get_json()["cards"]]
    assert [c["detail"] for c in fetched.json()["cards"]] == full_details


@pytest.mark.integration
def test_unknown_patient_on_fhir_server_is_412(loaded_server, running_service, service, client_key):
    scn = SCENARIOS[4]
    drafts = copy.deepcopy(scn.draft_orders)
    for entry in drafts["entry"]:  # the drafts are for the patient the call names
        entry["resource"]["subject"] = {"reference": "Patient/bcds-nobody-here"}
    body = hook_request(
        service,
        "bcds-nobody-here",
        drafts,
        fhir_server=loaded_server.base_url,
        token=loaded_server.token,
    )
    response = httpx.post(
        f"{running_service[0]}/cds-services/bonecds-order-sign",
        json=body,
        timeout=10,
        headers=signed(client_key, "/cds-services/bonecds-order-sign"),
    )
    assert response.status_code == 412
    assert response.json()["resourceType"] == "OperationOutcome"


@pytest.mark.integration
def test_wrong_token_still_answers_and_says_what_could_not_be_checked(
    loaded_server, running_service, service, client_key
):
    if loaded_server.token is None:
        pytest.skip("this FHIR server does not enforce tokens")
    scn = next(s for s in SCENARIOS if s.name == "dose-adjust-first-dose")
    resources = transaction_resources(scn.patient.transaction())
    body = hook_request(
        service,
        scn.patient_id,
        scn.draft_orders,
        resources=resources,
        prefetch_keys=["patient"],
        fhir_server=loaded_server.base_url,
        token="wrong-token",
    )
    response = httpx.post(
        f"{running_service[0]}/cds-services/bonecds-order-sign",
        json=body,
        timeout=10,
        headers=signed(client_key, "/cds-services/bonecds-order-sign"),
    )
    assert response.status_code == 200
    cards = {card["source"]["topic"]["code"]: card for card in response.json()["cards"]}
    # every check that needs data from the server says it could not be done; none passes silently
    assert set(cards) == {
        "renal-data-missing",
        "calcium-data-missing",
        "dental-check-missing",
        "record-incomplete",
    }
    for card in cards.values():
        assert card["indicator"] == "warning"
        assert "could not be retrieved" in card["detail"] and "HTTP 401" in card["detail"]
    blocked = cards["record-incomplete"]["detail"]
    for what in (
        "Allergies",
        "Medication orders",
        "Problem list",
        "Pregnancy status",
        "allergy to the ordered agent",
        "history of osteonecrosis of the jaw",
        "another bone-modifying agent is ordered or active",
    ):
        assert what in blocked


@pytest.mark.integration
def test_service_log_has_no_patient_names_or_tokens(loaded_server, running_service):
    log_text = running_service[1].read_text()
    assert "hook=order-sign" in log_text
    for scn in SCENARIOS:
        patient = scn.patient.patient()
        assert scn.patient.family not in log_text and scn.patient.given not in log_text
        # some scenarios record none
        assert "birthDate" not in patient or patient["birthDate"] not in log_text
        assert all(identifier["value"] not in log_text for identifier in patient["identifier"])
    if loaded_server.token:
        assert loaded_server.token not in log_text
    assert MINTED and not any(
        token in log_text or token.split(".")[2] in log_text for token in MINTED
    )
    assert "Bearer" not in log_text
