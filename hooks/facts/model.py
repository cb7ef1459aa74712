"""The typed facts the rules read about a patient: results, conditions, medications, doses,
findings, unit-normalised."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from hooks.fhir_read import days_between
from hooks.quick_frozen import quick_frozen

if TYPE_CHECKING:
    from hooks.orders import Interval


@quick_frozen
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
    # A censored value: the true value relates to `value` by this comparator ('<', '<=', '>', '>=');
    # None when exact.
    comparator: str | None = None
    loinc: str | None = None
    note: str = ""  # how the value was read, when that is not obvious (an eGFR reported in mL/min)

    @property
    def bound(self) -> str:
        """The comparator as shown before the value ('>' for '>60'), '' for an exact value."""
        return self.comparator or ""

    def shown(self, digits: int = 2) -> str:
        """'1.9 mg/dL on 2026-10-02', or '168 umol/L (1.9 mg/dL) on 2026-10-02' when it was
        converted; a censored value keeps its bound ('>60 mL/min/1.73 m2')."""
        converted = f"{self.bound}{trimmed(self.value, digits)} {self.unit}"
        note = f" ({self.note})" if self.note else ""
        if (
            self.recorded_unit
            and self.recorded_unit != self.unit
            and self.recorded_value != self.value
        ):
            return (
                f"{self.bound}{trimmed(self.recorded_value, digits)} {self.recorded_unit}"
                f" ({converted}){note} on {self.when.date().isoformat()}"
            )
        return f"{converted}{note} on {self.when.date().isoformat()}"

    def decide_below(self, limit: float) -> bool | None:
        """Whether the result is below `limit`: True or False when every value it allows lies on one
        side, else None."""
        return censored_below(self.value, self.comparator, limit)


def censored_below(value: float, comparator: str | None, limit: float) -> bool | None:
    """Value < limit for an exact value; for a bound ('>60', '<0.5') True or False only when every
    value the bound allows lies on one side of the limit, else None (the bound cannot decide that
    threshold).

    Float noise is ignored.
    """
    if comparator is None:
        return value < limit - 1e-9
    if comparator in (">", ">="):
        return False if value >= limit - 1e-9 else None
    if comparator == "<":
        return True if value <= limit + 1e-9 else None
    return True if value < limit - 1e-9 else None  # '<='


def flipped(comparator: str | None) -> str | None:
    """The comparator of a quantity that falls as the measured one rises (creatinine '<0.5' gives
    clearance '>')."""
    return {"<": ">", "<=": ">=", ">": "<", ">=": "<="}.get(comparator or "", None)


def trimmed(value: float, digits: int) -> str:
    text = f"{value:.{digits}f}".rstrip("0").rstrip(".")
    return text or "0"


@quick_frozen
@dataclass(frozen=True)
class UnreadableResult:
    """A result that exists but cannot be used (unknown unit, no value); the rules say so instead of
    ignoring it."""

    kind: str
    when: datetime | None
    recorded_unit: str | None
    reason: str


@quick_frozen
@dataclass(frozen=True)
class ConditionFact:
    value_sets: frozenset[str]
    active: bool
    label: str
    onset: datetime | None
    status: str | None = None


@quick_frozen
@dataclass(frozen=True)
class MedicationFact:
    """A MedicationRequest on record (not one of this request's drafts), classified by what the
    rules ask about."""

    resource_id: str | None
    label: str
    status: str | None
    authored: datetime | None
    classes: frozenset[str]
    bone_agent: str | None
    in_request: bool = (
        False  # drafted in this same request (e.g. calcium signed together with the bone agent)
    )
    route_text: str = ""
    # A bone-agent order's product, dose and interval as read from it (a standing order whose next
    # dose a new draft may be), None when it does not say them.
    formulation: str | None = None
    dose_mg: float | None = None
    interval: Interval | None = None

    @property
    def reference(self) -> str | None:
        return f"MedicationRequest/{self.resource_id}" if self.resource_id else None

    @property
    def current(self) -> bool:
        return self.status == "active" or self.in_request

    def dated(self) -> str:
        if self.in_request:
            return f"{self.label} (being ordered now)"
        return f"{self.label} ({self.status or 'no status'}" + (
            f", ordered {self.authored.date().isoformat()})" if self.authored else ")"
        )


@dataclass(frozen=True)
class AllergyFact:
    label: str
    ingredients: frozenset[str]
    bisphosphonate_class: bool
    criticality: str | None
    verification: str | None


@quick_frozen
@dataclass(frozen=True)
class DentalExam:
    when: datetime
    evidence: str


@quick_frozen
@dataclass(frozen=True)
class PregnancyStatus:
    answer: str
    when: datetime
    label: str


@quick_frozen
@dataclass(frozen=True)
class TScore:
    """A DXA T-score at one site (lumbar spine, hip, femur)."""

    value: float
    site: str
    when: datetime

    def shown(self) -> str:
        return f"T-score {self.value:g} ({self.site}) on {self.when.date().isoformat()}"


@quick_frozen
@dataclass(frozen=True)
class CodedFinding:
    """A dated coded answer or procedure the eligibility logic reads: menopausal status, smoking,
    oophorectomy."""

    value: str
    when: datetime | None
    label: str

    def dated(self) -> str:
        return f"{self.label}" + (f" ({self.when.date().isoformat()})" if self.when else "")


@quick_frozen
@dataclass(frozen=True)
class DoseEvent:
    """A dose of a bone-modifying agent that was given (or ordered and not cancelled) before this
    order."""

    ingredient: str
    when: datetime
    evidence: str
    # The product and dose when the record says them (denosumab 60 mg vs 120 mg decides the
    # follow-on card); None when it cannot be read.
    formulation: str | None = None
    dose_mg: float | None = None


@dataclass(frozen=True)
class DentalWork:
    """An invasive dental procedure, planned (an order, or a Procedure in preparation) or done."""

    label: str
    when: datetime | None
    planned: bool
    evidence: str  # e.g. "ordered (active), planned for 2026-10-20"
    # Done (completed) with no date on record: it may be last week or years ago, so the card asks
    # rather than warns.
    date_unknown: bool = False


@dataclass(frozen=True)
class AdministeredDrug:
    """A recorded administration of a drug the rules classify (aminoglycoside, loop diuretic...)."""

    label: str
    when: datetime
    classes: frozenset[str]

    def dated(self) -> str:
        return f"{self.label} (given {self.when.date().isoformat()})"


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
    setting: Setting = field(
        default_factory=lambda: Setting("no-breast-cancer", "no breast cancer diagnosis on record")
    )
    sex_basis: str = (
        ""  # where the sex was read: Patient.gender, or the US Core birth-sex extension
    )
    # seen, never used for the bone-loss indication
    forearm_t_scores: list[TScore] = field(default_factory=list)
    # stage Observations showing distant metastasis
    stage_findings: list[CodedFinding] = field(default_factory=list)
    # within the knowledge's window
    dialysis_procedures: list[CodedFinding] = field(default_factory=list)
    # Planned or recent invasive dental procedures (ServiceRequests and Procedures), newest first.
    dental_work: list[DentalWork] = field(default_factory=list)
    # Administrations of drugs of the knowledge's classes (not bone agents), newest first.
    administered: list[AdministeredDrug] = field(default_factory=list)
    # Assessments derived from these facts (renal function at a creatinine, ...), computed once per
    # call: the order's rules and the suggestion gate's trials ask the same questions.
    derived: dict[tuple[Any, ...], Any] = field(default_factory=dict, repr=False, compare=False)

    def remember(self, key: tuple[Any, ...], compute: Callable[[], Any]) -> Any:
        """`derived[key]`, computed by `compute()` the first time this call asks."""
        if key not in self.derived:
            self.derived[key] = compute()
        return self.derived[key]

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
        return [
            c
            for c in self.conditions
            if value_set in c.value_sets and (c.active or not active_only)
        ]

    def active_medications(self, medication_class: str) -> list[MedicationFact]:
        """Active orders of a class, and orders of it drafted in this request."""
        return [m for m in self.medications if m.current and medication_class in m.classes]

    def doses_of(self, ingredient: str) -> list[DoseEvent]:
        return [d for d in self.bone_agent_doses if d.ingredient == ingredient]

    def is_unavailable(self, group: str) -> str | None:
        """Why a group of facts could not be retrieved (None when it was retrieved, even if
        empty)."""
        return self.unavailable.get(group)
