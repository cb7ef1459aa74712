"""Gathers the patient record for one hook call: prefetch where the EHR sent it, the FHIR server for the rest."""
from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable
from urllib.parse import quote

from hooks.fhir_read import bundle_resources
from hooks.order_sign import PrefetchKey
from service.errors import ApiError
from service.fhir_client import FhirFetcher, next_link

log = logging.getLogger(__name__)

CONTEXT_TOKEN = re.compile(r"\{\{\s*context\.([A-Za-z]+)\s*\}\}")
USER_TOKENS = {"userPractitionerId": "Practitioner", "userPractitionerRoleId": "PractitionerRole",
               "userPatientId": "Patient", "userRelatedPersonId": "RelatedPerson"}


@dataclass
class PatientRecord:
    patient: dict | None
    resources: list[dict] = field(default_factory=list)
    unavailable: dict[str, str] = field(default_factory=dict)
    fetched: list[str] = field(default_factory=list)


def fill_template(template: str, context: dict[str, Any]) -> str:
    """Replace 2.0 prefetch tokens with URL-encoded context values; a token without a value is an error."""
    def context_value(match: re.Match) -> str:
        value = context.get(match.group(1))
        if not isinstance(value, str):
            raise KeyError(match.group(1))
        return quote(value, safe="/")
    filled = CONTEXT_TOKEN.sub(context_value, template)
    user = context.get("userId") if isinstance(context.get("userId"), str) else ""
    for token, resource_type in USER_TOKENS.items():
        if "{{" + token + "}}" in filled:
            if not user.startswith(resource_type + "/"):
                raise KeyError(token)
            filled = filled.replace("{{" + token + "}}", quote(user.split("/", 1)[1], safe=""))
    return filled


def _prefetched(value: Any) -> tuple[str, Any]:
    """Classify one prefetch value: ('none'|'resource'|'bundle'|'failed', payload)."""
    if value is None:
        return "none", None
    if not isinstance(value, dict) or not isinstance(value.get("resourceType"), str):
        return "failed", None
    if value["resourceType"] == "OperationOutcome":
        return "failed", None
    if value["resourceType"] == "Bundle":
        return "bundle", value
    return "resource", value


def gather_record(keys: Iterable[PrefetchKey], body: dict[str, Any], context: dict[str, Any],
                  fetcher: FhirFetcher, refusal: Callable[[str], str | None] = lambda _url: None,
                  metrics: Any = None) -> PatientRecord:
    """Prefetch first; the rest from fhirServer, unless `refusal` says this client may not have it called (then the
    missing parts are marked unavailable with that reason, and the server is never contacted). `metrics`
    (service.metrics.Metrics) gets the fetch time and the failed queries' errors."""
    prefetch = body.get("prefetch") if isinstance(body.get("prefetch"), dict) else {}
    fhir_server = body.get("fhirServer") if isinstance(body.get("fhirServer"), str) else None
    refused = refusal(fhir_server) if fhir_server else None
    if refused:
        log.warning("fhirServer refused: %s", refused)
        fhir_server = None
    authorization = body.get("fhirAuthorization") if isinstance(body.get("fhirAuthorization"), dict) else {}
    token = authorization.get("access_token") if isinstance(authorization.get("access_token"), str) else None
    record = PatientRecord(patient=None)
    patient_id = context.get("patientId") if isinstance(context.get("patientId"), str) else None
    to_fetch: dict[str, str] = {}
    keys = tuple(keys)
    for key in keys:
        kind, payload = _prefetched(prefetch[key.key]) if key.key in prefetch else ("absent", None)
        if kind == "none":
            continue
        if kind == "resource":
            _add(record, key, [payload], patient_id)
            continue
        if kind == "bundle":
            _add(record, key, bundle_resources(payload), patient_id)
            following = next_link(payload)
            if following:
                to_fetch[key.key] = following  # the EHR paginated its prefetch: read the rest ourselves
            continue
        try:
            to_fetch[key.key] = fill_template(key.template, context)
        except KeyError as missing:
            record.unavailable.update({group: f"no value for {missing.args[0]} in the request context" for group in key.provides})
    if to_fetch and fhir_server:
        started = time.perf_counter()
        outcomes = fetcher.fetch_all(fhir_server, token, to_fetch)
        if metrics is not None:
            metrics.fhir_fetch(time.perf_counter() - started, [o.error for o in outcomes.values() if o.error])
        for key in keys:
            outcome = outcomes.get(key.key)
            if outcome is None:
                continue
            record.fetched.append(key.key)
            _add(record, key, outcome.resources, patient_id)
            if not outcome.ok:
                log.warning("prefetch key %s could not be fetched: %s", key.key, outcome.error)
                record.unavailable.update({group: outcome.error for group in key.provides})
    elif to_fetch:
        for key in keys:
            if key.key in to_fetch:
                reason = (f"not prefetched, and {refused}" if refused else
                          "not prefetched, and the request gave no FHIR server to read it from")
                record.unavailable.update({group: reason for group in key.provides})
    if record.patient is None:
        reason = record.unavailable.get("patient", "the Patient resource was not found")
        raise ApiError(412, f"The patient's record could not be obtained: {reason}.", "prefetch.patient")
    return record


def _add(record: PatientRecord, key: PrefetchKey, resources: list[dict], patient_id: str | None) -> None:
    """Keep what belongs to this patient: a server (or prefetch) that ignores `patient=` must not mix in others' data."""
    foreign = 0
    for resource in resources:
        if "patient" in key.provides and resource.get("resourceType") == "Patient":
            if patient_id is None or resource.get("id") == patient_id:
                record.patient = resource
            else:
                foreign += 1
        elif _belongs_to_other_patient(resource, patient_id):
            foreign += 1
        else:
            record.resources.append(resource)
    if foreign:
        log.warning("prefetch key %s: %d resource(s) of another patient ignored", key.key, foreign)


def _belongs_to_other_patient(resource: dict, patient_id: str | None) -> bool:
    """subject or patient names a different Patient (Group subjects and missing references are left to the rules)."""
    if patient_id is None:
        return False
    for field in ("subject", "patient"):
        value = resource.get(field)
        reference = value.get("reference") if isinstance(value, dict) else None
        if not isinstance(reference, str):
            continue
        parts = [p for p in reference.split("/") if p]
        if len(parts) >= 4 and parts[-2] == "_history":
            parts = parts[:-2]
        if len(parts) >= 2 and parts[-2] == "Patient" and parts[-1] != patient_id:
            return True
    return False
