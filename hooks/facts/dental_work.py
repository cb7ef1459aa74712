"""Reads planned and recent invasive dental procedures from ServiceRequests and Procedures."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from hooks.facts.model import DentalWork, PatientFacts
from hooks.fhir_read import (
    codings,
    concept_label,
    days_between,
    effective_datetime,
    parse_datetime,
    status_of,
)
from hooks.knowledge import Knowledge

# A ServiceRequest in these states is work still to come; completed, revoked or entered-in-error
# ones are not (a completed one is a Procedure, read below).
PLANNED_REQUEST_STATUS = frozenset({"draft", "active", "on-hold"})
PERFORMED_PROCEDURE_STATUS = frozenset({"in-progress", "completed"})


def is_invasive_dental(concept: object, knowledge: Knowledge) -> bool:
    """CDT codes in the knowledge's ranges (oral and maxillofacial surgery, implant placement), or
    one of its SNOMED CT procedure codes."""
    spec = knowledge.threshold("invasive_dental_work")
    cdt = knowledge.systems["cdt"]
    for system, code, _ in codings(concept):
        if not code:
            continue
        if system == cdt:
            text = code.strip().upper()
            if len(text) == 5 and any(low <= text <= high for low, high in spec["cdt_ranges"]):
                return True
        elif knowledge.coding_in(spec["procedure_codes"], system, code):
            return True
    return False


def read_dental_work(
    facts: PatientFacts,
    procedures: Iterable[dict],
    service_requests: Iterable[dict],
    knowledge: Knowledge,
) -> list[DentalWork]:
    """Invasive dental work the next dose must wait for: ServiceRequests still planned (draft,
    active, on-hold; drafts of this same request included), Procedures in preparation, and
    Procedures in progress or completed within the knowledge's window."""
    recent_days = knowledge.threshold("invasive_dental_work")["recent_days"]
    found: list[DentalWork] = []
    for request in service_requests:
        status = status_of(request)
        if status not in PLANNED_REQUEST_STATUS or not is_invasive_dental(
            request.get("code"), knowledge
        ):
            continue
        # When it is planned for (occurrence[x]); the day it was ordered is not that day.
        when = effective_datetime(request) or _first_timing_event(request)
        if when is not None:
            evidence = f"ordered ({status}), planned for {_day(when)}"
        else:
            authored = parse_datetime(request.get("authoredOn"))
            ordered_on = f" on {_day(authored)}" if authored else ""
            evidence = f"ordered ({status}){ordered_on}, no date planned yet"
        found.append(
            DentalWork(concept_label(request.get("code"), "dental procedure"), when, True, evidence)
        )
    for procedure in procedures:
        status = status_of(procedure)
        if not is_invasive_dental(procedure.get("code"), knowledge):
            continue
        label = concept_label(procedure.get("code"), "dental procedure")
        when = effective_datetime(procedure)
        if status == "preparation":
            found.append(
                DentalWork(
                    label,
                    when,
                    True,
                    "in preparation" + (f", planned for {_day(when)}" if when else ""),
                )
            )
        elif status == "in-progress" and when is None:
            found.append(DentalWork(label, None, False, "in progress"))
        elif status == "completed" and when is None:
            found.append(DentalWork(label, None, False, "completed, date not recorded", True))
        elif (
            status in PERFORMED_PROCEDURE_STATUS
            and when is not None
            and days_between(when, facts.now) <= recent_days
        ):
            found.append(DentalWork(label, when, False, f"{status} on {_day(when)}"))
    # newest first; work whose date is unknown after everything dated
    return sorted(found, key=lambda w: (not w.date_unknown, w.when or facts.now), reverse=True)


def _first_timing_event(request: dict) -> datetime | None:
    """occurrenceTiming.event[0]: the first planned day of a request given as a Timing."""
    timing = request.get("occurrenceTiming")
    events = timing.get("event") if isinstance(timing, dict) else None
    return parse_datetime(events[0]) if isinstance(events, list) and events else None


def _day(moment: datetime) -> str:
    return moment.date().isoformat()
