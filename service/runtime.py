"""The dependencies one app instance runs with (settings, clock, FHIR fetcher, store, knowledge,
services), built once."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hooks.cards import CardRenderer
from hooks.knowledge import Knowledge
from service.config import Settings
from service.http.validation import SchemaValidators
from service.record.fhir_client import FhirFetcher
from service.store.base import FeedbackStore


@dataclass
class Runtime:
    settings: Settings
    clock: Any
    fetcher: FhirFetcher
    store: FeedbackStore
    knowledge: Knowledge
    services: dict[str, Any]
    validators: SchemaValidators
    renderer: CardRenderer
    discovery_body: bytes
    prefetch_keys: tuple[
        Any, ...
    ] = ()  # service.record.prefetch.PrefetchKey: what every service asks EHRs for
    authenticator: Any = None  # None only when the operator turned authentication off
    metrics: Any = None  # service.metrics.Metrics, built by create_app
    # under `bonecds serve`: how many of its workers listen (service.serving.ListeningWorkers);
    # None in one process (tests, the CLI's evaluations), which is ready as soon as it answers
    workers: Any = None
    # under `bonecds serve`: the answer being written closes its keep-alive connection (a call shed
    # because the worker is at its limit: the client's next connection may reach another worker)
    close_client_connection: Callable[[], None] = lambda: None
