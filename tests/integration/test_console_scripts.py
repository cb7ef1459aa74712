"""The installed `bonecds` console script, run as users and docker-compose.yml run it:
`load-fixtures` with the compose file's exact arguments loads the demo patients."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
BONECDS = str(Path(sys.executable).with_name("bonecds"))


def compose_load_fixtures_argv() -> list[str]:
    """The loader's command as docker-compose.yml writes it (a JSON-style list on one line)."""
    text = (ROOT / "docker-compose.yml").read_text(encoding="utf-8")
    line = next(line for line in text.splitlines() if '"load-fixtures"' in line)
    argv = json.loads(re.search(r"\[.*\]", line).group(0))  # type: ignore[union-attr]
    assert argv[:2] == ["bonecds", "load-fixtures"]
    return argv


def test_help_of_every_subcommand_exits_0():
    for command in (
        "serve",
        "load-fixtures",
        "evaluate",
        "token",
        "feedback-report",
        "check-config",
    ):
        result = subprocess.run(
            [BONECDS, command, "--help"], capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, (command, result.stderr)
        assert "usage: bonecds" in result.stdout


@pytest.mark.integration
def test_compose_load_fixtures_command_loads_the_demo_patients(fhir_server, tmp_path):
    """Compose's argv with the FHIR base replaced by the test server's, and one demo bundle under a
    patient id of its own (so the shared server's other patients are not rebased)."""
    source = ROOT / "fixtures" / "scenarios" / "calcium-low.json"
    bundle = source.read_text(encoding="utf-8").replace("bcds-ca-low", "bcds-compose-check")
    (tmp_path / "calcium-low.json").write_text(bundle, encoding="utf-8")
    argv = compose_load_fixtures_argv()
    argv[argv.index("--fhir-base") + 1] = fhir_server.base_url
    argv[argv.index("--wait") + 1] = "30"
    env = {**os.environ, **({"FHIR_TOKEN": fhir_server.token} if fhir_server.token else {})}
    result = subprocess.run(
        [BONECDS, *argv[1:], "--scenario-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    headers = {"Authorization": f"Bearer {fhir_server.token}"} if fhir_server.token else {}
    patient = httpx.get(
        f"{fhir_server.base_url}/Patient/bcds-compose-check", headers=headers, timeout=10
    )
    assert patient.status_code == 200 and patient.json()["id"] == "bcds-compose-check"
