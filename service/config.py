"""Service settings, read once from environment variables (every one documented in the README) with
embedded defaults."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime


class ConfigError(ValueError):
    """A configuration problem, told in one line naming the variable or file, the entry and the
    problem."""


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, not {raw!r}") from None
    if not value > 0 or value == float("inf"):
        raise ConfigError(f"{name} must be a positive number, not {raw!r}")
    return value


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    value = _float(env, name, default)
    if value != int(value):
        raise ConfigError(f"{name} must be a whole number, not {env.get(name)!r}")
    return int(value)


def _choice(env: Mapping[str, str], name: str, default: str, allowed: tuple[str, ...]) -> str:
    raw = (env.get(name) or default).strip().lower()
    if raw not in allowed:
        raise ConfigError(f"{name} must be one of {', '.join(allowed)}, not {raw!r}")
    return raw


def _instant(raw: str | None, name: str) -> datetime | None:
    if not raw:
        return None
    try:
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"{name} must be an ISO 8601 date-time, not {raw!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


LOG_LEVELS = ("debug", "info", "warning", "error", "critical")


def _urls(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    urls = tuple(u.strip().rstrip("/") for u in env.get(name, "").split(",") if u.strip())
    bad = [u for u in urls if not u.startswith(("https://", "http://"))]
    if bad:
        raise ConfigError(f"{name} must list http(s) base URLs separated by commas, not {bad[0]!r}")
    return urls


@dataclass(frozen=True)
class Settings:
    database_url: str = "sqlite:///var/bonecds.sqlite3"
    public_base_url: str | None = None
    max_body_bytes: int = 8 * 1024 * 1024
    # EHRs give a CDS service a few seconds in all: one read at most 1.5 s, all of one call's reads
    # at most 2.5 s
    fhir_timeout_seconds: float = 1.5
    fhir_budget_seconds: float = 2.5
    fhir_max_pages: int = 5
    fhir_max_parallel: int = 8
    # per worker: hook calls reading from FHIR servers at once (the others answer at once, saying
    # what was not read);
    # keep it below the worker's threads so health probes and prefetched calls always find one free
    fhir_max_concurrent_calls: int = 4
    fhir_breaker_failures: int = 3  # calls in a row with timeouts before a FHIR host is skipped
    fhir_breaker_seconds: float = 30.0  # how long it is skipped before one call probes it again
    # "auto": a call's queries as one FHIR batch Bundle where the server's CapabilityStatement
    # offers batch (parallel GETs otherwise, and when a batch fails); "off": always parallel GETs
    fhir_batch: str = "auto"
    cors_origins: tuple[str, ...] = ("*",)
    frozen_now: datetime | None = None
    knowledge_path: str | None = None
    log_level: str = "INFO"
    log_format: str = "text"  # "json": one JSON object per line (BONECDS_LOG_FORMAT)
    # CDS client authentication: "on" (JWT required), "off" (operator's explicit choice), "dev"
    # (trusts a local key)
    auth: str = "on"
    clients_file: str | None = None
    fhir_allowlist: tuple[str, ...] = ()
    jwt_leeway_seconds: int = 60
    jwks_timeout_seconds: float = 2.0
    jwks_cache_seconds: int = 300
    dev_key_path: str = "var/dev-client-key.json"
    max_json_depth: int = 64

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        origins = tuple(
            o.strip() for o in env.get("BONECDS_CORS_ORIGINS", "*").split(",") if o.strip()
        )
        return cls(
            database_url=env.get("DATABASE_URL") or cls.database_url,
            public_base_url=(_urls(env, "BONECDS_PUBLIC_BASE_URL") or (None,))[0],
            max_body_bytes=_int(env, "BONECDS_MAX_BODY_BYTES", cls.max_body_bytes),
            fhir_timeout_seconds=_float(env, "BONECDS_FHIR_TIMEOUT", cls.fhir_timeout_seconds),
            fhir_budget_seconds=_float(env, "BONECDS_FHIR_BUDGET", cls.fhir_budget_seconds),
            fhir_max_pages=_int(env, "BONECDS_FHIR_MAX_PAGES", cls.fhir_max_pages),
            fhir_max_parallel=_int(env, "BONECDS_FHIR_MAX_PARALLEL", cls.fhir_max_parallel),
            fhir_max_concurrent_calls=_int(
                env, "BONECDS_FHIR_MAX_CONCURRENT_CALLS", cls.fhir_max_concurrent_calls
            ),
            fhir_breaker_failures=_int(
                env, "BONECDS_FHIR_BREAKER_FAILURES", cls.fhir_breaker_failures
            ),
            fhir_breaker_seconds=_float(
                env, "BONECDS_FHIR_BREAKER_SECONDS", cls.fhir_breaker_seconds
            ),
            fhir_batch=_choice(env, "BONECDS_FHIR_BATCH", cls.fhir_batch, ("auto", "off")),
            cors_origins=origins or ("*",),
            frozen_now=_instant(env.get("BONECDS_NOW"), "BONECDS_NOW"),
            knowledge_path=env.get("BONECDS_KNOWLEDGE_FILE") or None,
            log_level=_choice(env, "BONECDS_LOG_LEVEL", cls.log_level, LOG_LEVELS).upper(),
            log_format=_choice(env, "BONECDS_LOG_FORMAT", cls.log_format, ("text", "json")),
            auth=_choice(env, "BONECDS_AUTH", cls.auth, ("on", "off", "dev")),
            clients_file=env.get("BONECDS_CLIENTS_FILE") or None,
            fhir_allowlist=_urls(env, "BONECDS_FHIR_ALLOWLIST"),
            jwt_leeway_seconds=_int(env, "BONECDS_JWT_LEEWAY", cls.jwt_leeway_seconds),
            jwks_timeout_seconds=_float(env, "BONECDS_JWKS_TIMEOUT", cls.jwks_timeout_seconds),
            jwks_cache_seconds=_int(env, "BONECDS_JWKS_CACHE_SECONDS", cls.jwks_cache_seconds),
            dev_key_path=env.get("BONECDS_DEV_KEY_FILE") or cls.dev_key_path,
            max_json_depth=_int(env, "BONECDS_MAX_JSON_DEPTH", cls.max_json_depth),
        )

    def check(self) -> None:
        """Every setting that can only be judged as a whole: raises ConfigError naming the
        variable."""
        _ = self.database_backend
        if self.fhir_timeout_seconds > self.fhir_budget_seconds:
            raise ConfigError(
                f"BONECDS_FHIR_TIMEOUT ({self.fhir_timeout_seconds:g} s) must not exceed"
                f" BONECDS_FHIR_BUDGET ({self.fhir_budget_seconds:g} s)"
            )
        if self.auth == "on" and not self.clients_file:
            raise ConfigError(
                "BONECDS_AUTH=on needs BONECDS_CLIENTS_FILE (the trusted CDS clients); set"
                " BONECDS_AUTH=dev for local development or BONECDS_AUTH=off to turn authentication"
                " off explicitly"
            )

    @property
    def database_backend(self) -> str:
        """ "sqlite" or "postgresql", from DATABASE_URL's scheme (postgres:// is PostgreSQL too)."""
        url = self.database_url
        if url.startswith("sqlite:///"):
            return "sqlite"
        if url.startswith(("postgresql://", "postgres://")):
            return "postgresql"
        scheme = url.split("://", 1)[0] if "://" in url else "no scheme"
        raise ConfigError(
            "DATABASE_URL must be sqlite:///PATH or postgresql://USER:PASSWORD@HOST:PORT/DB, not"
            f" {scheme}"
        )

    @property
    def sqlite_path(self) -> str:
        if self.database_backend != "sqlite":
            raise ValueError("DATABASE_URL is not a sqlite:///PATH URL")
        return self.database_url[len("sqlite:///") :]
