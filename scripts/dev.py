#!/usr/bin/env python3
"""Set-up and entry commands for a fresh clone: creates the virtual environments, then runs the
service or the tests."""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APP_VENV = ROOT / ".venv"
FHIR_VENV = ROOT / ".venv-fhir"
FHIR_SERVER_REQUIREMENT = "sekmet-fhir==0.1.1"
FHIR_SERVER_CONSTRAINTS = ROOT / "tests" / "support" / "fhir_server" / "constraints.txt"
# The runtime dependencies, transitive ones included, at the versions tested (the Dockerfile uses it
# too); the test tools of the `test` extra are not pinned there.
RUNTIME_CONSTRAINTS = ROOT / "constraints.txt"


def _python(env_dir: Path) -> Path:
    return env_dir / "bin" / "python"


def _stamp_matches(env_dir: Path, fingerprint: str) -> bool:
    stamp = env_dir / ".bonecds-installed"
    return stamp.exists() and stamp.read_text() == fingerprint


def _ensure_venv(env_dir: Path, fingerprint: str, install_args: list[str]) -> None:
    """Create env_dir and pip-install into it, unless it was already installed from the same
    inputs."""
    if _stamp_matches(env_dir, fingerprint):
        return
    if not _python(env_dir).exists():
        print(f"creating virtual environment {env_dir.name}/", flush=True)
        venv.EnvBuilder(with_pip=True, clear=False).create(env_dir)
    print(f"installing into {env_dir.name}/ ...", flush=True)
    subprocess.run(
        [
            str(_python(env_dir)),
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            *install_args,
        ],
        check=True,
        cwd=ROOT,
    )
    (env_dir / ".bonecds-installed").write_text(fingerprint)


def ensure_app_venv() -> Path:
    fingerprint = hashlib.sha256(
        (ROOT / "pyproject.toml").read_bytes() + RUNTIME_CONSTRAINTS.read_bytes()
    ).hexdigest()
    _ensure_venv(APP_VENV, fingerprint, ["-c", str(RUNTIME_CONSTRAINTS), "-e", ".[test]"])
    return APP_VENV


def ensure_fhir_venv() -> Path:
    fingerprint = (
        FHIR_SERVER_REQUIREMENT + hashlib.sha256(FHIR_SERVER_CONSTRAINTS.read_bytes()).hexdigest()
    )
    _ensure_venv(
        FHIR_VENV, fingerprint, ["-c", str(FHIR_SERVER_CONSTRAINTS), FHIR_SERVER_REQUIREMENT]
    )
    return FHIR_VENV


def cmd_run(args: argparse.Namespace) -> int:
    env_dir = ensure_app_venv()
    command = [
        str(env_dir / "bin" / "bonecds"),
        "serve",
        "--host",
        args.host,
        "--port",
        str(args.port),
    ]
    if args.workers:
        command += ["--workers", str(args.workers)]
    # A fresh machine has no trusted-clients file: run in the logged development mode unless the
    # operator chose otherwise (an explicit BONECDS_AUTH always wins).
    env = dict(os.environ)
    env.setdefault("BONECDS_AUTH", "dev")
    os.execve(command[0], command, env)  # noqa: S606  (hand the process over to gunicorn)
    return 0  # not reached


def cmd_fhir(args: argparse.Namespace) -> int:
    """The bundled FHIR test server on loopback with the demo patients dated for today, until
    Ctrl-C (scripts/fhir_demo.py, run with the app's environment)."""
    env_dir = ensure_app_venv()
    fhir_dir = ensure_fhir_venv()
    command = [
        str(_python(env_dir)),
        str(ROOT / "scripts" / "fhir_demo.py"),
        "--port",
        str(args.port),
        "--server-command",
        str(fhir_dir / "bin" / "sekmet"),
    ]
    os.execv(command[0], command)  # noqa: S606  (Ctrl-C goes straight to the demo script)
    return 0  # not reached


def postgres_bin_dir() -> Path | None:
    """Where initdb and pg_ctl are (PATH, or Debian's /usr/lib/postgresql/N/bin); None when not
    installed."""
    found = shutil.which("pg_ctl")
    candidates = [Path(found).resolve().parent] if found else []
    candidates += sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: p.parent.name.zfill(4),
        reverse=True,
    )
    return next(
        (c for c in candidates if (c / "initdb").exists() and (c / "pg_ctl").exists()), None
    )


def apt_install(
    packages: list[str], what: str, skip_variable: str, extra_flags: tuple[str, ...] = ()
) -> None:
    """Install Debian packages a test group needs.

    A failed install is reported here and those tests then fail (they never skip silently; the
    operator may set `skip_variable`=skip on purpose).
    """
    sudo = [] if os.geteuid() == 0 else (["sudo", "-n"] if shutil.which("sudo") else None)
    if sudo is None or not shutil.which("apt-get"):
        print(
            f"{what}: {' '.join(packages)} cannot be installed with apt-get here: install it, or"
            f" set {skip_variable}=skip; those tests will fail",
            flush=True,
        )
        return
    print(f"installing {' '.join(packages)} for {what} ...", flush=True)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for step in (
        ["apt-get", "update"],
        ["apt-get", "install", "-y", "-q", *extra_flags, *packages],
    ):
        if subprocess.call([*sudo, *step], env=env) != 0:
            print(f"`{' '.join(step)}` failed; the tests of {what} will fail", flush=True)
            return


def ensure_postgres() -> None:
    """The store tests start a throw-away PostgreSQL server (tests/support/pg_server.py)."""
    if os.environ.get("BONECDS_TEST_POSTGRES", "").lower() != "skip" and not postgres_bin_dir():
        apt_install(
            ["postgresql"],
            "the PostgreSQL store tests",
            "BONECDS_TEST_POSTGRES",
            ("--no-install-recommends",),
        )


def ensure_chromium() -> None:
    """The card preview browser test (tests/http/test_preview_browser.py) drives headless Chromium
    through chromedriver."""
    if os.environ.get("BONECDS_TEST_BROWSER", "").lower() != "skip" and not (
        shutil.which("chromium") and shutil.which("chromedriver")
    ):
        apt_install(
            ["chromium", "chromium-driver"], "the preview browser test", "BONECDS_TEST_BROWSER"
        )


LINT_STEPS = (
    ("ruff check", ["-m", "ruff", "check", "."]),
    ("ruff format --check", ["-m", "ruff", "format", "--check", "."]),
    ("mypy", ["-m", "mypy"]),
)


def run_lint(env_dir: Path) -> int:
    """The house style, before any test: ruff (lint and format, 100 columns) and mypy, all from
    pyproject.toml."""
    for name, step in LINT_STEPS:
        print(f"{name} ...", flush=True)
        status = subprocess.call([str(_python(env_dir)), *step], cwd=ROOT)
        if status != 0:
            print(f"{name} failed (exit {status})", flush=True)
            return status
    return 0


def cmd_lint(_args: argparse.Namespace) -> int:
    return run_lint(ensure_app_venv())


def cmd_unit(args: argparse.Namespace) -> int:
    """The fast tests: no FHIR server, PostgreSQL, browser, benchmark-like or fault suites."""
    env_dir = ensure_app_venv()
    slow = [
        "tests/integration",
        "tests/http/test_preview_browser.py",
        "tests/http/test_schemathesis.py",
        "tests/store/test_database_outage.py",
        "tests/http/test_fhir_fail_fast.py",
        "tests/store/test_store_backends.py",
        "tests/http/test_configuration.py",
    ]
    ignore = [f"--ignore={path}" for path in slow]
    env = dict(os.environ, BONECDS_TEST_POSTGRES=os.environ.get("BONECDS_TEST_POSTGRES", "skip"))
    return subprocess.call(
        [str(_python(env_dir)), "-m", "pytest", "-q", *ignore, *args.pytest_args], cwd=ROOT, env=env
    )


def cmd_test(args: argparse.Namespace) -> int:
    env_dir = ensure_app_venv()
    if run_lint(env_dir) != 0:
        return 1
    fhir_dir = ensure_fhir_venv()
    ensure_postgres()
    ensure_chromium()
    env = dict(os.environ)
    env.setdefault("BONECDS_FHIR_SERVER_COMMAND", str(fhir_dir / "bin" / "sekmet"))
    return subprocess.call(
        [str(_python(env_dir)), "-m", "pytest", *args.pytest_args], cwd=ROOT, env=env
    )


def cmd_setup(_args: argparse.Namespace) -> int:
    ensure_app_venv()
    ensure_fhir_venv()
    return 0


def main(argv: list[str] | None = None) -> int:
    # dev.py is started by whatever python3 is on PATH, which may be older than the target
    if sys.version_info < (3, 11):  # noqa: UP036
        sys.exit("bonecds needs Python 3.11 or newer")
    parser = argparse.ArgumentParser(prog="scripts/dev.py", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the service under gunicorn (creates .venv on first use)")
    run.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    run.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8099")))
    run.add_argument("--workers", type=int, default=None)
    run.set_defaults(func=cmd_run)
    test = sub.add_parser(
        "test",
        help=(
            "run the whole test suite, including the integration tests against a local FHIR server"
        ),
    )
    test.set_defaults(func=cmd_test)
    lint = sub.add_parser(
        "lint", help="ruff check, ruff format --check and mypy (the test command runs them first)"
    )
    lint.set_defaults(func=cmd_lint)
    unit = sub.add_parser("unit", help="the fast tests only (no servers)")
    unit.set_defaults(func=cmd_unit)
    fhir = sub.add_parser(
        "fhir",
        help=(
            "start the bundled FHIR test server on 127.0.0.1 with the demo patients dated for"
            " today (Ctrl-C stops it)"
        ),
    )
    fhir.add_argument("--port", type=int, default=int(os.environ.get("FHIR_PORT", "8090")))
    fhir.set_defaults(func=cmd_fhir)
    setup = sub.add_parser("setup", help="only create the virtual environments")
    setup.set_defaults(func=cmd_setup)
    args, extra = parser.parse_known_args(argv)
    if extra and args.command not in ("test", "unit"):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.pytest_args = extra  # everything after `test` goes to pytest, e.g. -q or -k renal
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
