"""`make fhir`: the bundled FHIR R4 test server (sekmet-fhir, as the integration tests use it) on
loopback, filled with the demo patients dated for today, until Ctrl-C.

Run by `scripts/dev.py fhir` with the app's virtual environment; the server's database is a fresh
file under var/fhir-demo/ on every start.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.fhir_server.harness import LOCAL_TOKEN, SETTINGS_FILE  # noqa: E402

WORK_DIR = ROOT / "var" / "fhir-demo"


def start_server(command: str, port: int) -> tuple[subprocess.Popen, str]:
    """sekmet on 127.0.0.1:port with an empty database; (process, FHIR base URL)."""
    base_url = f"http://127.0.0.1:{port}/fhir"
    shutil.rmtree(WORK_DIR, ignore_errors=True)  # yesterday's patients carry yesterday's dates
    WORK_DIR.mkdir(parents=True)
    env = {key: value for key, value in os.environ.items() if not key.startswith("SEKMET_")}
    env.update(
        SEKMET_PORT=str(port), SEKMET_BASE_URL=base_url, SEKMET_DB=str(WORK_DIR / "sekmet.db")
    )
    log = open(WORK_DIR / "server.log", "wb")  # noqa: SIM115  (the server writes it until the end)
    process = subprocess.Popen(
        [command, "serve", "-c", str(SETTINGS_FILE)],
        cwd=WORK_DIR,  # sekmet resolves its other relative paths against its working directory
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # Ctrl-C reaches this script, which then stops the server in order
    )
    return process, base_url


def wait_until_up(process: subprocess.Popen, base_url: str, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(
                f"the FHIR test server exited (status {process.returncode}); see"
                f" {WORK_DIR / 'server.log'} (port already in use? make fhir FHIR_PORT=...)"
            )
        try:
            if httpx.get(f"{base_url}/metadata", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"the FHIR test server did not answer {base_url}/metadata in {seconds:g} s")


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def instructions(base_url: str, bonecds: str) -> str:
    return f"""
FHIR R4 test server: {base_url}   (bearer token {LOCAL_TOKEN})
The demo patients are loaded, dated for today. In another terminal:

  # the CDS logic without a server; the service reads the patient from the FHIR server (no prefetch)
  {bonecds} example calcium-low --fhir-server {base_url} --fhir-token {LOCAL_TOKEN} \\
    | {bonecds} evaluate -

  # the same over HTTP, with `make run` (development mode, which may call a loopback FHIR server)
  {bonecds} example calcium-low --fhir-server {base_url} --fhir-token {LOCAL_TOKEN} \\
    > /tmp/calcium-low-no-prefetch.json
  curl -s -X POST -H 'Content-Type: application/json' \\
    -H "Authorization: Bearer $({bonecds} token --service bonecds-order-sign)" \\
    --data-binary @/tmp/calcium-low-no-prefetch.json \\
    http://127.0.0.1:8099/cds-services/bonecds-order-sign

  # a patient as the server holds it
  curl -s -H 'Authorization: Bearer {LOCAL_TOKEN}' {base_url}/Patient/bcds-ca-low

Ctrl-C stops the server (its data is thrown away).
"""


def _interrupt(*_args: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/dev.py fhir", description=__doc__)
    parser.add_argument("--port", type=int, default=int(os.environ.get("FHIR_PORT", "8090")))
    parser.add_argument(
        "--server-command", default=str(ROOT / ".venv-fhir" / "bin" / "sekmet"), help="sekmet"
    )
    args = parser.parse_args(argv)
    bonecds = str(Path(sys.executable).with_name("bonecds"))
    process, base_url = start_server(args.server_command, args.port)
    signal.signal(signal.SIGTERM, _interrupt)  # a process manager's stop, handled like Ctrl-C
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with SIGINT ignored
    try:
        wait_until_up(process, base_url)
        loaded = subprocess.call(
            [bonecds, "load-fixtures", "--fhir-base", base_url, "--rebase-dates", "--wait", "30"],
            env={**os.environ, "FHIR_TOKEN": LOCAL_TOKEN},
        )
        if loaded != 0:
            print("loading the demo patients failed (see above)", file=sys.stderr)
            return loaded
        print(instructions(base_url, os.path.relpath(bonecds, Path.cwd())), flush=True)
        while process.poll() is None:
            time.sleep(0.5)
        print(f"the FHIR test server stopped (status {process.returncode})", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nstopping the FHIR test server ...", file=sys.stderr, flush=True)
        return 0
    finally:
        stop(process)


if __name__ == "__main__":
    sys.exit(main())
