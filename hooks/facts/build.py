"""Sorts the gathered record (plain FHIR JSON) into PatientFacts with the readers, then derives the
setting."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime

from hooks.assessments.setting import derive_setting
from hooks.facts.administered import read_administered
from hooks.facts.conditions import read_allergy, read_conditions
from hooks.facts.dental_work import read_dental_work
from hooks.facts.medications import read_doses, read_medication
from hooks.facts.model import PatientFacts
from hooks.facts.observations import read_observations
from hooks.facts.procedures import read_dental_exams, read_dialysis_procedures, read_oophorectomies
from hooks.fhir_read import as_list, id_of, parse_date
from hooks.knowledge import Knowledge
from hooks.orders import BoneAgentOrder, read_bone_agent_order

BIRTH_SEX_URL = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-birthsex"


def build_facts(
    patient: dict | None,
    resources: Iterable[dict],
    unavailable_groups: dict[str, str],
    knowledge: Knowledge,
    now: datetime,
    draft_ids: frozenset[str] = frozenset(),
    companion_drafts: Iterable[dict] = (),
) -> PatientFacts:
    """Sort the record's resources into typed facts; the draft orders themselves are not history,
    but drafts of other drugs signed in the same request (companion_drafts) count as current
    medications."""
    patient = patient or {}
    sex, sex_basis = patient_sex(patient)
    facts = PatientFacts(
        patient_id=patient.get("id") if isinstance(patient.get("id"), str) else None,
        birth_date=parse_date(patient.get("birthDate")),
        sex=sex,
        now=now,
        unavailable=dict(unavailable_groups),
        sex_basis=sex_basis,
    )
    by_type: dict[str | None, dict[str, dict]] = {}
    for resource in resources:
        key = id_of(resource) or str(id(resource))
        by_type.setdefault(resource.get("resourceType"), {})[key] = (
            resource  # the same resource can come from two prefetch keys
        )
    read_observations(facts, by_type.get("Observation", {}).values(), knowledge)
    read_conditions(facts, by_type.get("Condition", {}).values(), knowledge)
    medications = by_type.get("Medication", {})
    bone_agent_orders: dict[int, BoneAgentOrder | None] = {}

    def read_order(request: dict) -> BoneAgentOrder | None:
        """Each MedicationRequest read once this call (by identity: the record's dicts live as long
        as the call)."""
        key = id(request)
        if key not in bone_agent_orders:
            bone_agent_orders[key] = read_bone_agent_order(request, medications, knowledge)
        return bone_agent_orders[key]

    requests = [
        r for r in by_type.get("MedicationRequest", {}).values() if id_of(r) not in draft_ids
    ]
    read_doses(
        facts,
        requests,
        by_type.get("MedicationAdministration", {}).values(),
        medications,
        knowledge,
        read_order,
    )
    companions = [r for r in companion_drafts if r.get("resourceType") == "MedicationRequest"]
    companion_ids = {id_of(r) for r in companions if id_of(r)}
    facts.medications = [
        read_medication(r, medications, knowledge, read_order)
        for r in requests
        if id_of(r) not in companion_ids
    ]
    drafted = [read_medication(r, medications, knowledge, read_order) for r in companions]
    # bone agents are orders
    facts.medications += [replace(m, in_request=True) for m in drafted if m.bone_agent is None]
    facts.allergies = [
        a
        for a in (
            read_allergy(r, knowledge) for r in by_type.get("AllergyIntolerance", {}).values()
        )
        if a
    ]
    facts.dental_exams = read_dental_exams(
        facts,
        by_type.get("Procedure", {}).values(),
        by_type.get("Encounter", {}).values(),
        knowledge,
    )
    facts.oophorectomies = read_oophorectomies(by_type.get("Procedure", {}).values(), knowledge)
    facts.dialysis_procedures = read_dialysis_procedures(
        facts, by_type.get("Procedure", {}).values(), knowledge
    )
    # Draft ServiceRequests signed with the bone agent are planned work too.
    drafted_requests = [r for r in companion_drafts if r.get("resourceType") == "ServiceRequest"]
    facts.dental_work = read_dental_work(
        facts,
        by_type.get("Procedure", {}).values(),
        [*by_type.get("ServiceRequest", {}).values(), *drafted_requests],
        knowledge,
    )
    facts.administered = read_administered(
        by_type.get("MedicationAdministration", {}).values(), medications, knowledge
    )
    facts.setting = derive_setting(facts, knowledge)
    return facts


def patient_sex(patient: dict) -> tuple[str | None, str]:
    """Female or male from Patient.gender; when gender is other, unknown or absent, the US Core
    birth-sex extension (F or M) if present; else None (no recorded sex: no clearance, no menopausal
    status from age)."""
    gender = patient.get("gender")
    if gender in ("female", "male"):
        return gender, "Patient.gender"
    for extension in as_list(patient.get("extension")):
        if isinstance(extension, dict) and extension.get("url") == BIRTH_SEX_URL:
            code = extension.get("valueCode")
            if code in ("F", "M"):
                return (
                    "female" if code == "F" else "male"
                ), f"birth sex {code} (US Core birth-sex extension)"
    return None, ""
