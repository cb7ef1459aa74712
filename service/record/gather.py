"""Gathers the patient record for one hook call: prefetch where the EHR sent it, the FHIR server for the rest."""
from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Callable, Iterable
from urllib.parse import urljoin, urlsplit

from hooks.fhir_read import as_list, bundle_resources
from service.record.prefetch import PrefetchKey, fill_template
from hooks.record_gaps import UnresolvedMedication
from service.outcomes import ApiError
from service.record.fhir_client import FetchOutcome, FhirFetcher, next_link
from service.record.ssrf import parse_base_url

log = logging.getLogger(__name__)

FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
# Resources on record that may name their drug by medicationReference, and the fact group each one feeds.
MEDICATION_GROUPS = {"MedicationRequest": "medications", "MedicationStatement": "medications",
                     "MedicationAdministration": "administrations"}
RECORD_KINDS = {"MedicationRequest": "medication orders", "MedicationStatement": "medication statements",
                "MedicationAdministration": "medication administrations"}
# Distinct Medications read per call for the record (a draft's own Medication is always read): a record of a few
# hundred orders refers to far fewer drugs; past this the rest is reported as not read, never guessed.
MAX_RECORD_MEDICATION_READS = 50


@dataclass
class PatientRecord:
    patient: dict | None
    resources: list[dict] = field(default_factory=list)
    unavailable: dict[str, str] = field(default_factory=dict)
    fetched: list[str] = field(default_factory=list)
    # fact groups of which only the EHR's first page of a paged prefetch was read, with why the rest was not
    partial: dict[str, str] = field(default_factory=dict)


class FhirAccess:
    """Whether, and how, this call may read from the request's fhirServer: only a server the SSRF guard allows for the
    client, with the request's fhirAuthorization token. Worked out on first use (a call that reads nothing never asks)."""

    def __init__(self, body: dict[str, Any], refusal: Callable[[str], str | None] = lambda _url: None) -> None:
        given = body.get("fhirServer")
        self.given = given if isinstance(given, str) else None
        authorization = body.get("fhirAuthorization") if isinstance(body.get("fhirAuthorization"), dict) else {}
        token = authorization.get("access_token")
        self.token = token if isinstance(token, str) else None
        self._refusal = refusal

    @cached_property
    def refused(self) -> str | None:
        """Why the given fhirServer may not be called (None when it may, or when none was given)."""
        refused = self._refusal(self.given) if self.given else None
        if refused:
            log.warning("fhirServer refused: %s", refused)
        return refused

    @property
    def server(self) -> str | None:
        """The fhirServer base URL this call may read from, or None."""
        return None if self.refused or not self.given else self.given

    def why_not(self) -> str:
        """Why nothing can be read from a server ("the request gave no FHIR server ..." or the refusal)."""
        return self.refused or "the request gave no FHIR server to read it from"

    def on_server(self, url: str) -> bool:
        """`url` (absolute) lies on the allowed fhirServer (same scheme, host, port and base path)."""
        server = self.server
        base, target = parse_base_url(server) if server else None, parse_base_url(url.split("?", 1)[0].split("#", 1)[0])
        return base is not None and target is not None and base.contains(target)


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
                  metrics: Any = None, access: FhirAccess | None = None) -> PatientRecord:
    """Prefetch first; the rest from fhirServer, unless `refusal` says this client may not have it called (then the
    missing parts are marked unavailable with that reason, and the server is never contacted). A paged prefetch is used
    as sent, and its next pages are read when the server may be called; when they cannot be, the groups are marked
    partial (available, first page only), never unavailable. Medications the record refers to and did not send are read
    from the server too. `metrics` (service.metrics.Metrics) gets the fetch time and the failed queries' errors."""
    prefetch = body.get("prefetch") if isinstance(body.get("prefetch"), dict) else {}
    access = access or FhirAccess(body, refusal)
    record = PatientRecord(patient=None)
    patient_id = context.get("patientId") if isinstance(context.get("patientId"), str) else None
    to_fetch: dict[str, str] = {}
    pages: dict[str, str] = {}  # prefetch key -> the next page of the EHR's paged prefetch
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
            record.unavailable.update({group: f"no value for {missing.args[0]} in the request context" for group in key.provides})
    if to_fetch and not access.server:
        reason = f"not prefetched, and {access.refused}" if access.refused else \
            "not prefetched, and the request gave no FHIR server to read it from"
        for key in keys:
            if key.key in to_fetch:
                record.unavailable.update({group: reason for group in key.provides})
        to_fetch = {}
    queries = {**to_fetch, **pages}
    if queries:
        outcomes = _fetch(fetcher, access, queries, metrics)
        for key in keys:
            outcome = outcomes.get(key.key)
            if outcome is None:
                continue
            record.fetched.append(key.key)
            _add(record, key, outcome.resources, patient_id)
            if outcome.ok:
                continue
            if key.key in pages:
                log.warning("prefetch key %s: its next page could not be read: %s", key.key, outcome.error)
                record.partial.update({group: f"its next page could not be read: {outcome.error}" for group in key.provides})
            else:
                log.warning("prefetch key %s could not be fetched: %s", key.key, outcome.error)
                record.unavailable.update({group: outcome.error for group in key.provides})
    if record.patient is None:
        reason = record.unavailable.get("patient", "the Patient resource was not found")
        raise ApiError(412, f"The patient's record could not be obtained: {reason}.", "prefetch.patient")
    _read_record_medications(record, context, access, fetcher, metrics)
    return record


def _fetch(fetcher: FhirFetcher, access: FhirAccess, queries: dict[str, str], metrics: Any) -> dict[str, FetchOutcome]:
    started = time.perf_counter()
    # without the Patient there is no answer but 412: do not wait for the rest when its read fails
    outcomes = fetcher.fetch_all(access.server, access.token, queries,
                                 **({"critical": "patient"} if "patient" in queries else {}))
    if metrics is not None:
        metrics.fhir_fetch(time.perf_counter() - started, [o.error for o in outcomes.values() if o.error])
    return outcomes


def _next_page(link: str, access: FhirAccess) -> tuple[str | None, str]:
    """The next page of a paged prefetch as a query the fetcher may run, or why it may not be read."""
    server = access.server
    if server is None:
        return None, (f"the next page is on a FHIR server the service may not call: {access.refused}" if access.refused
                      else "the request gave no FHIR server to read the next page from")
    base = server.rstrip("/") + "/"
    url = urljoin(base, link)
    if not access.on_server(url):
        return None, "the next-page link points to another server than the request's fhirServer"
    if url.startswith(base):
        return url, ""
    # the same server written differently (host case, default port): ask for it relative to the base as given
    server_path, page = parse_base_url(server), urlsplit(url)
    assert server_path is not None
    relative = page.path[len(server_path.path.rstrip("/")):].lstrip("/")
    return relative + (f"?{page.query}" if page.query else ""), ""


# --- medicationReference ------------------------------------------------------------------------------------------


@dataclass
class DraftMedications:
    """The request context with the drafts' referenced Medications added to draftOrders (so the hook service recognises
    the drug as if the EHR had sent them there), and the drafts whose Medication could not be obtained."""
    context: dict[str, Any]
    unresolved: list[UnresolvedMedication] = field(default_factory=list)
    read: int = 0


def resolve_draft_medications(body: dict[str, Any], context: dict[str, Any], access: FhirAccess, fetcher: FhirFetcher,
                              metrics: Any = None) -> DraftMedications:
    """Each draft MedicationRequest naming its drug by medicationReference gets its Medication: contained (left to the
    hooks), in draftOrders, in a prefetched Bundle (e.g. `_include`d), else read as Medication/{id} from the request's
    fhirServer when the SSRF guard allows it. Nothing else is read: this runs before the service knows whether any
    draft is a bone agent."""
    bundle = context.get("draftOrders")
    if not isinstance(bundle, dict):
        return DraftMedications(context)
    resources = bundle_resources(bundle)
    drafts = [r for r in resources if r.get("resourceType") == "MedicationRequest"]
    in_bundle = {r["id"] for r in resources if r.get("resourceType") == "Medication" and isinstance(r.get("id"), str)}
    elsewhere = _medications_in_request(body, bundle)
    added: dict[str, dict] = {}  # the hooks' lookup key (last segment of the reference) -> the Medication
    to_read: dict[str, list[tuple[dict, str, str]]] = {}  # Medication id -> [(draft, reference, lookup key)]
    unresolved: list[UnresolvedMedication] = []
    for draft in drafts:
        reference = draft.get("medicationReference")
        if not isinstance(reference, dict):
            continue
        target = reference.get("reference")
        if not isinstance(target, str) or not target.strip():
            display = reference.get("display")
            if not (isinstance(display, str) and display.strip()):  # a display alone is read as the drug's name
                unresolved.append(UnresolvedMedication(draft, None, "the reference names no Medication"))
            continue
        if target.startswith("#"):
            if not _contained(draft, target[1:]):
                unresolved.append(UnresolvedMedication(draft, target, "the order contains no Medication with that id"))
            continue
        key = target.rstrip("/").split("/")[-1]
        if key in in_bundle or key in added:
            continue
        literal = _medication_literal(target)
        found = elsewhere.get(target) or (elsewhere.get(literal[1]) if literal else None)
        if found is not None:
            added[key] = _as_id(found, key)
            continue
        medication_id, why_not = _readable_medication(target, access)
        if medication_id is None:
            unresolved.append(UnresolvedMedication(draft, target, why_not))
            continue
        to_read.setdefault(medication_id, []).append((draft, target, key))
    if to_read:
        read = _read_medications(fetcher, access, list(to_read), metrics)
        for medication_id, users in to_read.items():
            medication, why_not = read[medication_id]
            for draft, target, key in users:
                if medication is not None:
                    added[key] = _as_id(medication, key)
                else:
                    unresolved.append(UnresolvedMedication(draft, target, why_not))
        log.info("draft medications: %d read from fhirServer, %d not obtained", len(to_read), len(unresolved))
    order = {id(draft): n for n, draft in enumerate(drafts)}
    unresolved.sort(key=lambda gap: order[id(gap.draft)])
    if not added:
        return DraftMedications(context, unresolved, len(to_read))
    entries = [*as_list(bundle.get("entry")), *({"resource": medication} for medication in added.values())]
    return DraftMedications({**context, "draftOrders": {**bundle, "entry": entries}}, unresolved, len(to_read))


def _read_record_medications(record: PatientRecord, context: dict[str, Any], access: FhirAccess, fetcher: FhirFetcher,
                             metrics: Any) -> None:
    """Medications the record's orders, statements and administrations name by reference and that came neither in the
    prefetch nor with the searches (no `_include`) are read from fhirServer (each once, capped, inside the call's
    budget); those that cannot be obtained mark their fact group unavailable with the reason, never unclassified."""
    drafts = bundle_resources(context.get("draftOrders"))
    draft_ids = {r["id"] for r in drafts if r.get("resourceType") == "MedicationRequest" and isinstance(r.get("id"), str)}
    known = {r["id"] for r in [*record.resources, *drafts]
             if r.get("resourceType") == "Medication" and isinstance(r.get("id"), str)}
    to_read: dict[str, list[tuple[dict, str]]] = {}  # Medication id -> [(resource, lookup key)]
    missing: list[tuple[dict, str]] = []  # (resource, why its Medication is not there)
    for resource in record.resources:
        kind = resource.get("resourceType")
        if kind not in MEDICATION_GROUPS or (kind == "MedicationRequest" and resource.get("id") in draft_ids):
            continue
        reference = resource.get("medicationReference")
        if not isinstance(reference, dict):
            continue
        target = reference.get("reference")
        if not isinstance(target, str) or not target.strip():
            display = reference.get("display")
            if not (isinstance(display, str) and display.strip()):
                missing.append((resource, "the reference names no Medication"))
            continue
        if target.startswith("#"):
            if not _contained(resource, target[1:]):
                missing.append((resource, "a contained Medication it names is not there"))
            continue
        key = target.rstrip("/").split("/")[-1]
        if key in known:
            continue
        medication_id, why_not = _readable_medication(target, access)
        if medication_id is None:
            missing.append((resource, why_not))
        elif medication_id in to_read or len(to_read) < MAX_RECORD_MEDICATION_READS:
            to_read.setdefault(medication_id, []).append((resource, key))
        else:
            missing.append((resource, f"more than {MAX_RECORD_MEDICATION_READS} Medications were referenced; the rest "
                                      "were not read"))
    if to_read:
        read = _read_medications(fetcher, access, list(to_read), metrics)
        record.fetched.append(f"Medication({len(to_read)})")
        for medication_id, users in to_read.items():
            medication, why_not = read[medication_id]
            for resource, key in users:
                if medication is None:
                    missing.append((resource, why_not))
                elif key not in known:
                    known.add(key)
                    record.resources.append(_as_id(medication, key))
    by_group: dict[str, list[tuple[dict, str]]] = {}
    for resource, why_not in missing:
        by_group.setdefault(MEDICATION_GROUPS[resource["resourceType"]], []).append((resource, why_not))
    for group, gaps in by_group.items():
        kinds = sorted({RECORD_KINDS[r["resourceType"]] for r, _ in gaps})
        reasons = "; ".join(dict.fromkeys(why for _, why in gaps))
        log.warning("%d record %s name a Medication that could not be obtained", len(gaps), "/".join(kinds))
        names = "name their drug" if len(gaps) > 1 else "names its drug"
        what = " and ".join(kinds) if len(gaps) > 1 else kinds[0][:-1]  # "1 medication order names its drug ..."
        record.unavailable.setdefault(group, f"{len(gaps)} {what} {names} by a reference to a Medication that could "
                                             f"not be read: {reasons}")


def _read_medications(fetcher: FhirFetcher, access: FhirAccess, ids: list[str],
                      metrics: Any) -> dict[str, tuple[dict | None, str]]:
    """Medication/{id} for each id from the allowed fhirServer, with the request's token: the Medication, or why not."""
    outcomes = _fetch(fetcher, access, {medication_id: f"Medication/{medication_id}" for medication_id in ids}, metrics)
    read: dict[str, tuple[dict | None, str]] = {}
    for medication_id in ids:
        outcome = outcomes.get(medication_id)
        medication = next((r for r in outcome.resources if r.get("resourceType") == "Medication"), None) if outcome else None
        if outcome is None:
            read[medication_id] = None, "the FHIR server gave no answer"
        elif medication is not None:
            read[medication_id] = medication, ""
        elif not outcome.found:
            read[medication_id] = None, f"the FHIR server has no Medication/{medication_id}"
        elif outcome.error:
            read[medication_id] = None, outcome.error
        else:
            read[medication_id] = None, "the FHIR server did not answer with a Medication"
    return read


def _readable_medication(target: str, access: FhirAccess) -> tuple[str | None, str]:
    """The id to read from fhirServer for a literal reference (relative `Medication/{id}`, or absolute on that same
    server), or why it cannot be read."""
    literal = _medication_literal(target)
    if literal is None:
        return None, "it is not in the request and is not a reference to a Medication on a FHIR server"
    if access.server is None:
        return None, f"it was not in the request, and {access.why_not()}"
    base, medication_id = literal
    if base and parse_base_url(base) != parse_base_url(access.server):
        return None, "it is on another FHIR server than the request's fhirServer"
    return medication_id, ""


def _medication_literal(target: str) -> tuple[str, str] | None:
    """(base URL or "" when relative, id) of a literal `[base/]Medication/{id}[/_history/{v}]` reference, else None."""
    parts = target.strip().rstrip("/").split("/")
    if len(parts) >= 4 and parts[-2] == "_history":
        parts = parts[:-2]
    if len(parts) < 2 or parts[-2] != "Medication" or not FHIR_ID.fullmatch(parts[-1]) or not parts[-1].strip("."):
        return None  # an id of dots only would name a path segment (".."), not a resource
    return "/".join(parts[:-2]), parts[-1]


def _medications_in_request(body: dict[str, Any], draft_orders: dict) -> dict[str, dict]:
    """Medications sent anywhere in the request's Bundles (prefetch searchsets, `_include`d or not; draftOrders by
    fullUrl), by fullUrl and by id."""
    found: dict[str, dict] = {}
    prefetch = body.get("prefetch") if isinstance(body.get("prefetch"), dict) else {}
    sources = [value for value in prefetch.values() if isinstance(value, dict)] + [draft_orders]
    for source in sources:
        entries = as_list(source.get("entry")) if source.get("resourceType") == "Bundle" or source is draft_orders else \
            [{"resource": source}]
        for entry in entries:
            resource = entry.get("resource") if isinstance(entry, dict) else None
            if not isinstance(resource, dict) or resource.get("resourceType") != "Medication":
                continue
            if isinstance(entry.get("fullUrl"), str):
                found.setdefault(entry["fullUrl"], resource)
            if isinstance(resource.get("id"), str) and source is not draft_orders:
                found.setdefault(resource["id"], resource)
    return found


def _contained(resource: dict, local_id: str) -> bool:
    return any(isinstance(c, dict) and c.get("resourceType") == "Medication" and c.get("id") == local_id
               for c in as_list(resource.get("contained")))


def _as_id(medication: dict, key: str) -> dict:
    """The Medication as the hooks look it up (by the last segment of the reference): the same resource when that is
    its id, else a copy under that key (a urn:uuid or versioned reference)."""
    return medication if medication.get("id") == key else {**medication, "id": key}


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
    for key in ("subject", "patient"):
        value = resource.get(key)
        reference = value.get("reference") if isinstance(value, dict) else None
        if not isinstance(reference, str):
            continue
        parts = [p for p in reference.split("/") if p]
        if len(parts) >= 4 and parts[-2] == "_history":
            parts = parts[:-2]
        if len(parts) >= 2 and parts[-2] == "Patient" and parts[-1] != patient_id:
            return True
    return False
