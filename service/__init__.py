"""Flask app factory for the bonecds CDS Hooks service; every dependency is built here or injected
by the caller."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import orjson
from flask import Flask

from hooks.cards import CardRenderer
from hooks.fhir_validation import validate_fhir_resource
from hooks.knowledge import Knowledge, load_knowledge
from hooks.services import build_services
from service.auth import Authenticator, JwksCache, TrustedClient, load_clients
from service.clock import FrozenClock, SystemClock
from service.config import ConfigError, Settings
from service.dev_keys import DEV_ISSUER, dev_client, load_or_create_dev_key
from service.http.validation import SchemaValidators, SchemaViolation
from service.record.breaker import CircuitBreaker
from service.record.fhir_client import FhirFetcher
from service.record.prefetch import record_prefetch_keys
from service.runtime import Runtime
from service.store import store_for
from service.store.base import FeedbackStore
from service.store.resilient import ResilientStore
from service.version import software_version

log = logging.getLogger("bonecds")

ICON_PATH = "/static/bonecds-icon.png"


def create_app(
    settings: Settings | None = None,
    *,
    clock: Any = None,
    fetcher: FhirFetcher | None = None,
    store: FeedbackStore | None = None,
    knowledge: Knowledge | None = None,
) -> Flask:
    settings = settings or Settings.from_env()
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    knowledge = knowledge or load_knowledge(settings.knowledge_path)
    services = {s.id: s for s in build_services(knowledge)}
    prefetch_keys = record_prefetch_keys(knowledge)
    prefetch = {key.key: key.template for key in prefetch_keys}
    icon_url = (
        f"{settings.public_base_url}{ICON_PATH}"
        if (settings.public_base_url or "").startswith("https://")
        else None
    )
    runtime = Runtime(
        settings=settings,
        clock=clock or (FrozenClock(settings.frozen_now) if settings.frozen_now else SystemClock()),
        fetcher=fetcher
        or FhirFetcher(
            settings.fhir_timeout_seconds,
            settings.fhir_budget_seconds,
            settings.fhir_max_pages,
            settings.fhir_max_parallel,
            max_concurrent_calls=settings.fhir_max_concurrent_calls,
            breaker=CircuitBreaker(settings.fhir_breaker_failures, settings.fhir_breaker_seconds),
            batch=settings.fhir_batch,
        ),
        store=store
        or ResilientStore(lambda: store_for(settings), backend=settings.database_backend),
        knowledge=knowledge,
        services=services,
        validators=SchemaValidators(),
        renderer=CardRenderer(knowledge, icon_url),
        discovery_body=orjson.dumps(
            {"services": [s.discovery_entry(prefetch) for s in services.values()]}
        ),
        prefetch_keys=prefetch_keys,
    )
    runtime.authenticator = build_authenticator(settings, runtime.store)
    app.extensions["bonecds"] = runtime
    from service.http import health, metrics, openapi, request_log, views

    # GET /metrics, no authentication: keep it off the public network
    runtime.metrics = metrics.install(app)
    request_log.install(app, runtime.metrics)
    if isinstance(runtime.store, ResilientStore):
        runtime.store.on_event = runtime.metrics.store_event
    if isinstance(runtime.fetcher, FhirFetcher):
        runtime.fetcher.breaker.on_change = runtime.metrics.circuit_change
        runtime.fetcher.on_read = runtime.metrics.fhir_read
    app.register_blueprint(views.bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(openapi.bp)
    from service.dev import bench_floor

    # benchmark-only floor endpoint, off unless BONECDS_BENCH_FLOOR=1
    bench_floor.register_if_enabled(app)
    from service.dev import preview

    # card preview page /preview, only when BONECDS_AUTH is "dev" or "off"
    preview.register_if_enabled(app)
    _warm_up(runtime)
    if settings.frozen_now:
        log.warning(
            "clock frozen at %s (BONECDS_NOW): dates are judged against that instant",
            settings.frozen_now.isoformat(),
        )
    log.info(
        "bonecds %s ready: knowledge %s, services %s",
        software_version(),
        knowledge.version,
        ", ".join(services),
    )
    runtime.metrics.build_info(software_version(), knowledge.version)
    return app


def build_authenticator(settings: Settings, store: FeedbackStore) -> Authenticator | None:
    """JWT verification as configured: on (trusted-clients file required), dev (a local key, clearly
    logged), or off."""
    if settings.auth == "off":
        log.warning(
            "CDS client authentication is OFF (BONECDS_AUTH=off): any caller is trusted; fhirServer"
            " calls are limited to BONECDS_FHIR_ALLOWLIST"
        )
        return None
    clients = trusted_clients(settings)
    if settings.auth == "dev":
        log.warning(
            "DEVELOPMENT MODE (BONECDS_AUTH=dev): tokens signed with the local key %s (issuer %s)"
            " are trusted and loopback FHIR servers may be called; mint one with `bonecds"
            " mint-token`. Never use this in production.",
            settings.dev_key_path,
            DEV_ISSUER,
        )
    jwks = JwksCache(settings.jwks_timeout_seconds, settings.jwks_cache_seconds)
    log.info("CDS client authentication on: %d trusted issuer(s)", len(clients))
    return Authenticator(clients, jwks, store.claim_jti, settings.jwt_leeway_seconds)


def trusted_clients(settings: Settings) -> dict[str, TrustedClient]:
    """The trusted-clients file, every entry and key checked (ConfigError otherwise), plus the
    development client."""
    clients = load_clients(settings.clients_file) if settings.clients_file else {}
    if settings.auth == "dev":
        key = load_or_create_dev_key(settings.dev_key_path)
        clients[DEV_ISSUER] = dataclasses.replace(
            dev_client(key), fhir_servers=settings.fhir_allowlist
        )
    elif not clients:
        settings.check()  # names the missing trusted-clients file
        raise ConfigError(f"BONECDS_CLIENTS_FILE {settings.clients_file}: lists no clients")
    return clients


def reload_trusted_clients(app: Flask) -> bool:
    """Read the trusted-clients file again (SIGHUP under `bonecds serve`).

    A file that fails its checks is refused in one logged line and the clients already trusted stay;
    returns whether the new file was taken.
    """
    runtime = app.extensions["bonecds"]
    if runtime.authenticator is None:
        return False
    try:
        clients = trusted_clients(runtime.settings)
    except ConfigError as error:
        log.error("trusted-clients file not reloaded, the previous clients stay trusted: %s", error)
        return False
    runtime.authenticator.replace_clients(clients)
    log.info("trusted-clients file reloaded: %d trusted issuer(s)", len(clients))
    return True


def _warm_up(runtime: Runtime) -> None:
    """Pay the first-use cost of the FHIR models and schema validators at start-up, not on the first
    clinician's order."""
    validate_fhir_resource(
        {
            "resourceType": "ServiceRequest",
            "status": "draft",
            "intent": "order",
            "subject": {"reference": "Patient/warm-up"},
            "code": {"text": "warm-up"},
        }
    )
    # Every model a suggested order can hold (a coded drug, a contained Medication, a schedule
    # with its bounds, a supply duration) is built here, once in the preloading master; otherwise
    # each worker built it on the first card that needed it (5-14 ms for each of five models).
    coded = {"coding": [{"system": "http://snomed.info/sct", "code": "0"}], "text": "warm-up"}
    validate_fhir_resource(
        {
            "resourceType": "MedicationRequest",
            "status": "draft",
            "intent": "order",
            "subject": {"reference": "Patient/warm-up"},
            "contained": [{"resourceType": "Medication", "id": "warm-up", "code": coded}],
            "medicationReference": {"reference": "#warm-up"},
            "dosageInstruction": [
                {
                    "timing": {
                        "repeat": {"boundsPeriod": {"start": "2026-01-01"}, "period": 1},
                    },
                    "route": coded,
                    "doseAndRate": [{"doseQuantity": {"value": 1, "unit": "mg"}}],
                }
            ],
            "dispenseRequest": {"expectedSupplyDuration": {"value": 1, "unit": "d"}},
        }
    )
    try:
        runtime.validators.validate("cds-request", {})
    except SchemaViolation:
        pass  # expected: the empty request only exercises the compiled validator
