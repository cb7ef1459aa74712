"""Shared fixtures for every folder of tests/: one app built from `Settings` (a frozen clock at the
fixtures' anchor instant and a throw-away SQLite file by default; other settings through
`make_app(**overrides)` or indirect parametrisation of `app`), the session's PostgreSQL server and
the CDS clients of the authentication tests."""

from __future__ import annotations

import pytest

from fixtures.builder import ANCHOR_INSTANT
from service import create_app
from service.config import Settings
from tests.support.jwt_clients import (  # noqa: F401  (pytest fixtures: the auth tests' CDS clients)
    clients_file,
    jwks_server,
    keys,
)
from tests.support.pg_server import postgres_url  # noqa: F401  (one PostgreSQL server for the session)


def settings_for(tmp_path, **overrides) -> Settings:
    """The tests' default settings (a throw-away SQLite file, the frozen clock, auth off, one
    allowed FHIR server), with `overrides` applied."""
    defaults = {
        "database_url": f"sqlite:///{tmp_path}/feedback.sqlite3",
        "frozen_now": ANCHOR_INSTANT,
        "public_base_url": "https://cds.example.org",
        "auth": "off",
        "fhir_allowlist": ("https://ehr.example.org/fhir",),
    }
    return Settings(**{**defaults, **overrides})


@pytest.fixture()
def make_app(tmp_path):
    """make_app(**settings_overrides) -> a Flask app built by create_app from the default test
    Settings with the overrides applied (fetcher=... is passed to create_app)."""

    def build(*, fetcher=None, **overrides):
        return create_app(settings_for(tmp_path, **overrides), fetcher=fetcher)

    return build


@pytest.fixture()
def app(request, make_app):
    """The app from the default test Settings; `@pytest.mark.parametrize("app", [{...overrides}],
    indirect=True)` builds it from other settings."""
    return make_app(**getattr(request, "param", {}))


@pytest.fixture()
def client(app):
    return app.test_client()


@pytest.fixture()
def service(app):
    return app.extensions["bonecds"].services["bonecds-order-sign"]


@pytest.fixture(scope="module")
def frozen_order_sign_app(tmp_path_factory):
    from tests.support.order_sign_http import frozen_app

    return frozen_app(tmp_path_factory)


@pytest.fixture()
def post(frozen_order_sign_app):
    """Post(patient, *orders, prefetch_keys=None) -> cards, through the HTTP endpoint with the clock
    frozen."""
    from tests.support.order_sign_http import poster

    return poster(frozen_order_sign_app)


def pytest_terminal_summary(terminalreporter):
    from tests.support.summary import SUMMARY_LINES

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
