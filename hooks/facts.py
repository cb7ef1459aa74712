"""Turns the gathered patient record (plain FHIR JSON) into typed, unit-normalised facts for the rules."""
from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import Any, Iterable

from hooks.fhir_read import (
    as_list, codings, concept_label, concept_texts, days_between, effective_datetime, parse_date, parse_datetime, quantity,
)
from hooks.knowledge import Knowledge
from hooks.orders import identify_ingredient, medication_concepts

# Catalog "Reading the record": final, amended, corrected and preliminary results count; these are never read; any
# other status counts when the Observation has a value.
IGNORED_OBSERVATION_STATUS = frozenset({"entered-in-error", "cancelled", "registered"})
COMPARATORS = frozenset({"<", "<=", ">", ">="})
# A string value such as ">60", "<0.5", "<= 0.3 mg/dL" or "22": comparator, number, unit text.
STRING_VALUE = re.compile(r"^\s*(<=|>=|<|>|≤|≥)?\s*([0-9]+(?:\.[0-9]+)?)\s*(\S.*)?$")
UNICODE_COMPARATORS = {"≤": "<=", "≥": ">="}
# Results whose bound (a censored value) the rules can reason about; a censored value of any other kind is not used.
CENSORABLE_KINDS = frozenset({"creatinine", "egfr", "calcium_total", "calcium_corrected", "calcium_ionized", "vitamin_d"})
STAGE_KINDS = ("distant_metastasis_stage", "stage_group")
BIRTH_SEX_URL = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-birthsex"
GIVEN_REQUEST_STATUS = frozenset({"active", "completed", "stopped", "on-hold"})
GIVEN_ADMINISTRATION_STATUS = frozenset({"completed", "in-progress"})
INACTIVE_CLINICAL_STATUS = frozenset({"inactive", "remission", "resolved"})
EXCLUDED_VERIFICATION = frozenset({"refuted", "entered-in-error"})
NOT_PERFORMED_STATUS = frozenset({"not-done", "entered-in-error", "preparation", "planned", "cancelled", "stopped"})


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
    # A censored value: the true value relates to `value` by this comparator ('<', '<=', '>', '>='); None when exact.
    comparator: str | None = None
    loinc: str | None = None
    note: str = ""  # how the value was read, when that is not obvious (an eGFR reported in mL/min)

    @property
    def bound(self) -> str:
        """The comparator as shown before the value ('>' for '>60'), '' for an exact value."""
        return self.comparator or ""

    def shown(self, digits: int = 2) -> str:
        """'1.9 mg/dL on 2026-10-02', or '168 umol/L (1.9 mg/dL) on 2026-10-02' when it was converted; a censored value
        keeps its bound ('>60 mL/min/1.73 m2')."""
        converted = f"{self.bound}{_trim(self.value, digits)} {self.unit}"
        note = f" ({self.note})" if self.note else ""
        if self.recorded_unit and self.recorded_unit != self.unit and self.recorded_value != self.value:
            return (f"{self.bound}{_trim(self.recorded_value, digits)} {self.recorded_unit} ({converted}){note} on "
                    f"{self.when.date().isoformat()}")
        return f"{converted}{note} on {self.when.date().isoformat()}"

    def decide_below(self, limit: float) -> bool | None:
        """Whether the result is below `limit`: True or False when every value it allows lies on one side, else None."""
        return censored_below(self.value, self.comparator, limit)


def censored_below(value: float, comparator: str | None, limit: float) -> bool | None:
    """value < limit for an exact value; for a bound ('>60', '<0.5') True or False only when every value the bound allows
    lies on one side of the limit, else None (the bound cannot decide that threshold). Float noise is ignored."""
    if comparator is None:
        return value < limit - 1e-9
    if comparator in (">", ">="):
        return False if value >= limit - 1e-9 else None
    if comparator == "<":
        return True if value <= limit + 1e-9 else None
    return True if value < limit - 1e-9 else None  # '<='


def flipped(comparator: str | None) -> str | None:
    """The comparator of a quantity that falls as the measured one rises (creatinine '<0.5' gives clearance '>')."""
    return {"<": ">", "<=": ">=", ">": "<", ">=": "<="}.get(comparator or "", None)


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
    status: str | None = None


@dataclass(frozen=True)
class MedicationFact:
    """A MedicationRequest on record (not one of this request's drafts), classified by what the rules ask about."""
    resource_id: str | None
    label: str
    status: str | None
    authored: datetime | None
    classes: frozenset[str]
    bone_agent: str | None
    in_request: bool = False  # drafted in this same request (e.g. calcium signed together with the bone agent)
    route_text: str = ""

    @property
    def reference(self) -> str | None:
        return f"MedicationRequest/{self.resource_id}" if self.resource_id else None

    @property
    def current(self) -> bool:
        return self.status == "active" or self.in_request

    def dated(self) -> str:
        if self.in_request:
            return f"{self.label} (being ordered now)"
        return f"{self.label} ({self.status or 'no status'}" + (f", ordered {self.authored.date().isoformat()})" if self.authored else ")")


@dataclass(frozen=True)
class AllergyFact:
    label: str
    ingredients: frozenset[str]
    bisphosphonate_class: bool
    criticality: str | None
    verification: str | None


@dataclass(frozen=True)
class DentalExam:
    when: datetime
    evidence: str


@dataclass(frozen=True)
class PregnancyStatus:
    answer: str
    when: datetime
    label: str


@dataclass(frozen=True)
class CalciumReading:
    """The latest calcium for the calcium rules, in the unit family it was reported in (mg/dL or mmol/L)."""
    value: float
    unit: str
    mg_dl: float
    corrected: bool
    when: datetime
    explanation: str
    comparator: str | None = None  # a censored calcium: the true value relates to `value` by this comparator

    def decide_below(self, limits: dict[str, float]) -> bool | None:
        """Below the limit (True), at or above it (False), or None when a censored value allows both."""
        return censored_below(self.value, self.comparator, self.limit(limits))

    def below(self, limits: dict[str, float]) -> bool:
        """Certainly below the limit (a censored value that could lie on either side is not)."""
        return self.decide_below(limits) is True

    def at_least(self, limits: dict[str, float]) -> bool:
        """Certainly at or above the limit."""
        return self.decide_below(limits) is False

    def limit(self, limits: dict[str, float]) -> float:
        return limits["corrected_mmol_l"] if self.unit == "mmol/L" else limits["corrected_mg_dl"]


@dataclass(frozen=True)
class TScore:
    """A DXA T-score at one site (lumbar spine, hip, femur)."""
    value: float
    site: str
    when: datetime

    def shown(self) -> str:
        return f"T-score {self.value:g} ({self.site}) on {self.when.date().isoformat()}"


@dataclass(frozen=True)
class CodedFinding:
    """A dated coded answer or procedure the eligibility logic reads: menopausal status, smoking, oophorectomy."""
    value: str
    when: datetime | None
    label: str

    def dated(self) -> str:
        return f"{self.label}" + (f" ({self.when.date().isoformat()})" if self.when else "")


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
    medications: list[MedicationFact] = field(default_factory=list)
    allergies: list[AllergyFact] = field(default_factory=list)
    dental_exams: list[DentalExam] = field(default_factory=list)
    pregnancy_statuses: list[PregnancyStatus] = field(default_factory=list)
    t_scores: list[TScore] = field(default_factory=list)
    menopause_observations: list[CodedFinding] = field(default_factory=list)
    smoking_statuses: list[CodedFinding] = field(default_factory=list)
    oophorectomies: list[CodedFinding] = field(default_factory=list)
    unavailable: dict[str, str] = field(default_factory=dict)
    setting: Setting = field(default_factory=lambda: Setting("no-breast-cancer", "no breast cancer diagnosis on record"))
    sex_basis: str = ""  # where the sex was read: Patient.gender, or the US Core birth-sex extension
    forearm_t_scores: list[TScore] = field(default_factory=list)  # seen, never used for the bone-loss indication
    stage_findings: list[CodedFinding] = field(default_factory=list)  # stage Observations showing distant metastasis
    dialysis_procedures: list[CodedFinding] = field(default_factory=list)  # within the knowledge's window

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

    def conditions_in(self, value_set: str, *, active_only: bool) -> list[ConditionFact]:
        """Conditions of a value set; refuted and entered-in-error ones were never read."""
        return [c for c in self.conditions if value_set in c.value_sets and (c.active or not active_only)]

    def active_medications(self, medication_class: str) -> list[MedicationFact]:
        """Active orders of a class, and orders of it drafted in this request."""
        return [m for m in self.medications if m.current and medication_class in m.classes]

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
    companion_drafts: Iterable[dict] = (),
) -> PatientFacts:
    """Sort the record's resources into typed facts; the draft orders themselves are not history, but drafts of other
    drugs signed in the same request (companion_drafts) count as current medications."""
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
    by_type: dict[str, dict[str, dict]] = {}
    for resource in resources:
        kind = resource.get("resourceType")
        key = _resource_id(resource) or str(id(resource))
        by_type.setdefault(kind, {})[key] = resource  # the same resource can come from two prefetch keys
    _read_observations(facts, by_type.get("Observation", {}).values(), knowledge)
    _read_conditions(facts, by_type.get("Condition", {}).values(), knowledge)
    medications = by_type.get("Medication", {})
    requests = [r for r in by_type.get("MedicationRequest", {}).values() if _resource_id(r) not in draft_ids]
    _read_doses(facts, requests, by_type.get("MedicationAdministration", {}).values(), medications, knowledge)
    companions = [r for r in companion_drafts if r.get("resourceType") == "MedicationRequest"]
    companion_ids = {_resource_id(r) for r in companions if _resource_id(r)}
    facts.medications = [read_medication(r, medications, knowledge) for r in requests if _resource_id(r) not in companion_ids]
    drafted = [read_medication(r, medications, knowledge) for r in companions]
    facts.medications += [replace(m, in_request=True) for m in drafted if m.bone_agent is None]  # bone agents are orders
    facts.allergies = [a for a in (_read_allergy(r, knowledge) for r in by_type.get("AllergyIntolerance", {}).values()) if a]
    facts.dental_exams = _read_dental_exams(facts, by_type.get("Procedure", {}).values(),
                                            by_type.get("Encounter", {}).values(), knowledge)
    facts.oophorectomies = _read_oophorectomies(by_type.get("Procedure", {}).values(), knowledge)
    facts.dialysis_procedures = _read_dialysis_procedures(facts, by_type.get("Procedure", {}).values(), knowledge)
    facts.setting = derive_setting(facts, knowledge)
    return facts


def patient_sex(patient: dict) -> tuple[str | None, str]:
    """female or male from Patient.gender; when gender is other, unknown or absent, the US Core birth-sex extension (F
    or M) if present; else None (no recorded sex: no clearance, no menopausal status from age)."""
    gender = patient.get("gender")
    if gender in ("female", "male"):
        return gender, "Patient.gender"
    for extension in as_list(patient.get("extension")):
        if isinstance(extension, dict) and extension.get("url") == BIRTH_SEX_URL:
            code = extension.get("valueCode")
            if code in ("F", "M"):
                return ("female" if code == "F" else "male"), f"birth sex {code} (US Core birth-sex extension)"
    return None, ""


def on_dialysis(facts: PatientFacts) -> list[str]:
    """Evidence that the patient is on dialysis, one line each: an active dialysis or end-stage renal disease Condition
    (ICD-10-CM N18.6, Z99.2; SNOMED 46177005, 236435004), or a dialysis Procedure within the knowledge's window."""
    lines = [c.label for c in facts.conditions_in("dialysis", active_only=True)]
    lines += [f"{p.label} performed {p.when.date().isoformat()}" for p in facts.dialysis_procedures if p.when]
    return lines


def _read_dialysis_procedures(facts: PatientFacts, procedures: Iterable[dict], knowledge: Knowledge) -> list[CodedFinding]:
    spec = knowledge.threshold("dialysis_procedures")
    found = []
    for procedure in procedures:
        if _status(procedure) in NOT_PERFORMED_STATUS:
            continue
        if not any(knowledge.coding_in(spec["procedure_codes"], system, code)
                   for system, code, _ in codings(procedure.get("code"))):
            continue
        when = effective_datetime(procedure)
        if when is not None and 0 <= days_between(when, facts.now) <= spec["max_age_days"]:
            found.append(CodedFinding("dialysis", when, concept_label(procedure.get("code"), "dialysis")))
    return sorted(found, key=lambda f: f.when or facts.now, reverse=True)


def _status(resource: dict) -> str | None:
    """A resource's status code, None when absent or not a string (a list or object there must not break a lookup)."""
    value = resource.get("status")
    return value if isinstance(value, str) else None


def _resource_id(resource: dict) -> str | None:
    """The resource's id when it is a string (a hostile record may carry an object or a number there)."""
    value = resource.get("id")
    return value if isinstance(value, str) else None


UNIT_TABLES = {
    "creatinine": ("creatinine_to_mg_dl", "mg/dL"),
    "body_weight": ("weight_to_kg", "kg"),
    "calcium_total": ("calcium_to_mg_dl", "mg/dL"),
    "calcium_corrected": ("calcium_to_mg_dl", "mg/dL"),
    "calcium_ionized": ("ionized_calcium_to_mmol_l", "mmol/L"),
    "albumin": ("albumin_to_g_dl", "g/dL"),
    "vitamin_d": ("vitamin_d_to_ng_ml", "ng/mL"),
    "body_height": ("height_to_cm", "cm"),
}
# Results whose unit is checked against a list (no conversion): kind -> (knowledge units list, unit the rules use).
UNIT_LISTS = {"egfr": ("egfr_units", "mL/min/1.73 m²"), "bmi": ("bmi_units", "kg/m2"), "dxa_t_score": ("t_score_units", "T-score")}
MOLAR_UNITS = frozenset({"mmol/L", "mmol/l"})


def observation_datetime(observation: dict) -> datetime | None:
    """When a result was taken (catalog "Reading the record"): effectiveDateTime, else effectivePeriod.start, else
    effectiveInstant, else issued."""
    period = observation.get("effectivePeriod") if isinstance(observation.get("effectivePeriod"), dict) else {}
    return (parse_datetime(observation.get("effectiveDateTime")) or parse_datetime(period.get("start"))
            or parse_datetime(observation.get("effectiveInstant")) or parse_datetime(observation.get("issued")))


@dataclass(frozen=True)
class _Value:
    value: float
    unit: str | None
    comparator: str | None


def _observation_value(observation: dict, kind: str, knowledge: Knowledge) -> _Value | None:
    """The numeric value of a result: valueQuantity (with its comparator), or a string value such as '>60', '<0.5 mg/dL'
    or '22' (an eGFR string carries no unit: the eGFR codes fix it)."""
    measured = quantity(observation.get("valueQuantity"))
    if measured is not None:
        raw = observation["valueQuantity"].get("comparator")
        return _Value(measured.value, measured.unit, raw if raw in COMPARATORS else None)
    text = observation.get("valueString")
    if not isinstance(text, str):
        return None
    match = STRING_VALUE.match(text)
    if not match:
        return None
    comparator = UNICODE_COMPARATORS.get(match.group(1) or "", match.group(1))
    unit = (match.group(3) or "").strip() or knowledge.raw["observations"][kind].get("string_value_unit")
    return _Value(float(match.group(2)), unit, comparator)


def _observation_kind(observation: dict, knowledge: Knowledge) -> tuple[str | None, str | None]:
    """The knowledge's kind of result by LOINC code (stage Observations also by their SNOMED observable), and the code."""
    loinc, snomed = knowledge.systems["loinc"], knowledge.systems["snomed"]
    coded = list(codings(observation.get("code")))
    for system, code, _ in coded:
        if system == loinc and code in knowledge.observation_kind_by_loinc:
            return knowledge.observation_kind_by_loinc[code], code
    for system, code, _ in coded:
        if system == snomed and code:
            kind = next((k for k in STAGE_KINDS if code in knowledge.raw["observations"].get(k, {}).get("snomed", [])), None)
            if kind:
                return kind, None
    return None, None


def _read_observations(facts: PatientFacts, observations: Iterable[dict], knowledge: Knowledge) -> None:
    for observation in observations:
        if _status(observation) in IGNORED_OBSERVATION_STATUS:
            continue
        kind, code = _observation_kind(observation, knowledge)
        if kind is None:
            _read_pregnancy_status(facts, observation, knowledge)
            _read_menopause_observation(facts, observation, knowledge)
            continue
        when = observation_datetime(observation)
        if kind in STAGE_KINDS:
            _read_stage(facts, observation, kind, when, knowledge)
            continue
        if kind == "smoking_status":
            _read_smoking_status(facts, observation, when, knowledge)
            continue
        measured = _observation_value(observation, kind, knowledge)
        if kind == "dxa_t_score" and measured is not None and measured.unit is None:
            measured = replace(measured, unit="")  # T-scores are often sent without a unit
        if measured is None or when is None:
            reason = "no date" if when is None else "no numeric value"
            facts.unreadable.setdefault(kind, []).append(UnreadableResult(kind, when, None, reason))
            continue
        if measured.comparator and kind not in CENSORABLE_KINDS:
            facts.unreadable.setdefault(kind, []).append(UnreadableResult(
                kind, when, measured.unit, f"censored value ({measured.comparator}{measured.value:g})"))
            continue
        note = ""
        if kind in UNIT_LISTS:
            units_key, unit = UNIT_LISTS[kind]
            accepted = set(knowledge.raw["units"][units_key])
            without_surface = set(knowledge.raw["units"].get("egfr_units_without_body_surface", [])) if kind == "egfr" else set()
            if measured.unit in without_surface:
                note = f"reported in {measured.unit}, read as mL/min/1.73 m²"
            elif measured.unit not in accepted:
                facts.unreadable.setdefault(kind, []).append(UnreadableResult(kind, when, measured.unit, "unknown unit"))
                continue
            value = measured.value
            if kind == "dxa_t_score":
                spec = knowledge.raw["observations"]["dxa_t_score"]
                site = spec["sites"].get(code or "", "DXA")
                if code in spec.get("not_used", []):
                    facts.forearm_t_scores.append(TScore(value, site, when))
                    continue
                facts.t_scores.append(TScore(value, site, when))
        else:
            table, unit = UNIT_TABLES[kind]
            factor = knowledge.unit_factor(table, measured.unit)
            if factor is None:
                facts.unreadable.setdefault(kind, []).append(UnreadableResult(kind, when, measured.unit, "unknown unit"))
                continue
            value = measured.value * factor
        facts.labs.setdefault(kind, []).append(
            LabResult(kind, value, unit, measured.value, measured.unit, when, _resource_id(observation),
                      measured.comparator, code, note))
    for results in facts.labs.values():
        results.sort(key=lambda r: r.when, reverse=True)
    if "vitamin_d" in facts.labs:
        facts.labs["vitamin_d"] = _total_vitamin_d_first(facts.labs["vitamin_d"], knowledge)
    for unreadable in facts.unreadable.values():
        unreadable.sort(key=lambda r: r.when or datetime.min.replace(tzinfo=facts.now.tzinfo), reverse=True)
    facts.pregnancy_statuses.sort(key=lambda p: p.when, reverse=True)
    facts.t_scores.sort(key=lambda t: t.when, reverse=True)
    facts.forearm_t_scores.sort(key=lambda t: t.when, reverse=True)
    for findings in (facts.menopause_observations, facts.smoking_statuses, facts.stage_findings):
        findings.sort(key=lambda f: f.when.timestamp() if f.when else 0, reverse=True)


def _total_vitamin_d_first(results: list[LabResult], knowledge: Knowledge) -> list[LabResult]:
    """25-OH vitamin D total (D2+D3); a D3-only result counts only on a day without a total (catalog: D3 where only D3
    is reported)."""
    total = set(knowledge.raw["observations"]["vitamin_d"].get("total", []))
    days_with_total = {r.when.date() for r in results if r.loinc in total}
    return [r for r in results if r.loinc in total or r.when.date() not in days_with_total]


def _read_stage(facts: PatientFacts, observation: dict, kind: str, when: datetime | None, knowledge: Knowledge) -> None:
    """A TNM distant-metastasis (M) or stage-group Observation whose value shows distant metastasis (M1, cM1, pM1,
    M1a-M1c; stage IV, IVA, IVB, 4), by SNOMED code or by text. Any other value (M0, stage III...) is not metastasis."""
    spec = knowledge.raw["observations"][kind]
    snomed, loinc = knowledge.systems["snomed"], knowledge.systems["loinc"]
    value = observation.get("valueCodeableConcept")
    texts = list(concept_texts(value))
    if isinstance(observation.get("valueString"), str):
        texts.append(observation["valueString"])
    coded = [(system, code) for system, code, _ in codings(value) if code]
    texts += [code for system, code in coded if system not in (snomed, loinc)]  # AJCC-style codes: 'cM1', 'IV'
    pattern = re.compile(spec["value_text_pattern"])
    if any(system == snomed and code in spec.get("value_snomed", []) for system, code in coded) or \
            any(pattern.search(text) for text in texts):
        shown = next(iter(texts), "distant metastasis")
        what = "distant metastases (M)" if kind == "distant_metastasis_stage" else "stage group"
        facts.stage_findings.append(CodedFinding(kind, when, f"{what} {shown}"))


def _read_menopause_observation(facts: PatientFacts, observation: dict, knowledge: Knowledge) -> None:
    """A menopausal-status observation (SNOMED observable 161712005) answered before/after menopause."""
    spec = knowledge.raw["menopause"]
    if not any(knowledge.coding_in(spec["status_observation"], system, code) for system, code, _ in codings(observation.get("code"))):
        return
    answer = observation.get("valueCodeableConcept")
    for system, code, _ in codings(answer):
        for value_set, status in spec["status_answers"].items():
            if knowledge.condition_sets[value_set].matches(system, code, knowledge.systems):
                facts.menopause_observations.append(CodedFinding(status, effective_datetime(observation),
                                                                 f"menopausal status observation: {concept_label(answer)}"))
                return


def _read_smoking_status(facts: PatientFacts, observation: dict, when: datetime | None, knowledge: Knowledge) -> None:
    answer = observation.get("valueCodeableConcept")
    current = any(knowledge.coding_in(knowledge.raw["smoking"]["current_smoker_answers"], system, code)
                  for system, code, _ in codings(answer))
    facts.smoking_statuses.append(CodedFinding("current" if current else "not-current", when,
                                               f"smoking status: {concept_label(answer, 'coded answer')}"))


def _read_oophorectomies(procedures: Iterable[dict], knowledge: Knowledge) -> list[CodedFinding]:
    codes = knowledge.raw["menopause"]["bilateral_oophorectomy"]
    found = []
    for procedure in procedures:
        if _status(procedure) in NOT_PERFORMED_STATUS:
            continue
        if any(knowledge.coding_in(codes, system, code) for system, code, _ in codings(procedure.get("code"))):
            found.append(CodedFinding("bilateral-oophorectomy", effective_datetime(procedure),
                                      concept_label(procedure.get("code"), "bilateral oophorectomy")))
    return found


def _read_pregnancy_status(facts: PatientFacts, observation: dict, knowledge: Knowledge) -> None:
    """Pregnancy status is recognised by its answer (the question's LOINC code is unverified)."""
    answers = knowledge.raw["pregnancy_status"]
    for system, code, _ in codings(observation.get("valueCodeableConcept")):
        answer = next((name for name in ("pregnant", "not_pregnant", "unknown") if knowledge.coding_in(answers[name], system, code)), None)
        when = effective_datetime(observation)
        if answer and when:
            facts.pregnancy_statuses.append(PregnancyStatus(answer, when, concept_label(observation.get("valueCodeableConcept"))))
            return


def _condition_status(concept: Any) -> str | None:
    return next((code for _system, code, _ in codings(concept) if code), None)


def _read_conditions(facts: PatientFacts, conditions: Iterable[dict], knowledge: Knowledge) -> None:
    for condition in conditions:
        if _condition_status(condition.get("verificationStatus")) in EXCLUDED_VERIFICATION:
            continue
        matched = frozenset().union(*(knowledge.value_sets_of(system, code)
                                      for system, code, _ in codings(condition.get("code"))))
        if not matched:
            continue
        clinical = _condition_status(condition.get("clinicalStatus"))
        active = clinical not in INACTIVE_CLINICAL_STATUS and condition.get("abatementDateTime") is None
        onset = parse_datetime(condition.get("onsetDateTime")) or parse_datetime(condition.get("recordedDate"))
        facts.conditions.append(ConditionFact(matched, active, concept_label(condition.get("code"), "condition"), onset,
                                              clinical or "no clinical status"))


def read_medication(request: dict, medications: dict[str, dict], knowledge: Knowledge) -> MedicationFact:
    concepts = medication_concepts(request, medications)
    bone_agent = identify_ingredient(concepts, knowledge)
    dosage = next((d for d in as_list(request.get("dosageInstruction")) if isinstance(d, dict)), {})
    route_texts = " ".join(concept_texts(dosage.get("route"))).lower()
    # Codes and names are read once per order, then matched against every class (this runs for every order on record).
    coded = [(system, code) for concept in concepts for system, code, _ in codings(concept) if code]
    names = [text.lower() for concept in concepts for text in concept_texts(concept)]
    classes = frozenset(name for name, drug_class in knowledge.medication_classes.items()
                        if _in_class(coded, names, drug_class, knowledge)
                        and not any(word in route_texts for word in drug_class.excluded_routes))
    status = request.get("status") if isinstance(request.get("status"), str) else None
    label = next((text for concept in concepts for text in concept_texts(concept)), "unnamed medication")
    return MedicationFact(request.get("id") if isinstance(request.get("id"), str) else None, label, status,
                          parse_datetime(request.get("authoredOn")), classes, bone_agent[0] if bone_agent else None,
                          route_text=route_texts)


def _in_class(coded: list[tuple[str | None, str]], names: list[str], drug_class: Any, knowledge: Knowledge) -> bool:
    """By RxNorm or ATC code (or ATC group), else by a name fragment in the drug's text."""
    rxnorm, atc = knowledge.systems["rxnorm"], knowledge.systems["atc"]
    for system, code in coded:
        if system == rxnorm and code in drug_class.rxnorm:
            return True
        if system == atc and (code in drug_class.atc or code.startswith(drug_class.atc_prefixes)):
            return True
    pattern = drug_class.name_pattern
    return pattern is not None and any(pattern.search(name) for name in names)


def _read_allergy(allergy: dict, knowledge: Knowledge) -> AllergyFact | None:
    verification = _condition_status(allergy.get("verificationStatus"))
    clinical = _condition_status(allergy.get("clinicalStatus"))
    if verification in EXCLUDED_VERIFICATION or clinical in INACTIVE_CLINICAL_STATUS:
        return None
    concepts = [allergy.get("code")] + [r.get("substance") for r in as_list(allergy.get("reaction")) if isinstance(r, dict)]
    concepts = [c for c in concepts if c is not None]
    ingredients = frozenset(found[0] for c in concepts if (found := identify_ingredient([c], knowledge)))
    atc, bisphosphonate_atc = knowledge.systems["atc"], knowledge.class_atc_prefixes["bisphosphonate"]
    by_code = any(system == atc and code and code.startswith(bisphosphonate_atc) for c in concepts for system, code, _ in codings(c))
    # "biphosphonate" is a common misspelling in free-text allergy entries.
    by_text = any(word in text.lower() for c in concepts for text in concept_texts(c)
                  for word in ("bisphosphonate", "biphosphonate"))
    by_ingredient = any(knowledge.ingredient_class[i] == "bisphosphonate" for i in ingredients)
    if not ingredients and not (by_code or by_text):
        return None
    criticality = allergy.get("criticality") if isinstance(allergy.get("criticality"), str) else None
    return AllergyFact(concept_label(allergy.get("code"), "unnamed substance"), ingredients, by_code or by_text or by_ingredient,
                       criticality, verification)


def _read_dental_exams(facts: PatientFacts, procedures: Iterable[dict], encounters: Iterable[dict],
                       knowledge: Knowledge) -> list[DentalExam]:
    """Dental examinations from Procedures (CDT, SNOMED), Encounters and encounter diagnoses (ICD-10-CM Z01.2x)."""
    spec = knowledge.raw["dental_examination"]
    exam_set = knowledge.condition_sets[spec["encounter_condition_set"]]
    exams: list[DentalExam] = []
    for procedure in procedures:
        if _status(procedure) in NOT_PERFORMED_STATUS:
            continue
        coded = [(system, code) for system, code, _ in codings(procedure.get("code"))]
        when = effective_datetime(procedure)
        if when and any(knowledge.coding_in(spec["procedure_codes"], system, code) for system, code in coded):
            exams.append(DentalExam(when, f"{concept_label(procedure.get('code'), 'dental procedure')} on {when.date().isoformat()}"))
    for encounter in encounters:
        if _status(encounter) in NOT_PERFORMED_STATUS:
            continue
        coded = [c for key in ("reasonCode", "type") for c in codings(encounter.get(key))]
        period = encounter.get("period") if isinstance(encounter.get("period"), dict) else {}
        when = parse_datetime(period.get("start")) or parse_datetime(period.get("end"))
        if when and any(exam_set.matches(system, code, knowledge.systems) for system, code, _ in coded):
            exams.append(DentalExam(when, f"dental examination encounter on {when.date().isoformat()}"))
    for condition in facts.conditions:
        if exam_set.name in condition.value_sets and condition.onset:
            exams.append(DentalExam(condition.onset, f"{condition.label} on {condition.onset.date().isoformat()}"))
    return sorted(exams, key=lambda e: e.when, reverse=True)


def _read_doses(facts: PatientFacts, requests: Iterable[dict], administrations: Iterable[dict],
                medications: dict[str, dict], knowledge: Knowledge) -> None:
    from_administrations: list[DoseEvent] = []
    for administration in administrations:
        if _status(administration) not in GIVEN_ADMINISTRATION_STATUS:
            continue
        identified = identify_ingredient(medication_concepts(administration, medications), knowledge)
        when = effective_datetime(administration)
        if identified and when:
            from_administrations.append(DoseEvent(identified[0], when, "administration recorded"))
    administered = {d.ingredient for d in from_administrations}
    from_requests: list[DoseEvent] = []
    for request in requests:
        if _status(request) not in GIVEN_REQUEST_STATUS:
            continue
        identified = identify_ingredient(medication_concepts(request, medications), knowledge)
        when = parse_datetime(request.get("authoredOn"))
        if identified and when and identified[0] not in administered and when <= facts.now:
            from_requests.append(DoseEvent(identified[0], when, f"order {request.get('status')}"))
    facts.bone_agent_doses = sorted(from_administrations + from_requests, key=lambda d: d.when, reverse=True)


def latest_calcium(facts: PatientFacts, knowledge: Knowledge, max_age_days: int) -> CalciumReading | None:
    """Latest albumin-corrected calcium (measured, or computed from total calcium and an albumin drawn with it; uncorrected
    total calcium when there is no albumin, said so), in the unit family it was reported in."""
    direct = facts.latest("calcium_corrected", max_age_days)
    total = facts.latest("calcium_total", max_age_days)
    if direct and (total is None or direct.when >= total.when):
        value, unit = _in_family(direct)
        return CalciumReading(value, unit, direct.value, True, direct.when, f"albumin-corrected calcium {direct.shown()}",
                              direct.comparator)
    if total is None:
        return None
    value, unit = _in_family(total)
    pairing_days = knowledge.threshold("albumin_pairing_days")
    albumin = next((a for a in facts.results("albumin") if abs(days_between(a.when, total.when)) <= pairing_days), None)
    if albumin is None:
        return CalciumReading(value, unit, total.value, False, total.when,
                              f"total calcium {total.shown()}, **not corrected for albumin** (no albumin within "
                              f"{pairing_days:g} day{'s' if pairing_days != 1 else ''} of it)", total.comparator)
    reference = knowledge.threshold("albumin_correction_reference_g_dl")
    factor = knowledge.threshold("albumin_correction_factor" if unit == "mg/dL" else "albumin_correction_factor_mmol_l_per_g_dl")
    corrected = value + factor * (reference - albumin.value)
    mg_dl = total.value + knowledge.threshold("albumin_correction_factor") * (reference - albumin.value)
    return CalciumReading(corrected, unit, mg_dl, True, total.when,
                          f"calcium {total.shown()} with albumin {albumin.shown()} gives albumin-corrected calcium "
                          f"{total.bound}{_trim(corrected, 3)} {unit}", total.comparator)


def latest_ionized_calcium(facts: PatientFacts, max_age_days: int) -> LabResult | None:
    return facts.latest("calcium_ionized", max_age_days)


def _in_family(result: LabResult) -> tuple[float, str]:
    """Calcium compared in the unit it was reported in, so 2.12 mmol/L and 8.5 mg/dL are each exactly at their limit."""
    if result.recorded_unit in MOLAR_UNITS:
        return result.recorded_value, "mmol/L"
    return result.value, "mg/dL"


def is_hypercalcemic(facts: PatientFacts, knowledge: Knowledge) -> tuple[bool, str]:
    """Active hypercalcemia diagnosis, or a recent calcium at or above the upper limit used for supplements."""
    if facts.has_condition("hypercalcemia"):
        return True, "active hypercalcemia diagnosis"
    limits = knowledge.thresholds["calcium_high_for_supplements"]
    reading = latest_calcium(facts, knowledge, limits["max_age_days"])
    if reading and reading.at_least(limits):
        return True, reading.explanation
    return False, ""


def recent_conditions(facts: PatientFacts, value_set: str, max_age_days: int) -> list[ConditionFact]:
    """Active conditions of a value set whose onset (else recorded date) lies within `max_age_days`."""
    return [c for c in facts.conditions_in(value_set, active_only=True)
            if c.onset is not None and 0 <= days_between(c.onset, facts.now) <= max_age_days]


def current_hypercalcemia_of_malignancy(facts: PatientFacts, knowledge: Knowledge) -> str | None:
    """Why hypercalcemia of malignancy is current, or None: a recent corrected calcium at the treatment threshold, or a
    recent hypercalcemia diagnosis with a recent calcium still above the upper limit. An old problem-list entry, or one
    whose calcium is now normal, does not count: the label's renal waiver is for the hypercalcemia dose only."""
    if not facts.has_condition("malignancy"):
        return None
    spec = knowledge.threshold("hypercalcemia_of_malignancy")
    calcium = latest_calcium(facts, knowledge, spec["calcium_max_age_days"])
    if calcium is None:
        return None
    if calcium.at_least({"corrected_mg_dl": spec["corrected_mg_dl"], "corrected_mmol_l": spec["corrected_mmol_l"]}):
        return f"{calcium.explanation}, within {spec['calcium_max_age_days']} days, with an active cancer"
    diagnoses = recent_conditions(facts, "hypercalcemia", spec["condition_max_age_days"])
    if diagnoses and calcium.at_least({"corrected_mg_dl": spec["condition_corrected_mg_dl"],
                                       "corrected_mmol_l": spec["condition_corrected_mmol_l"]}):
        onset = diagnoses[0].onset
        assert onset is not None
        return (f"{diagnoses[0].label} recorded {onset.date().isoformat()} and {calcium.explanation}, with an "
                "active cancer")
    return None


def derive_setting(facts: PatientFacts, knowledge: Knowledge) -> Setting:
    """Clinical setting by the catalog's precedence: hypercalcemia of malignancy (only while current), bone metastases,
    metastasis elsewhere, early breast cancer, no breast cancer."""
    current = current_hypercalcemia_of_malignancy(facts, knowledge)
    if current:
        return Setting("hypercalcemia-of-malignancy", current)
    if facts.has_condition("bone-metastasis"):
        return Setting("bone-metastatic", "active bone metastasis on the problem list")
    if facts.has_condition("breast-cancer"):
        if facts.has_condition("distant-metastasis"):
            return Setting("metastatic-other", "breast cancer with distant metastasis outside bone")
        if facts.stage_findings:
            return Setting("metastatic-other", f"breast cancer with distant metastasis on a stage observation "
                                               f"({facts.stage_findings[0].dated()}), no bone site on record")
        return Setting("early", "breast cancer without distant metastasis on record (conditions and stage observations)")
    return Setting("no-breast-cancer", "no active breast cancer diagnosis on record")
