"""Gathers the patient record for one hook call: prefetch where the EHR sent it, the FHIR server for
the rest."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urljoin, urlsplit

from hooks.facts.fetch_failure import FetchReason
from hooks.fhir_read import bundle_resources, referenced_patient
from service.outcomes import ApiError
from service.record.access import FhirAccess, PatientRecord, fetch
from service.record.fhir_client import FhirFetcher
from service.record.medications import read_record_medications
from service.record.paging import next_link
from service.record.prefetch import PrefetchKey, fill_template
from service.record.ssrf import parse_base_url

log = logging.getLogger(__name__)


ABSENT: Any = object()  # a prefetch key the request did not send


def _prefetched(value: Any) -> str:
    """Classify one prefetch value the request sent (not null): 'resource', 'bundle' or 'failed'."""
    if not isinstance(value, dict):
        return "failed"
    resource_type = value.get("resourceType")
    if not isinstance(resource_type, str) or resource_type == "OperationOutcome":
        return "failed"
    return "bundle" if resource_type == "Bundle" else "resource"


def gather_record(
    keys: Iterable[PrefetchKey],
    body: dict[str, Any],
    context: dict[str, Any],
    fetcher: FhirFetcher,
    refusal: Callable[[str], str | None] = lambda _url: None,
    metrics: Any = None,
    access: FhirAccess | None = None,
) -> PatientRecord:
    """Prefetch first; the rest from fhirServer, unless `refusal` says this client may not have it
    called (then the missing parts are marked unavailable with that reason, and the server is never
    contacted).

    A paged prefetch is used as sent, and its next pages are read when the server may be called;
    when they cannot be, the groups are marked partial (available, first page only), never
    unavailable. Medications the record refers to and did not send are read from the server too.
    `metrics` (service.metrics.Metrics) gets the fetch time and the failed queries' errors.
    """
    prefetch = body.get("prefetch")
    if not isinstance(prefetch, dict):
        prefetch = {}
    access = access or FhirAccess(body, refusal)
    record = PatientRecord(patient=None)
    patient_id = context.get("patientId") if isinstance(context.get("patientId"), str) else None
    to_fetch: dict[str, str] = {}
    pages: dict[str, str] = {}  # prefetch key -> the next page of the EHR's paged prefetch
    keys = tuple(keys)
    for key in keys:
        value = prefetch.get(key.key, ABSENT)
        if value is None:
            continue  # sent as null: the EHR found nothing
        kind = "absent" if value is ABSENT else _prefetched(value)
        if kind == "resource":
            _add(record, key, [value], patient_id)
            continue
        if kind == "bundle":
            if value.get("entry"):  # most keys of a request find nothing: an empty searchset
                _add(record, key, bundle_resources(value), patient_id)
            following = next_link(value) if value.get("link") else None
            if following:  # the EHR paginated its prefetch: read the rest ourselves if we may
                page, why_not = _next_page(following, access)
                if page:
                    pages[key.key] = page
                else:
                    record.partial.update({group: why_not for group in key.provides})
            continue
        try:
            to_fetch[key.key] = fill_template(key.template, context)
        except KeyError as missing:
            record.unavailable.update(
                {
                    group: f"no value for {missing.args[0]} in the request context"
                    for group in key.provides
                }
            )
    if to_fetch and not access.server:
        reason = (
            f"not prefetched, and {access.refused}"
            if access.refused
            else "not prefetched, and the request gave no FHIR server to read it from"
        )
        for key in keys:
            if key.key in to_fetch:
                record.unavailable.update({group: reason for group in key.provides})
        to_fetch = {}
    queries = {**to_fetch, **pages}
    busy = 0  # queries not started because the worker was at its limit of FHIR calls
    patient_shed = False
    if queries:
        outcomes = fetch(fetcher, access, queries, metrics)
        for key in keys:
            outcome = outcomes.get(key.key)
            if outcome is None:
                continue
            record.fetched.append(key.key)
            _add(record, key, outcome.resources, patient_id)
            if outcome.ok:
                continue
            shed = outcome.error is not None and outcome.error.reason is FetchReason.BUSY
            if shed:
                busy += 1  # one log line for the call below, not one per query
                patient_shed = patient_shed or "patient" in key.provides
            if key.key in pages:
                if not shed:
                    log.warning(
                        "prefetch key %s: its next page could not be read: %s",
                        key.key,
                        outcome.error,
                    )
                record.partial.update(
                    {
                        group: f"its next page could not be read: {outcome.error}"
                        for group in key.provides
                    }
                )
            else:
                if not shed:
                    log.warning("prefetch key %s could not be fetched: %s", key.key, outcome.error)
                record.unavailable.update({group: str(outcome.error) for group in key.provides})
    if busy:
        log.warning("%d FHIR queries not read: this worker is at its limit of FHIR calls", busy)
    if record.patient is None and patient_shed:
        # Overload, not a record the EHR lacks: the client may try again (CDS Hooks clients treat
        # any error as no cards; 412 would send integration teams looking for a data problem).
        raise ApiError(
            503,
            "The service is busy: too many calls on this worker are reading FHIR servers. Try"
            " again shortly.",
            "prefetch.patient",
            retry_after_seconds=1,
        )
    if record.patient is None:
        reason = record.unavailable.get("patient", "the Patient resource was not found")
        raise ApiError(
            412, f"The patient's record could not be obtained: {reason}.", "prefetch.patient"
        )
    read_record_medications(record, context, access, fetcher, metrics)
    return record


def _next_page(link: str, access: FhirAccess) -> tuple[str | None, str]:
    """The next page of a paged prefetch as a query the fetcher may run, or why it may not be
    read."""
    server = access.server
    if server is None:
        return None, (
            f"the next page is on a FHIR server the service may not call: {access.refused}"
            if access.refused
            else "the request gave no FHIR server to read the next page from"
        )
    base = server.rstrip("/") + "/"
    url = urljoin(base, link)
    if not access.on_server(url):
        return None, "the next-page link points to another server than the request's fhirServer"
    if url.startswith(base):
        return url, ""
    # the same server written differently (host case, default port): ask for it relative to the base
    # as given
    server_path, page = parse_base_url(server), urlsplit(url)
    if server_path is None:  # on_server(url) accepted the URL, so the server parses
        raise RuntimeError("the request's fhirServer is not a valid base URL")
    relative = page.path[len(server_path.path.rstrip("/")) :].lstrip("/")
    return relative + (f"?{page.query}" if page.query else ""), ""


def _add(
    record: PatientRecord, key: PrefetchKey, resources: list[dict], patient_id: str | None
) -> None:
    """Keep what belongs to this patient: a server (or prefetch) that ignores `patient=` must not
    mix in others' data."""
    foreign = 0
    provides_patient = "patient" in key.provides
    own_reference = None if patient_id is None else "Patient/" + patient_id
    kept = record.resources
    for resource in resources:
        if provides_patient and resource.get("resourceType") == "Patient":
            if patient_id is None or resource.get("id") == patient_id:
                record.patient = resource
            else:
                foreign += 1
        elif own_reference is None or not _belongs_to_other_patient(resource, own_reference):
            kept.append(resource)
        else:
            foreign += 1
    if foreign:
        log.warning("prefetch key %s: %d resource(s) of another patient ignored", key.key, foreign)


def _belongs_to_other_patient(resource: dict, own_reference: str) -> bool:
    """Subject or patient names a different Patient than `own_reference` ('Patient/<id>'); Group
    subjects and missing references are left to the rules."""
    subject = resource.get("subject")
    if (
        isinstance(subject, dict)
        and subject.get("reference") == own_reference
        and "patient" not in resource
    ):
        return False  # the common case in one look (1,000s per long record)
    for key in ("subject", "patient"):
        value = resource.get(key)
        if not isinstance(value, dict):
            continue
        reference = value.get("reference")
        if reference == own_reference or not isinstance(reference, str):
            continue  # the common case, decided without splitting (1,000s per long record)
        named = referenced_patient(reference)
        if named is not None and "Patient/" + named != own_reference:
            return True
    return False
