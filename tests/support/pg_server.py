"""A throw-away PostgreSQL server for the store tests: initdb into a temporary directory, start on a
free loopback port (unix socket in the same directory), create a database with a password-protected
role, stop and delete it at the end.

The binaries come from PATH, BONECDS_PG_BIN, or /usr/lib/postgresql/*/bin (`scripts/dev.py test`
installs them with apt-get when none is found). PostgreSQL refuses to run as root, so as root the
server runs as the `postgres` user (or `nobody`). A server that cannot start is an error, never a
skip, unless BONECDS_TEST_POSTGRES=skip is set.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

SKIP_VARIABLE = "BONECDS_TEST_POSTGRES"
ROLE, PASSWORD, DATABASE = "bonecds", "s3cret-Pw:@/x", "bonecds_test"


def pg_bin_dir() -> Path | None:
    """The directory holding initdb and pg_ctl, newest version first; None when PostgreSQL is not
    installed."""
    candidates = [os.environ.get("BONECDS_PG_BIN")]
    on_path = shutil.which("pg_ctl")
    candidates.append(str(Path(on_path).resolve().parent) if on_path else None)
    installed = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: p.parent.name.zfill(4),
        reverse=True,
    )
    candidates += [str(p) for p in installed]
    for candidate in filter(None, candidates):
        if all((Path(candidate) / tool).exists() for tool in ("initdb", "pg_ctl")):
            return Path(candidate)
    return None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class PostgresServer:
    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        # not under pytest's root-only tmp dir
        self.root = Path(tempfile.mkdtemp(prefix="bonecds-pg-"))
        self.data, self.log = self.root / "data", self.root / "server.log"
        self.port = 0
        self.prefix: list[str] = []
        if os.geteuid() == 0:
            user = "postgres" if _user_exists("postgres") else "nobody"
            entry = pwd.getpwnam(user)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
            self.prefix = ["runuser", "-u", user, "--"]

    def _run(self, *args: str) -> None:
        result = subprocess.run([*self.prefix, *args], capture_output=True, text=True, timeout=60)
        if result.returncode != 0:
            server_log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise RuntimeError(
                f"{' '.join(args[:2])} failed ({result.returncode}):"
                f" {result.stderr.strip()}\n{server_log}"
            )

    def start(self) -> str:
        (self.root / "pwfile").write_text(PASSWORD + "\n")
        self._run(
            str(self.bin_dir / "initdb"),
            "-D",
            str(self.data),
            "-U",
            ROLE,
            f"--pwfile={self.root / 'pwfile'}",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        )
        for attempt in range(3):  # the port may be taken between probing and binding
            self.port = free_port()
            options = (
                f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
                "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
            )
            try:
                self._run(
                    str(self.bin_dir / "pg_ctl"),
                    "-D",
                    str(self.data),
                    "-l",
                    str(self.log),
                    "-o",
                    options,
                    "-w",
                    "-t",
                    "30",
                    "start",
                )
                break
            except RuntimeError:
                if attempt == 2:
                    raise
        import psycopg

        with psycopg.connect(
            self.url("postgres"), autocommit=True, connect_timeout=10
        ) as connection:
            connection.execute(f"CREATE DATABASE {DATABASE}")
        return self.url(DATABASE)

    def halt(self) -> None:
        """Stop the server as an outage would (fast shutdown: sessions cut), keeping its data and
        port."""
        self._run(
            str(self.bin_dir / "pg_ctl"),
            "-D",
            str(self.data),
            "-m",
            "fast",
            "-w",
            "-t",
            "30",
            "stop",
        )

    def resume(self) -> None:
        """Start it again on the same port after halt()."""
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        self._run(
            str(self.bin_dir / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.log),
            "-o",
            options,
            "-w",
            "-t",
            "30",
            "start",
        )

    def url(self, database: str) -> str:
        from urllib.parse import quote

        return f"postgresql://{ROLE}:{quote(PASSWORD, safe='')}@127.0.0.1:{self.port}/{database}"

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            subprocess.run(
                [
                    *self.prefix,
                    str(self.bin_dir / "pg_ctl"),
                    "-D",
                    str(self.data),
                    "-m",
                    "immediate",
                    "-w",
                    "stop",
                ],
                capture_output=True,
                timeout=60,
            )
        shutil.rmtree(self.root, ignore_errors=True)


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


@pytest.fixture(scope="session")
def postgres_url():
    """postgresql://bonecds:...@127.0.0.1:PORT/bonecds_test on a server of its own for the whole
    session."""
    if os.environ.get(SKIP_VARIABLE, "").lower() == "skip":
        pytest.skip(f"{SKIP_VARIABLE}=skip: PostgreSQL tests turned off explicitly")
    bin_dir = pg_bin_dir()
    if bin_dir is None:
        raise RuntimeError(
            "PostgreSQL (initdb, pg_ctl) not found: run `python3 scripts/dev.py test`, which"
            f" installs it, or install postgresql, or set {SKIP_VARIABLE}=skip to leave these"
            " tests out"
        )
    server = PostgresServer(bin_dir)
    try:
        yield server.start()
    finally:
        server.stop()
