"""The installed `bonecds` console script, run as users and docker-compose.yml run it:
`load-fixtures` with the compose file's exact arguments loads the demo patients."""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
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
        "example",
        "keygen",
        "mint-token",
    ):
        result = subprocess.run(
            [BONECDS, command, "--help"], capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, (command, result.stderr)
        assert "usage: bonecds" in result.stdout
        # every option says what it is: a bare "--port PORT" line helps nobody
        lines = result.stdout.splitlines()
        bare = [
            line.strip()
            for line, following in zip(lines, [*lines[1:], ""], strict=True)
            if re.fullmatch(r"  (-\S+( [A-Z_]+)?(, )?)+", line)
            # argparse puts the help of a long option on the next, deeper indented line
            and not re.match(r" {8,}\S", following)
        ]
        assert bare == [], (command, bare)


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


# --- the Docker build and the argv the deployment files give bonecds ---------------------------

SUBCOMMANDS = (
    "serve|load-fixtures|evaluate|example|mint-token|token|keygen|feedback-report|check-config"
)


def deployment_argvs() -> list[tuple[str, list[str]]]:
    """Every bonecds command line in the Dockerfile and docker-compose.yml: the exec-form lists
    (CMD, command:) and the commands their comments tell an operator to run."""
    found = []
    for name in ("Dockerfile", "docker-compose.yml"):
        text = (ROOT / name).read_text(encoding="utf-8")
        for match in re.finditer(r'\[\s*"bonecds",[^\]]*\]', text):
            found.append((name, json.loads(match.group(0))[1:]))
        for match in re.finditer(rf"\bbonecds ((?:{SUBCOMMANDS})\b[^\n)`]*)", text):
            found.append((name, shlex.split(match.group(1))))
    return found


class Parsed(Exception):
    """Raised instead of running a command, once its arguments are parsed."""


def test_every_bonecds_argv_of_the_deployment_files_parses(monkeypatch):
    from service import cli

    original = argparse.ArgumentParser.parse_args

    def parse_only(self, args=None, namespace=None):
        raise Parsed(original(self, args, namespace))

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_only)
    argvs = deployment_argvs()
    commands = {argv[0] for _, argv in argvs}
    assert {"serve", "load-fixtures", "mint-token"} <= commands, argvs
    for where, argv in argvs:
        try:
            cli.main(argv)
        except Parsed:
            continue
        except SystemExit as exit_:
            pytest.fail(f"{where}: `bonecds {shlex.join(argv)}` does not parse (exit {exit_.code})")
        pytest.fail(f"{where}: `bonecds {shlex.join(argv)}` ran instead of being parsed")


def dockerfile_stages() -> list[list[str]]:
    """The Dockerfile's instructions (continuation lines joined, comments dropped), per stage."""
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    instructions = " ".join(
        line.rstrip("\\") if line.endswith("\\") else line + "\n" for line in lines
    )
    stages: list[list[str]] = []
    for instruction in (i.strip() for i in instructions.splitlines()):
        if instruction.startswith("FROM "):
            stages.append([])
        if instruction and stages:
            stages[-1].append(instruction)
    return stages


def test_dockerfile_installs_locked_dependencies_before_the_source():
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    image = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", text, re.M)
    assert image and re.fullmatch(
        r"python:3\.11\.\d+-slim-bookworm@sha256:[0-9a-f]{64}", image.group(1)
    ), "base image pinned by version and digest"
    stages = dockerfile_stages()
    assert all(
        stage[0] == "FROM ${PYTHON_IMAGE}" or stage[0].startswith("FROM ${PYTHON_IMAGE} ")
        for stage in stages
    )
    runtime = stages[-1]

    def first(stage: list[str], pattern: str) -> int:
        return next(i for i, line in enumerate(stage) if re.search(pattern, line))

    locked = first(runtime, r"^COPY pyproject\.toml constraints\.txt ")
    installed = first(runtime, r"^RUN pip install --no-deps -r constraints\.txt")
    wheel = first(runtime, r"^COPY --from=build ")
    assert locked < installed < wheel
    assert not any(re.match(r"^COPY (\.|service|hooks|fixtures)\b", line) for line in runtime)
    for stage in stages[:-1]:  # the build stage: pyproject before the source
        assert first(stage, r"^COPY pyproject\.toml") < first(stage, r"^COPY service ")
    runtime_text = "\n".join(runtime)
    assert "[test]" not in text and "pytest" not in runtime_text
    assert "USER bonecds" in runtime and any(i.startswith("HEALTHCHECK ") for i in runtime)
    assert "BONECDS_PUBLIC_BASE_URL" not in runtime_text  # unset by default, as the README says
    assert "PROMETHEUS_MULTIPROC_DIR=/tmp/bonecds-metrics" in runtime_text


def test_compose_pins_hapi_and_shares_the_workers_metrics():
    text = (ROOT / "docker-compose.yml").read_text(encoding="utf-8")
    images = re.findall(r"^\s*image:\s*(\S+)", text, re.M)
    hapi = [image for image in images if image.startswith("hapiproject/hapi")]
    assert hapi and all(
        re.fullmatch(r"hapiproject/hapi:v\d+\.\d+\.\d+(@sha256:[0-9a-f]{64})?", i) for i in hapi
    )
    assert "PROMETHEUS_MULTIPROC_DIR: /tmp/bonecds-metrics" in text
    assert re.search(r"tmpfs:\s*\n\s*- /tmp/bonecds-metrics", text)
