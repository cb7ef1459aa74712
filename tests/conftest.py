"""Shared fixtures: an app with a frozen clock at the fixtures' anchor instant and a throw-away
SQLite file."""

from __future__ import annotations

import pytest

from fixtures.builder import ANCHOR_INSTANT
from service import create_app
from service.config import Settings
from tests.pg_server import postgres_url  # noqa: F401  (one PostgreSQL server for the session)


@pytest.fixture()
def app(tmp_path):
    settings = Settings(
        database_url=f"sqlite:///{tmp_path}/feedback.sqlite3",
        frozen_now=ANCHOR_INSTANT,
        public_base_url="https://cds.example.org",
        auth="off",
        fhir_allowlist=("https://ehr.example.org/fhir",),
    )
    return create_app(settings)


@pytest.fixture()
def client(app):
    return app.test_client()


@pytest.fixture()
def service(app):
    return app.extensions["bonecds"].services["bonecds-order-sign"]


@pytest.fixture(scope="module")
def frozen_order_sign_app(tmp_path_factory):
    from tests.order_sign_http import frozen_app

    return frozen_app(tmp_path_factory)


@pytest.fixture()
def post(frozen_order_sign_app):
    """Post(patient, *orders, prefetch_keys=None) -> cards, through the HTTP endpoint with the clock
    frozen."""
    from tests.order_sign_http import poster

    return poster(frozen_order_sign_app)


def pytest_terminal_summary(terminalreporter):
    from tests.summary import SUMMARY_LINES

    for line in SUMMARY_LINES.values():
        terminalreporter.write_line(line())


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path) -> str:
    """A fresh, empty database per test: a new SQLite file, or a new database on the session's
    PostgreSQL server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/store.sqlite3"
    import uuid

    import psycopg

    server = request.getfixturevalue("postgres_url")
    name = f"t_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(server, autocommit=True) as connection:
        connection.execute(f"CREATE DATABASE {name}")
    return f"{server.rsplit('/', 1)[0]}/{name}"
