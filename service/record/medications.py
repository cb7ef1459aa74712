"""Medications named by reference: a draft's Medication before triage, and those the record's
orders, statements and administrations refer to, resolved from the request or read from the FHIR
server."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any

from hooks.engine import medications_by_id
from hooks.fhir_read import as_list, bundle_resources
from hooks.record_gaps import UnresolvedMedication
from service.record.access import FhirAccess, PatientRecord, fetch
from service.record.fhir_client import FhirFetcher
from service.record.ssrf import parse_base_url

log = logging.getLogger("service.record.gather")

FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
# Resources on record that may name their drug by medicationReference, and the fact group each one
# feeds.
MEDICATION_GROUPS = {
    "MedicationRequest": "medications",
    "MedicationStatement": "medications",
    "MedicationAdministration": "administrations",
}
RECORD_KINDS = {
    "MedicationRequest": "medication orders",
    "MedicationStatement": "medication statements",
    "MedicationAdministration": "medication administrations",
}
# Distinct Medications read per call for the record (a draft's own Medication is always read): a
# record of a few
# hundred orders refers to far fewer drugs; past this the rest is reported as not read, never
# guessed.
MAX_RECORD_MEDICATION_READS = 50


# --- medicationReference
# ------------------------------------------------------------------------------------------


@dataclass
class DraftMedications:
    """The request context with the drafts' referenced Medications added to draftOrders (so the hook
    service recognises the drug as if the EHR had sent them there), and the drafts whose Medication
    could not be obtained."""

    context: dict[str, Any]
    unresolved: list[UnresolvedMedication] = field(default_factory=list)
    read: int = 0


def resolve_draft_medications(
    body: dict[str, Any],
    context: dict[str, Any],
    access: FhirAccess,
    fetcher: FhirFetcher,
    metrics: Any = None,
) -> DraftMedications:
    """Each draft MedicationRequest naming its drug by medicationReference gets its Medication:
    contained (left to the hooks), in draftOrders, in a prefetched Bundle (e.g. `_include`d), else
    read as Medication/{id} from the request's fhirServer when the SSRF guard allows it.

    Nothing else is read: this runs before the service knows whether any
    draft is a bone agent.
    """
    bundle = context.get("draftOrders")
    if not isinstance(bundle, dict):
        return DraftMedications(context)
    resources = bundle_resources(bundle)
    drafts = [r for r in resources if r.get("resourceType") == "MedicationRequest"]
    in_bundle = set(medications_by_id(resources))
    # Medications sent elsewhere in the request: the whole request is searched only for a draft
    # that needs one (most name their drug by code).
    elsewhere: dict[str, dict] | None = None
    added: dict[
        str, dict
    ] = {}  # the hooks' lookup key (last segment of the reference) -> the Medication
    to_read: dict[
        str, list[tuple[dict, str, str]]
    ] = {}  # Medication id -> [(draft, reference, lookup key)]
    unresolved: list[UnresolvedMedication] = []
    for draft in drafts:
        reference = draft.get("medicationReference")
        if not isinstance(reference, dict):
            continue
        target = reference.get("reference")
        if not isinstance(target, str) or not target.strip():
            display = reference.get("display")
            # a display alone is read as the drug's name
            if not (isinstance(display, str) and display.strip()):
                unresolved.append(
                    UnresolvedMedication(draft, None, "the reference names no Medication")
                )
            continue
        if target.startswith("#"):
            if not _contained(draft, target[1:]):
                unresolved.append(
                    UnresolvedMedication(
                        draft, target, "the order contains no Medication with that id"
                    )
                )
            continue
        key = target.rstrip("/").split("/")[-1]
        if key in in_bundle or key in added:
            continue
        literal = _medication_literal(target)
        if elsewhere is None:
            elsewhere = _medications_in_request(body, bundle)
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
        log.info(
            "draft medications: %d read from fhirServer, %d not obtained",
            len(to_read),
            len(unresolved),
        )
    order = {id(draft): n for n, draft in enumerate(drafts)}
    unresolved.sort(key=lambda gap: order[id(gap.draft)])
    if not added:
        return DraftMedications(context, unresolved, len(to_read))
    entries = [
        *as_list(bundle.get("entry")),
        *({"resource": medication} for medication in added.values()),
    ]
    return DraftMedications(
        {**context, "draftOrders": {**bundle, "entry": entries}}, unresolved, len(to_read)
    )


def read_record_medications(
    record: PatientRecord,
    context: dict[str, Any],
    access: FhirAccess,
    fetcher: FhirFetcher,
    metrics: Any,
) -> None:
    """Medications the record's orders, statements and administrations name by reference and that
    came neither in the prefetch nor with the searches (no `_include`) are read from fhirServer
    (each once, capped, inside the call's budget); those that cannot be obtained mark their fact
    group unavailable with the reason, never unclassified."""
    drafts = bundle_resources(context.get("draftOrders"))
    draft_ids = {
        r["id"]
        for r in drafts
        if r.get("resourceType") == "MedicationRequest" and isinstance(r.get("id"), str)
    }
    known = set(medications_by_id([*record.resources, *drafts]))
    to_read: dict[str, list[tuple[dict, str]]] = {}  # Medication id -> [(resource, lookup key)]
    missing: list[tuple[dict, str]] = []  # (resource, why its Medication is not there)
    for resource in record.resources:
        kind = resource.get("resourceType")
        if kind not in MEDICATION_GROUPS or (
            kind == "MedicationRequest" and resource.get("id") in draft_ids
        ):
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
            missing.append(
                (
                    resource,
                    (
                        f"more than {MAX_RECORD_MEDICATION_READS} Medications were referenced; the"
                        " rest were not read"
                    ),
                )
            )
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
        by_group.setdefault(MEDICATION_GROUPS[resource["resourceType"]], []).append(
            (resource, why_not)
        )
    for group, gaps in by_group.items():
        kinds = sorted({RECORD_KINDS[r["resourceType"]] for r, _ in gaps})
        reasons = "; ".join(dict.fromkeys(why for _, why in gaps))
        log.warning(
            "%d record %s name a Medication that could not be obtained", len(gaps), "/".join(kinds)
        )
        names = "name their drug" if len(gaps) > 1 else "names its drug"
        # "1 medication order names its drug ..."
        what = " and ".join(kinds) if len(gaps) > 1 else kinds[0][:-1]
        record.unavailable.setdefault(
            group,
            f"{len(gaps)} {what} {names} by a reference to a Medication that could "
            f"not be read: {reasons}",
        )


def _read_medications(
    fetcher: FhirFetcher, access: FhirAccess, ids: list[str], metrics: Any
) -> dict[str, tuple[dict | None, str]]:
    """Medication/{id} for each id from the allowed fhirServer, with the request's token: the
    Medication, or why not."""
    outcomes = fetch(
        fetcher,
        access,
        {medication_id: f"Medication/{medication_id}" for medication_id in ids},
        metrics,
    )
    read: dict[str, tuple[dict | None, str]] = {}
    for medication_id in ids:
        outcome = outcomes.get(medication_id)
        medication = (
            next((r for r in outcome.resources if r.get("resourceType") == "Medication"), None)
            if outcome
            else None
        )
        if outcome is None:
            read[medication_id] = None, "the FHIR server gave no answer"
        elif medication is not None:
            read[medication_id] = medication, ""
        elif not outcome.found:
            read[medication_id] = None, f"the FHIR server has no Medication/{medication_id}"
        elif outcome.error:
            read[medication_id] = None, str(outcome.error)
        else:
            read[medication_id] = None, "the FHIR server did not answer with a Medication"
    return read


def _readable_medication(target: str, access: FhirAccess) -> tuple[str | None, str]:
    """The id to read from fhirServer for a literal reference (relative `Medication/{id}`, or
    absolute on that same server), or why it cannot be read."""
    literal = _medication_literal(target)
    if literal is None:
        return (
            None,
            "it is not in the request and is not a reference to a Medication on a FHIR server",
        )
    if access.server is None:
        return None, f"it was not in the request, and {access.why_not()}"
    base, medication_id = literal
    if base and parse_base_url(base) != parse_base_url(access.server):
        return None, "it is on another FHIR server than the request's fhirServer"
    return medication_id, ""


def _medication_literal(target: str) -> tuple[str, str] | None:
    """(base URL or "" when relative, id) of a literal `[base/]Medication/{id}[/_history/{v}]`
    reference, else None."""
    parts = target.strip().rstrip("/").split("/")
    if len(parts) >= 4 and parts[-2] == "_history":
        parts = parts[:-2]
    if (
        len(parts) < 2
        or parts[-2] != "Medication"
        or not FHIR_ID.fullmatch(parts[-1])
        or not parts[-1].strip(".")
    ):
        return None  # an id of dots only would name a path segment (".."), not a resource
    return "/".join(parts[:-2]), parts[-1]


def _medications_in_request(body: dict[str, Any], draft_orders: dict) -> dict[str, dict]:
    """Medications sent anywhere in the request's Bundles (prefetch searchsets, `_include`d or not;
    draftOrders by fullUrl), by fullUrl and by id."""
    found: dict[str, dict] = {}
    prefetch = body.get("prefetch")
    if not isinstance(prefetch, dict):
        prefetch = {}
    sources = [value for value in prefetch.values() if isinstance(value, dict)] + [draft_orders]
    for source in sources:
        entries = (
            as_list(source.get("entry"))
            if source.get("resourceType") == "Bundle" or source is draft_orders
            else [{"resource": source}]
        )
        for entry in entries:
            resource = entry.get("resource") if isinstance(entry, dict) else None
            if not isinstance(resource, dict) or resource.get("resourceType") != "Medication":
                continue
            full_url = entry.get("fullUrl")
            if isinstance(full_url, str):
                found.setdefault(full_url, resource)
            if isinstance(resource.get("id"), str) and source is not draft_orders:
                found.setdefault(resource["id"], resource)
    return found


def _contained(resource: dict, local_id: str) -> bool:
    return any(
        isinstance(c, dict) and c.get("resourceType") == "Medication" and c.get("id") == local_id
        for c in as_list(resource.get("contained"))
    )


def _as_id(medication: dict, key: str) -> dict:
    """The Medication as the hooks look it up (by the last segment of the reference): the same
    resource when that is its id, else a copy under that key (a urn:uuid or versioned reference)."""
    return medication if medication.get("id") == key else {**medication, "id": key}
