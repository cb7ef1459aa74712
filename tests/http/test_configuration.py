"""Configuration is checked before the server listens (one line naming the file or variable, the
entry and the problem; exit 2; no traceback), the trusted-clients file is reloaded on SIGHUP, and
pinned keys win over a jku."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from fixtures.builder import ANCHOR_INSTANT
from service import create_app
from service.config import Settings
from service.dev_keys import mint_token

ROOT = Path(__file__).resolve().parents[2]
BONECDS = str(Path(sys.executable).with_name("bonecds"))
PUBLIC_BASE = "https://cds.example.org"
DISCOVERY = "/cds-services"


def new_key(kid: str) -> dict:
    jwk = json.loads(ECAlgorithm.to_jwk(ec.generate_private_key(ec.SECP384R1())))
    jwk.update(kid=kid, alg="ES384", use="sig")
    return jwk


def public(jwk: dict) -> dict:
    return {k: v for k, v in jwk.items() if k != "d"}


def clients_json(*entries: tuple[str, dict], jku: tuple[str, ...] = ()) -> str:
    return json.dumps(
        {
            "clients": [
                {
                    "iss": iss,
                    "jwks": {"keys": [public(key)]},
                    **({"jku": list(jku)} if jku else {}),
                    "fhir_servers": ["https://ehr.example.org/fhir"],
                }
                for iss, key in entries
            ]
        }
    )


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    full = {
        **os.environ,
        "BONECDS_AUTH": "on",
        "DATABASE_URL": "sqlite:////tmp/bonecds-config-test.sqlite3",
        **env,
    }
    return subprocess.run(
        [BONECDS, *args], cwd=ROOT, env=full, capture_output=True, text=True, timeout=60
    )


KEY = new_key("k1")
GOOD_ENTRY = {"iss": "https://ehr.example.org/", "jwks": {"keys": [public(KEY)]}}
EC_WITHOUT_XY = {k: v for k, v in public(KEY).items() if k not in ("x", "y")}
BAD_CLIENT_FILES = {
    "malformed-json": ('{"clients": [', "not valid JSON (line 1"),
    "list-at-top": ("[]", 'expected an object {"clients": [...]} at the top level, found list'),
    "wrong-top-key": ('{"client": []}', "found keys ['client']"),
    "no-iss": (
        json.dumps({"clients": [{"jwks": {"keys": [public(KEY)]}}]}),
        "clients[0] has no iss",
    ),
    "ec-key-without-x-y": (
        json.dumps(
            {"clients": [{"iss": "https://ehr.example.org/", "jwks": {"keys": [EC_WITHOUT_XY]}}]}
        ),
        "client 'https://ehr.example.org/': jwks key 0 (kid 'k1') is not a valid EC public key",
    ),
    "private-key-pinned": (
        json.dumps({"clients": [{"iss": "https://ehr.example.org/", "jwks": {"keys": [KEY]}}]}),
        "holds private key material",
    ),
    "key-without-kid": (
        json.dumps(
            {
                "clients": [
                    {
                        "iss": "https://ehr.example.org/",
                        "jwks": {"keys": [{k: v for k, v in public(KEY).items() if k != "kid"}]},
                    }
                ]
            }
        ),
        "jwks key 0 has no kid",
    ),
    "hmac-key": (
        json.dumps(
            {
                "clients": [
                    {
                        "iss": "https://ehr.example.org/",
                        "jwks": {"keys": [{"kty": "oct", "kid": "s", "k": "c2VjcmV0"}]},
                    }
                ]
            }
        ),
        "kty must be EC or RSA",
    ),
    "duplicate-issuer": (json.dumps({"clients": [GOOD_ENTRY, GOOD_ENTRY]}), "is listed twice"),
    "plain-http-jku": (
        json.dumps(
            {"clients": [{"iss": "https://ehr.example.org/", "jku": ["http://ehr.example.org/j"]}]}
        ),
        "jku must be a list of https:// URLs",
    ),
}


@pytest.mark.parametrize("command", ["check-config", "serve"])
@pytest.mark.parametrize("case", list(BAD_CLIENT_FILES))
def test_a_bad_trusted_clients_file_is_refused_in_one_line(tmp_path, case, command):
    text, problem = BAD_CLIENT_FILES[case]
    path = tmp_path / "clients.json"
    path.write_text(text)
    result = run(
        {"BONECDS_CLIENTS_FILE": str(path)},
        command,
        *(["--port", "1"] if command == "serve" else []),
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert (
        lines[0].startswith(f"bonecds: configuration error: BONECDS_CLIENTS_FILE {path}")
        and problem in lines[0]
    )


@pytest.mark.parametrize(
    "env, problem",
    [
        (
            {"BONECDS_CLIENTS_FILE": "/nonexistent/clients.json"},
            "BONECDS_CLIENTS_FILE /nonexistent/clients.json: no such file",
        ),
        ({"BONECDS_CLIENTS_FILE": ""}, "BONECDS_AUTH=on needs BONECDS_CLIENTS_FILE"),
        ({"BONECDS_AUTH": "maybe"}, "BONECDS_AUTH must be one of on, off, dev, not 'maybe'"),
        ({"BONECDS_WORKERS": "abc"}, "BONECDS_WORKERS must be a positive whole number, not 'abc'"),
        ({"BONECDS_FHIR_TIMEOUT": "-1"}, "BONECDS_FHIR_TIMEOUT must be a positive number"),
        (
            {"BONECDS_FHIR_TIMEOUT": "3", "BONECDS_FHIR_BUDGET": "2"},
            "BONECDS_FHIR_TIMEOUT (3 s) must not exceed",
        ),
        ({"BONECDS_MAX_BODY_BYTES": "1.5"}, "BONECDS_MAX_BODY_BYTES must be a whole number"),
        ({"BONECDS_LOG_LEVEL": "loud"}, "BONECDS_LOG_LEVEL must be one of"),
        ({"BONECDS_NOW": "yesterday"}, "BONECDS_NOW must be an ISO 8601 date-time"),
        (
            {"BONECDS_FHIR_ALLOWLIST": "ftp://x"},
            "BONECDS_FHIR_ALLOWLIST must list http(s) base URLs",
        ),
        ({"DATABASE_URL": "mysql://x"}, "DATABASE_URL must be sqlite:///PATH or postgresql://"),
        (
            {"BONECDS_KNOWLEDGE_FILE": "/nonexistent/k.json"},
            "BONECDS_KNOWLEDGE_FILE /nonexistent/k.json: no such file",
        ),
    ],
    ids=[
        "missing-file",
        "auth-on-without-file",
        "auth-value",
        "workers",
        "negative-timeout",
        "timeout-over-budget",
        "fractional-bytes",
        "log-level",
        "now",
        "allowlist",
        "database-url",
        "knowledge-file",
    ],
)
def test_bad_settings_are_refused_in_one_line(tmp_path, env, problem):
    clients = tmp_path / "clients.json"
    clients.write_text(clients_json(("https://ehr.example.org/", KEY)))
    result = run({"BONECDS_CLIENTS_FILE": str(clients), **env}, "check-config", "--no-database")
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr and problem in lines[0], (
        result.stderr
    )


def test_a_bad_knowledge_file_names_the_problem(tmp_path):
    knowledge = tmp_path / "knowledge.json"
    knowledge.write_text('{"version": "x"')
    result = run(
        {"BONECDS_AUTH": "off", "BONECDS_KNOWLEDGE_FILE": str(knowledge)},
        "check-config",
        "--no-database",
    )
    assert (
        result.returncode == 2
        and f"BONECDS_KNOWLEDGE_FILE {knowledge}: not valid JSON" in result.stderr
    )


def test_check_config_passes_a_good_configuration(tmp_path):
    clients = tmp_path / "clients.json"
    clients.write_text(clients_json(("https://ehr.example.org/", KEY)))
    result = run(
        {"BONECDS_CLIENTS_FILE": str(clients), "DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3"},
        "check-config",
    )
    assert result.returncode == 0, result.stderr
    assert (
        "trusted clients: 1 issuer(s)" in result.stdout and "database: reachable" in result.stdout
    )
    assert result.stdout.strip().endswith("configuration OK")


# --- pinned keys win ------------------------------------------------------------------------------


class CountingListener:
    """A loopback TCP listener that counts connections (a jku the service must never contact)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            connection.close()


@pytest.mark.parametrize("jku_listed", [True, False], ids=["jku-listed", "jku-not-listed"])
def test_pinned_key_wins_over_a_jku_header_and_the_jku_is_never_contacted(tmp_path, jku_listed):
    listener = CountingListener()
    jku = f"http://127.0.0.1:{listener.port}/jwks.json"
    clients = tmp_path / "clients.json"
    clients.write_text(
        clients_json(("https://ehr.example.org/", KEY), jku=(jku,) if jku_listed else ())
    )
    app = create_app(
        Settings(
            database_url=f"sqlite:///{tmp_path}/t.db",
            frozen_now=ANCHOR_INSTANT,
            auth="on",
            clients_file=str(clients),
            public_base_url=PUBLIC_BASE,
        )
    )
    client = app.test_client()
    pinned = mint_token(
        KEY, "https://ehr.example.org/", PUBLIC_BASE + DISCOVERY, headers={"jku": jku}
    )
    assert client.get(DISCOVERY, headers={"Authorization": f"Bearer {pinned}"}).status_code == 200
    stranger = new_key("not-pinned")
    other = mint_token(
        stranger, "https://ehr.example.org/", PUBLIC_BASE + DISCOVERY, headers={"jku": jku}
    )
    # a kid that is not pinned, announced by a jku the issuer may not use: refused, never fetched
    if not jku_listed:
        assert (
            client.get(DISCOVERY, headers={"Authorization": f"Bearer {other}"}).status_code == 401
        )
    assert listener.connections == 0


# --- SIGHUP reloads the trusted-clients file ------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_sighup_reloads_the_trusted_clients_file_and_a_bad_file_keeps_the_old_one(tmp_path):
    first, second = new_key("a-1"), new_key("b-1")
    clients = tmp_path / "clients.json"
    clients.write_text(clients_json(("https://a.example.org/", first)))
    port = free_port()
    env = {
        **os.environ,
        "BONECDS_AUTH": "on",
        "BONECDS_CLIENTS_FILE": str(clients),
        "BONECDS_PUBLIC_BASE_URL": PUBLIC_BASE,
        "DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3",
    }
    log = open(tmp_path / "service.log", "wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "service.cli", "serve", "--port", str(port), "--workers", "2"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"

    def status(key: dict, issuer: str) -> int:
        token = mint_token(key, issuer, PUBLIC_BASE + DISCOVERY)
        return httpx.get(
            base + DISCOVERY, headers={"Authorization": f"Bearer {token}"}, timeout=5
        ).status_code

    def eventually(expected: int, key: dict, issuer: str) -> bool:
        for _ in range(100):
            try:
                if status(key, issuer) == expected:
                    return True
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        return False

    try:
        assert eventually(200, first, "https://a.example.org/")
        assert status(second, "https://b.example.org/") == 401
        clients.write_text(
            clients_json(("https://a.example.org/", first), ("https://b.example.org/", second))
        )
        process.send_signal(signal.SIGHUP)
        assert eventually(200, second, "https://b.example.org/")
        # a broken edit: refused, the clients already trusted stay
        clients.write_text('{"clients": [')
        process.send_signal(signal.SIGHUP)
        time.sleep(1.5)
        assert (
            status(second, "https://b.example.org/") == 200
            and status(first, "https://a.example.org/") == 200
        )
    finally:
        process.terminate()
        process.wait(timeout=15)
        log.close()
    text = (tmp_path / "service.log").read_text()
    assert "trusted-clients file reloaded: 2 trusted issuer(s)" in text
    assert (
        "trusted-clients file not reloaded, the previous clients stay trusted" in text
        and "not valid JSON" in text
    )
