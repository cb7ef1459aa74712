"""Turns the gathered patient record (plain FHIR JSON) into typed, unit-normalised facts for the rules."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Iterable

from hooks.fhir_read import (
    codings, concept_label, days_between, effective_datetime, parse_date, parse_datetime, quantity,
)
from hooks.knowledge import Knowledge
from hooks.orders import identify_ingredient, medication_concepts

READABLE_OBSERVATION_STATUS = frozenset({"final", "amended", "corrected", "preliminary", None})
GIVEN_REQUEST_STATUS = frozenset({"active", "completed", "stopped", "on-hold"})
GIVEN_ADMINISTRATION_STATUS = frozenset({"completed", "in-progress"})
INACTIVE_CLINICAL_STATUS = frozenset({"inactive", "remission", "resolved"})
EXCLUDED_VERIFICATION = frozenset({"refuted", "entered-in-error"})


@dataclass(frozen=True)
class LabResult:
    """One numeric result, converted to the unit the rules use, with what was recorded."""
    kind: str
    value: float
    unit: str
    recorded_value: float
    recorded_unit: str | None
    when: datetime
    observation_id: str | None

    def shown(self, digits: int = 2) -> str:
        """'1.9 mg/dL on 2026-10-02', or '168 umol/L (1.9 mg/dL) on 2026-10-02' when it was converted."""
        converted = f"{_trim(self.value, digits)} {self.unit}"
        if self.recorded_unit and self.recorded_unit != self.unit:
            return f"{_trim(self.recorded_value, digits)} {self.recorded_unit} ({converted}) on {self.when.date().isoformat()}"
        return f"{converted} on {self.when.date().isoformat()}"


def _trim(value: float, digits: int) -> str:
    text = f"{value:.{digits}f}".rstrip("0").rstrip(".")
    return text or "0"


@dataclass(frozen=True)
class UnreadableResult:
    """A result that exists but cannot be used (unknown unit, no value); the rules say so instead of ignoring it."""
    kind: str
    when: datetime | None
    recorded_unit: str | None
    reason: str


@dataclass(frozen=True)
class ConditionFact:
    value_sets: frozenset[str]
    active: bool
    label: str
    onset: datetime | None


@dataclass(frozen=True)
class DoseEvent:
    """A dose of a bone-modifying agent that was given (or ordered and not cancelled) before this order."""
    ingredient: str
    when: datetime
    evidence: str


@dataclass(frozen=True)
class Setting:
    name: str
    evidence: str


@dataclass
class PatientFacts:
    patient_id: str | None
    birth_date: date | None
    sex: str | None
    now: datetime
    labs: dict[str, list[LabResult]] = field(default_factory=dict)
    unreadable: dict[str, list[UnreadableResult]] = field(default_factory=dict)
    conditions: list[ConditionFact] = field(default_factory=list)
    bone_agent_doses: list[DoseEvent] = field(default_factory=list)
    unavailable: dict[str, str] = field(default_factory=dict)
    setting: Setting = field(default_factory=lambda: Setting("no-breast-cancer", "no breast cancer diagnosis on record"))

    def results(self, kind: str) -> list[LabResult]:
        """Results of one kind, newest first."""
        return self.labs.get(kind, [])

    def latest(self, kind: str, max_age_days: int | None = None) -> LabResult | None:
        for result in self.results(kind):
            if max_age_days is None or days_between(result.when, self.now) <= max_age_days:
                return result
            return None
        return None

    def age_on(self, when: date) -> int | None:
        """Completed years of age on a date."""
        if self.birth_date is None:
            return None
        years = when.year - self.birth_date.year
        if (when.month, when.day) < (self.birth_date.month, self.birth_date.day):
            years -= 1
        return years if years >= 0 else None

    def has_condition(self, value_set: str) -> bool:
        return any(c.active and value_set in c.value_sets for c in self.conditions)

    def doses_of(self, ingredient: str) -> list[DoseEvent]:
        return [d for d in self.bone_agent_doses if d.ingredient == ingredient]

    def is_unavailable(self, group: str) -> str | None:
        """Why a group of facts could not be retrieved (None when it was retrieved, even if empty)."""
        return self.unavailable.get(group)


def build_facts(
    patient: dict | None,
    resources: Iterable[dict],
    unavailable_groups: dict[str, str],
    knowledge: Knowledge,
    now: datetime,
    draft_ids: frozenset[str] = frozenset(),
) -> PatientFacts:
    """Sort the record's resources into typed facts; the draft orders themselves are not history."""
    patient = patient or {}
    gender = patient.get("gender")
    facts = PatientFacts(
        patient_id=patient.get("id") if isinstance(patient.get("id"), str) else None,
        birth_date=parse_date(patient.get("birthDate")),
        sex=gender if gender in ("female", "male") else None,
        now=now,
        unavailable=dict(unavailable_groups),
    )
    by_type: dict[str, dict[str, dict]] = {}
    for resource in resources:
        kind = resource.get("resourceType")
        key = resource.get("id") if isinstance(resource.get("id"), str) else str(id(resource))
        by_type.setdefault(kind, {})[key] = resource  # the same resource can come from two prefetch keys
    _read_observations(facts, by_type.get("Observation", {}).values(), knowledge)
    _read_conditions(facts, by_type.get("Condition", {}).values(), knowledge)
    medications = by_type.get("Medication", {})
    _read_doses(facts, by_type.get("MedicationRequest", {}).values(), by_type.get("MedicationAdministration", {}).values(),
                medications, knowledge, draft_ids)
    facts.setting = derive_setting(facts, knowledge)
    return facts


UNIT_TABLES = {
    "creatinine": ("creatinine_to_mg_dl", "mg/dL"),
    "body_weight": ("weight_to_kg", "kg"),
    "calcium_total": ("calcium_to_mg_dl", "mg/dL"),
    "calcium_corrected": ("calcium_to_mg_dl", "mg/dL"),
    "albumin": ("albumin_to_g_dl", "g/dL"),
}


def _read_observations(facts: PatientFacts, observations: Iterable[dict], knowledge: Knowledge) -> None:
    loinc = knowledge.systems["loinc"]
    egfr_units = set(knowledge.raw["units"]["egfr_units"])
    for observation in observations:
        if observation.get("status") not in READABLE_OBSERVATION_STATUS:
            continue
        kind = next((knowledge.observation_kind_by_loinc[code] for system, code, _ in codings(observation.get("code"))
                     if system == loinc and code in knowledge.observation_kind_by_loinc), None)
        if kind is None:
            continue
        when = effective_datetime(observation)
        measured = quantity(observation.get("valueQuantity"))
        if measured is None or when is None:
            reason = "no date" if when is None else "no numeric value"
            facts.unreadable.setdefault(kind, []).append(UnreadableResult(kind, when, None, reason))
            continue
        if kind == "egfr" or kind == "calcium_ionized":
            unit = "mL/min/1.73 m2" if kind == "egfr" else "mmol/L"
            accepted = egfr_units if kind == "egfr" else {"mmol/L", "mmol/l"}
            if measured.unit not in accepted:
                facts.unreadable.setdefault(kind, []).append(UnreadableResult(kind, when, measured.unit, "unknown unit"))
                continue
            value = measured.value
        else:
            table, unit = UNIT_TABLES[kind]
            factor = knowledge.unit_factor(table, measured.unit)
            if factor is None:
                facts.unreadable.setdefault(kind, []).append(UnreadableResult(kind, when, measured.unit, "unknown unit"))
                continue
            value = measured.value * factor
        facts.labs.setdefault(kind, []).append(
            LabResult(kind, value, unit, measured.value, measured.unit, when, observation.get("id")))
    for results in facts.labs.values():
        results.sort(key=lambda r: r.when, reverse=True)
    for unreadable in facts.unreadable.values():
        unreadable.sort(key=lambda r: r.when or datetime.min.replace(tzinfo=facts.now.tzinfo), reverse=True)


def _condition_status(concept: Any) -> str | None:
    return next((code for _system, code, _ in codings(concept) if code), None)


def _read_conditions(facts: PatientFacts, conditions: Iterable[dict], knowledge: Knowledge) -> None:
    systems = knowledge.systems
    for condition in conditions:
        if _condition_status(condition.get("verificationStatus")) in EXCLUDED_VERIFICATION:
            continue
        coded = list(codings(condition.get("code")))
        matched = frozenset(name for name, value_set in knowledge.condition_sets.items()
                            if any(value_set.matches(system, code, systems) for system, code, _ in coded))
        if not matched:
            continue
        clinical = _condition_status(condition.get("clinicalStatus"))
        active = clinical not in INACTIVE_CLINICAL_STATUS and condition.get("abatementDateTime") is None
        onset = parse_datetime(condition.get("onsetDateTime")) or parse_datetime(condition.get("recordedDate"))
        facts.conditions.append(ConditionFact(matched, active, concept_label(condition.get("code"), "condition"), onset))


def _read_doses(facts: PatientFacts, requests: Iterable[dict], administrations: Iterable[dict],
                medications: dict[str, dict], knowledge: Knowledge, draft_ids: frozenset[str]) -> None:
    from_administrations: list[DoseEvent] = []
    for administration in administrations:
        if administration.get("status") not in GIVEN_ADMINISTRATION_STATUS:
            continue
        identified = identify_ingredient(medication_concepts(administration, medications), knowledge)
        when = effective_datetime(administration)
        if identified and when:
            from_administrations.append(DoseEvent(identified[0], when, "administration recorded"))
    administered = {d.ingredient for d in from_administrations}
    from_requests: list[DoseEvent] = []
    for request in requests:
        if request.get("id") in draft_ids or request.get("status") not in GIVEN_REQUEST_STATUS:
            continue
        identified = identify_ingredient(medication_concepts(request, medications), knowledge)
        when = parse_datetime(request.get("authoredOn"))
        if identified and when and identified[0] not in administered and when <= facts.now:
            from_requests.append(DoseEvent(identified[0], when, f"order {request.get('status')}"))
    facts.bone_agent_doses = sorted(from_administrations + from_requests, key=lambda d: d.when, reverse=True)


def corrected_calcium(facts: PatientFacts, knowledge: Knowledge, max_age_days: int) -> tuple[float, str] | None:
    """Latest albumin-corrected calcium in mg/dL with how it was derived, or None when no calcium is recent enough."""
    direct = facts.latest("calcium_corrected", max_age_days)
    total = facts.latest("calcium_total", max_age_days)
    if direct and (total is None or direct.when >= total.when):
        return direct.value, f"albumin-corrected calcium {direct.shown()}"
    if total is None:
        return None
    pairing_days = knowledge.threshold("albumin_pairing_days")
    albumin = next((a for a in facts.results("albumin") if abs(days_between(a.when, total.when)) <= pairing_days), None)
    if albumin is None:
        return total.value, f"total calcium {total.shown()}, not corrected (no albumin from the same day)"
    reference = knowledge.threshold("albumin_correction_reference_g_dl")
    factor = knowledge.threshold("albumin_correction_factor")
    value = total.value + factor * (reference - albumin.value)
    return value, (f"calcium {total.shown()} with albumin {albumin.shown()} gives albumin-corrected calcium "
                   f"{_trim(value, 2)} mg/dL")


def derive_setting(facts: PatientFacts, knowledge: Knowledge) -> Setting:
    """Clinical setting by the catalog's precedence: hypercalcemia of malignancy, bone metastases, early, other."""
    cancer = facts.has_condition("malignancy")
    if cancer:
        if facts.has_condition("hypercalcemia"):
            return Setting("hypercalcemia-of-malignancy", "active hypercalcemia diagnosis with an active cancer")
        calcium = corrected_calcium(facts, knowledge, knowledge.threshold("calcium_max_age_days"))
        if calcium and calcium[0] >= knowledge.threshold("hypercalcemia_corrected_calcium_mg_dl"):
            return Setting("hypercalcemia-of-malignancy", f"{calcium[1]} with an active cancer")
    if facts.has_condition("bone-metastasis"):
        return Setting("bone-metastatic", "active bone metastasis on the problem list")
    if facts.has_condition("breast-cancer"):
        if facts.has_condition("distant-metastasis"):
            return Setting("metastatic-other", "breast cancer with distant metastasis outside bone")
        return Setting("early", "breast cancer without distant metastasis on record")
    return Setting("no-breast-cancer", "no active breast cancer diagnosis on record")
