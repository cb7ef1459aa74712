"""The dependencies one app instance runs with (settings, clock, FHIR fetcher, store, knowledge, services), built once."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hooks.cards import CardRenderer
from hooks.knowledge import Knowledge
from service.config import Settings
from service.feedback_store import FeedbackStore
from service.fhir_client import FhirFetcher
from service.validation import SchemaValidators


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
    authenticator: Any = None  # None only when the operator turned authentication off
    metrics: Any = None  # service.metrics.Metrics, built by create_app
