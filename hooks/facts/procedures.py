"""Reads Procedures and Encounters into facts: dental examinations, bilateral oophorectomy,
dialysis."""

from __future__ import annotations

from collections.abc import Iterable

from hooks.facts.model import CodedFinding, DentalExam, PatientFacts
from hooks.fhir_read import (
    codings,
    concept_label,
    days_between,
    effective_datetime,
    object_at,
    parse_datetime,
    status_of,
)
from hooks.knowledge import Knowledge

NOT_PERFORMED_STATUS = frozenset(
    {"not-done", "entered-in-error", "preparation", "planned", "cancelled", "stopped"}
)


def read_dental_exams(
    facts: PatientFacts,
    procedures: Iterable[dict],
    encounters: Iterable[dict],
    knowledge: Knowledge,
) -> list[DentalExam]:
    """Dental examinations from Procedures (CDT, SNOMED), Encounters and encounter diagnoses
    (ICD-10-CM Z01.2x)."""
    spec = knowledge.raw["dental_examination"]
    exam_set = knowledge.condition_sets[spec["encounter_condition_set"]]
    exams: list[DentalExam] = []
    for procedure in procedures:
        if status_of(procedure) in NOT_PERFORMED_STATUS:
            continue
        coded = [(system, code) for system, code, _ in codings(procedure.get("code"))]
        when = effective_datetime(procedure)
        if when and any(
            knowledge.coding_in(spec["procedure_codes"], system, code) for system, code in coded
        ):
            exams.append(
                DentalExam(
                    when,
                    f"{concept_label(procedure.get('code'), 'dental procedure')} on"
                    f" {when.date().isoformat()}",
                )
            )
    for encounter in encounters:
        if status_of(encounter) in NOT_PERFORMED_STATUS:
            continue
        reasons = [c for key in ("reasonCode", "type") for c in codings(encounter.get(key))]
        period = object_at(encounter, "period")
        when = parse_datetime(period.get("start")) or parse_datetime(period.get("end"))
        if when and any(
            exam_set.matches(system, code, knowledge.systems) for system, code, _ in reasons
        ):
            exams.append(
                DentalExam(when, f"dental examination encounter on {when.date().isoformat()}")
            )
    for condition in facts.conditions:
        if exam_set.name in condition.value_sets and condition.onset:
            exams.append(
                DentalExam(
                    condition.onset, f"{condition.label} on {condition.onset.date().isoformat()}"
                )
            )
    return sorted(exams, key=lambda e: e.when, reverse=True)


def read_oophorectomies(procedures: Iterable[dict], knowledge: Knowledge) -> list[CodedFinding]:
    codes = knowledge.raw["menopause"]["bilateral_oophorectomy"]
    found = []
    for procedure in procedures:
        if status_of(procedure) in NOT_PERFORMED_STATUS:
            continue
        if any(
            knowledge.coding_in(codes, system, code)
            for system, code, _ in codings(procedure.get("code"))
        ):
            found.append(
                CodedFinding(
                    "bilateral-oophorectomy",
                    effective_datetime(procedure),
                    concept_label(procedure.get("code"), "bilateral oophorectomy"),
                )
            )
    return found


def read_dialysis_procedures(
    facts: PatientFacts, procedures: Iterable[dict], knowledge: Knowledge
) -> list[CodedFinding]:
    spec = knowledge.threshold("dialysis_procedures")
    found = []
    for procedure in procedures:
        if status_of(procedure) in NOT_PERFORMED_STATUS:
            continue
        if not any(
            knowledge.coding_in(spec["procedure_codes"], system, code)
            for system, code, _ in codings(procedure.get("code"))
        ):
            continue
        when = effective_datetime(procedure)
        if when is not None and 0 <= days_between(when, facts.now) <= spec["max_age_days"]:
            found.append(
                CodedFinding("dialysis", when, concept_label(procedure.get("code"), "dialysis"))
            )
    return sorted(found, key=lambda f: f.when or facts.now, reverse=True)
