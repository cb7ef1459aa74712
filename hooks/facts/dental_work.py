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
        when = effective_datetime(request) or parse_datetime(request.get("authoredOn"))
        found.append(
            DentalWork(
                concept_label(request.get("code"), "dental procedure"),
                when,
                True,
                f"ordered ({status})" + (f", planned for {_day(when)}" if when else ""),
            )
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
        elif (
            status in PERFORMED_PROCEDURE_STATUS
            and when is not None
            and days_between(when, facts.now) <= recent_days
        ):
            found.append(DentalWork(label, when, False, f"{status} on {_day(when)}"))
    return sorted(found, key=lambda w: w.when or facts.now, reverse=True)


def _day(moment: datetime) -> str:
    return moment.date().isoformat()
