"""Starts and stops a throw-away local FHIR R4 server (sekmet-fhir) for the integration tests, or
names an external one."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

REPO_ROOT = Path(__file__).resolve().parents[3]
SETTINGS_FILE = REPO_ROOT / "tests" / "support" / "fhir_server" / "settings.yaml"
DEFAULT_SERVER_COMMAND = REPO_ROOT / ".venv-fhir" / "bin" / "sekmet"
# Must equal server_auth.tokens in settings.yaml (the app venv has no YAML parser to read it from
# there).
LOCAL_TOKEN = "bonecds-test-token"
STARTUP_TIMEOUT_SECONDS = 30.0
# A free port found by binding port 0 can be taken by someone else before sekmet binds it.
START_ATTEMPTS = 3


@dataclass(frozen=True)
class FhirServer:
    base_url: str
    token: str | None

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}


def fhir_server_from_environment() -> FhirServer | None:
    """The server named by FHIR_BASE_URL (token from FHIR_TOKEN), e.g. a real HAPI FHIR; None when
    unset."""
    base_url = os.environ.get("FHIR_BASE_URL", "").strip()
    if not base_url:
        return None
    return FhirServer(base_url=base_url.rstrip("/"), token=os.environ.get("FHIR_TOKEN") or None)


def start_local_fhir_server(tmp_dir: Path) -> tuple[FhirServer, subprocess.Popen]:
    """Start sekmet on a free loopback port with a fresh database in tmp_dir; raise RuntimeError if
    it won't come up."""
    command = _server_command()
    tmp_dir = Path(tmp_dir)
    tmp_dir.mkdir(parents=True, exist_ok=True)
    problem = ""
    for attempt in range(1, START_ATTEMPTS + 1):
        port = _free_loopback_port()
        base_url = f"http://127.0.0.1:{port}/fhir"
        log_path = tmp_dir / f"sekmet-{attempt}.log"
        env = {key: value for key, value in os.environ.items() if not key.startswith("SEKMET_")}
        env.update(
            SEKMET_PORT=str(port),
            SEKMET_BASE_URL=base_url,
            SEKMET_DB=str(tmp_dir / f"sekmet-{attempt}.db"),
        )
        with open(log_path, "wb") as log:
            # cwd is tmp_dir because sekmet resolves its other relative paths (data/, keys/) against
            # it.
            proc = subprocess.Popen(
                [command, "serve", "-c", str(SETTINGS_FILE)],
                cwd=tmp_dir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        problem = _wait_until_up(proc, base_url)
        if not problem:
            return FhirServer(base_url=base_url, token=LOCAL_TOKEN), proc
        stop_local_fhir_server(proc)
        log_tail = _tail(log_path)
        if "address already in use" not in log_tail.lower():
            break
    raise RuntimeError(
        f"the local FHIR test server ({command}) did not start: {problem}\n"
        f"--- last lines of {log_path} ---\n{log_tail}"
    )


def stop_local_fhir_server(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    """SIGTERM the server, wait for it, and SIGKILL it if it does not exit within timeout
    seconds."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
            return
        except subprocess.TimeoutExpired:
            proc.kill()
    proc.wait()


def _server_command() -> str:
    configured = os.environ.get("BONECDS_FHIR_SERVER_COMMAND", "").strip()
    candidate = configured or str(DEFAULT_SERVER_COMMAND)
    resolved = shutil.which(candidate)
    if resolved is None:
        origin = "BONECDS_FHIR_SERVER_COMMAND" if configured else "the default location"
        raise RuntimeError(
            f"the FHIR test server binary {candidate} (from {origin}) is missing or not executable;"
            " run `python3 scripts/dev.py setup` to create .venv-fhir, or set FHIR_BASE_URL to use"
            " a running FHIR server"
        )
    # Absolute, because the server runs with another working directory.
    return os.path.abspath(resolved)


def _free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_until_up(proc: subprocess.Popen, base_url: str) -> str:
    """Return "" once GET {base_url}/metadata answers 200, else a description of what went wrong."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    last = "no answer yet"
    with httpx.Client(timeout=2.0) as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                return f"the process exited with status {proc.returncode}"
            try:
                response = client.get(f"{base_url}/metadata")
                if response.status_code == 200:
                    return ""
                last = f"HTTP {response.status_code}"
            except httpx.HTTPError as exc:
                last = exc.__class__.__name__
            time.sleep(0.1)
    return (
        f"GET {base_url}/metadata gave no 200 within {STARTUP_TIMEOUT_SECONDS:g} s (last: {last})"
    )


def _tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty log)"
