"""The service as the FHIR-path tests build it: dev-free (auth off), the anchor clock, SQLite in the
test's directory, and only the given FHIR server(s) allowed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Flask

from fixtures.builder import ANCHOR_INSTANT
from service import create_app
from service.config import Settings


def app_reading_from(servers: str | tuple[str, ...], database: Path, **settings: Any) -> Flask:
    """An app that may read only `servers` (one base URL or several), with `settings` on top."""
    allowed = (servers,) if isinstance(servers, str) else servers
    return create_app(
        Settings(
            database_url=f"sqlite:///{database}",
            frozen_now=ANCHOR_INSTANT,
            auth="off",
            fhir_allowlist=allowed,
            **settings,
        )
    )
