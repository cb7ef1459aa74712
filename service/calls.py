"""One CDS Hooks service call without HTTP: validate, resolve drafts, triage, gather the record,
evaluate, render, remember the cards, measure and log.

The Flask view, `bonecds evaluate`, the preview page and the benchmark call it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hooks.cards import Finding
from hooks.fhir_read import referenced_patient
from hooks.record_gaps import unresolved_medication_findings, with_partial_notes
from service.http.validation import SchemaViolation
from service.jsonlog import HOOK_INSTANCE
from service.outcomes import ApiError
from service.record.access import FhirAccess
from service.record.budget import call_budget
from service.record.gather import gather_record
from service.record.medications import resolve_draft_medications
from service.runtime import Runtime
from service.store.base import IssuedCard

log = logging.getLogger("bonecds.calls")

Refusal = Callable[[str], "str | None"]


@dataclass(frozen=True)
class CallResult:
    """What one call answered, and what the logs and metrics say about it (ids and timings only,
    never PHI)."""

    cards: list[dict[str, Any]]
    rules: list[str]
    items: int
    fetched: list[str]
    unavailable: list[str]
    seconds: float

    @property
    def answer(self) -> dict[str, Any]:
        return {"cards": self.cards}


def validate_against(rt: Runtime, schema: str, document: Any, prefix: str = "") -> None:
    """Check a document against one of the service's JSON schemas; a violation is a 400 naming the
    path."""
    try:
        rt.validators.validate(schema, document)
    except SchemaViolation as violation:
        path = violation.path.replace("data", prefix, 1) if prefix else violation.path
        message = violation.message.replace("data", prefix, 1) if prefix else violation.message
        raise ApiError(400, message, path) from None


def handle_call(
    rt: Runtime,
    service: Any,
    body: Any,
    refusal: Refusal,
    *,
    started: float | None = None,
    remember: bool = True,
) -> CallResult:
    """Answer one hook request (already parsed JSON) for `service`.

    `refusal` says whether a fhirServer may be called (the authenticated client's servers, or the
    allowlist). ApiError for a request that cannot be answered (400, 412). `remember=False` leaves
    the issued-card ledger untouched (a local evaluation is not a clinical use).
    """
    started = time.perf_counter() if started is None else started
    validate_against(rt, "cds-request", body)
    if body["hook"] != service.hook:
        raise ApiError(
            400,
            f"Service {service.id} answers the {service.hook} hook, not {body['hook']!r}.",
            "hook",
        )
    context = body["context"]
    validate_against(rt, service.context_schema, context, "context")
    HOOK_INSTANCE.set(body["hookInstance"])  # every log line of this call names it
    refuse_drafts_of_another_patient(context)
    access = FhirAccess(body, refusal)
    findings: list[Finding] = []
    fetched: list[str] = []
    unavailable: list[str] = []
    # Every FHIR read of this call shares one time budget.
    with call_budget(rt.settings.fhir_budget_seconds):
        # A draft naming its drug by reference gets its Medication first: before that, no one can
        # tell whether it orders a bone agent. Nothing else is read unless one does.
        drafts = resolve_draft_medications(body, context, access, rt.fetcher, rt.metrics)
        context = drafts.context
        work = service.triage(context)
        gaps = unresolved_medication_findings(context, drafts.unresolved, rt.knowledge)
        if drafts.read:
            fetched.append(f"Medication({drafts.read})")
        if work:
            record = gather_record(
                rt.prefetch_keys, body, context, rt.fetcher, refusal, rt.metrics, access=access
            )
            findings = service.evaluate(
                context, work, record.patient, record.resources, record.unavailable, rt.clock.now()
            )
            findings = with_partial_notes(findings, record.partial, rt.knowledge)
            fetched += record.fetched
            unavailable = sorted(record.unavailable)
    findings += gaps
    cards = [rt.renderer.render(f) for f in findings]
    if remember and cards:
        _remember_cards(rt, service.id, body["hookInstance"], findings, cards, rt.clock.now())
    seconds = time.perf_counter() - started
    result = CallResult(
        cards, [f.rule_id for f in findings], len(work), fetched, unavailable, seconds
    )
    _measure(rt, service, body, findings, result)
    return result


def refuse_drafts_of_another_patient(context: dict[str, Any]) -> None:
    """A draft whose subject is another patient than context.patientId is an integration fault:
    checked against this patient's record it would get the wrong cards, so the call is refused
    (400, naming the entry, not the patient)."""
    drafts = context.get("draftOrders")
    entries = drafts.get("entry") if isinstance(drafts, dict) else None
    patient_id = context.get("patientId")
    if not isinstance(entries, list) or not isinstance(patient_id, str):
        return
    for index, entry in enumerate(entries):
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(resource, dict):
            continue
        named = referenced_patient(resource.get("subject"))
        if named is not None and named != patient_id:
            raise ApiError(
                400,
                f"draftOrders entry {index} ({resource.get('resourceType')}) names another patient"
                " as its subject than context.patientId; the service checks orders only against"
                " the record of the patient they are for.",
                f"context.draftOrders.entry[{index}].resource.subject",
            )


def _remember_cards(
    rt: Runtime,
    service_id: str,
    hook_instance: str,
    findings: list[Finding],
    cards: list[dict[str, Any]],
    now: datetime,
) -> None:
    issued = [
        IssuedCard(card["uuid"], finding.rule_id, card["indicator"])
        for finding, card in zip(findings, cards, strict=True)
    ]
    try:
        rt.store.record_cards(service_id, hook_instance, issued, now)
    except Exception as error:  # the clinician's cards matter more than the feedback ledger
        log.error("could not record issued cards: %s", type(error).__name__)


def _measure(
    rt: Runtime, service: Any, body: dict[str, Any], findings: list[Finding], result: CallResult
) -> None:
    if rt.metrics is not None:
        rt.metrics.hook_call(
            service.hook,
            service.id,
            result.seconds,
            [(f.rule_id, c["indicator"]) for f, c in zip(findings, result.cards, strict=True)],
        )
    fields = {
        "hook": service.hook,
        "hookInstance": body["hookInstance"],
        "service": service.id,
        "rules": result.rules,
        "ms": round(result.seconds * 1000, 1),
    }
    log.info(
        "hook=%s instance=%s service=%s items=%d fetched=%s unavailable=%s rules=%s ms=%.1f",
        service.hook,
        body["hookInstance"],
        service.id,
        result.items,
        ",".join(result.fetched) or "-",
        ",".join(result.unavailable) or "-",
        ",".join(result.rules) or "-",
        result.seconds * 1000,
        extra=fields,
    )
