"""From "my EHR's key" to a 200, with the installed `bonecds` command: keygen writes a key pair, a
JWKS and a trusted-clients file; mint-token signs as that EHR; the service accepts it. And
`bonecds token` names the address the local service really listens on."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import jwt
import pytest

from fixtures.prefetch import scenario_request, transaction_resources
from fixtures.scenarios import scenario
from service import create_app
from service.client_keys import record_serving_address
from service.config import Settings

BASE = "https://cds.hospital.example"
ISSUER = "https://ehr.hospital.example/"


def bonecds(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    installed = shutil.which("bonecds", path=str(Path(sys.executable).parent))
    command = [installed] if installed else [sys.executable, "-m", "service.cli"]
    return subprocess.run(
        [*command, *argv],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        check=False,
    )


@pytest.mark.parametrize("algorithm", ["ES384", "RS384"])
def test_keygen_then_mint_token_then_a_200(tmp_path, algorithm):
    prefix = tmp_path / "keys" / "ehr"
    made = bonecds("keygen", "--iss", ISSUER, "--alg", algorithm, "--out", str(prefix))
    assert made.returncode == 0, made.stderr
    private = prefix.with_name("ehr-private.json")
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    jwks = json.loads(prefix.with_name("ehr-jwks.json").read_text())
    assert "d" not in jwks["keys"][0] and jwks["keys"][0]["alg"] == algorithm
    clients_file = prefix.with_name("ehr-client.json")
    assert json.loads(clients_file.read_text())["clients"][0]["iss"] == ISSUER

    minted = bonecds(
        "mint-token",
        "--iss",
        ISSUER,
        "--key-file",
        str(private),
        "--base-url",
        BASE,
        "--service",
        "bonecds-order-sign",
    )
    assert minted.returncode == 0, minted.stderr
    token = minted.stdout.strip()
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["iss"] == ISSUER and claims["aud"] == f"{BASE}/cds-services/bonecds-order-sign"

    app = create_app(
        Settings(
            database_url=f"sqlite:///{tmp_path / 'db.sqlite3'}",
            public_base_url=BASE,
            auth="on",
            clients_file=str(clients_file),
        )
    )
    s = scenario("dose-adjust-first-dose")
    service = app.extensions["bonecds"].services[s.service_id]
    body = scenario_request(service, s, resources=transaction_resources(s.patient.transaction()))
    path = f"/cds-services/{s.service_id}"
    client = app.test_client()
    assert client.post(path, json=body).status_code == 401
    answer = client.post(path, json=body, headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200, answer.get_data(as_text=True)


def test_keygen_never_overwrites_a_key(tmp_path):
    prefix = str(tmp_path / "ehr")
    assert bonecds("keygen", "--iss", ISSUER, "--out", prefix).returncode == 0
    again = bonecds("keygen", "--iss", ISSUER, "--out", prefix)
    assert again.returncode == 2 and "not overwritten" in again.stderr


def test_own_issuer_needs_its_own_key(tmp_path):
    refused = bonecds("mint-token", "--iss", ISSUER)
    assert refused.returncode == 2 and "--key-file" in refused.stderr


def test_token_names_the_port_the_dev_service_listens_on(tmp_path):
    key_file = tmp_path / "var" / "dev-client-key.json"
    env = {"BONECDS_DEV_KEY_FILE": str(key_file), "BONECDS_PUBLIC_BASE_URL": ""}
    settings = Settings(auth="dev", dev_key_path=str(key_file))
    record_serving_address(settings, "0.0.0.0", 8140)  # noqa: S104 (what `make run` may bind)
    minted = bonecds("token", "--service", "bonecds-order-sign", env=env)
    assert minted.returncode == 0, minted.stderr
    claims = jwt.decode(minted.stdout.strip(), options={"verify_signature": False})
    assert claims["aud"] == "http://127.0.0.1:8140/cds-services/bonecds-order-sign"
    assert "where the local service listens" in minted.stderr
