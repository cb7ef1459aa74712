"""What a rule sees about one order: the order, the patient's facts, the knowledge and shared derived values."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cached_property

from hooks.facts import DoseEvent, LabResult, PatientFacts
from hooks.knowledge import Knowledge
from hooks.orders import BoneAgentOrder
from hooks.renal import RenalAssessment, assess_renal_function


def below(value: float, limit: float) -> bool:
    """value < limit, ignoring float noise from unit conversion (132.6 umol/L is exactly 1.5 mg/dL)."""
    return value < limit - 1e-9


def at_least(value: float, limit: float) -> bool:
    return not below(value, limit)


@dataclass
class OrderContext:
    order: BoneAgentOrder
    facts: PatientFacts
    knowledge: Knowledge
    patient_reference: str
    user_reference: str | None
    now: datetime

    def threshold(self, name: str):
        return self.knowledge.threshold(name)

    @cached_property
    def creatinine_window_days(self) -> int:
        """30 days before a parenteral dose (or when the route is unknown), a year for oral bisphosphonates."""
        name = "creatinine_max_age_days_oral" if self.order.is_oral else "creatinine_max_age_days_parenteral"
        return self.threshold(name)

    @cached_property
    def recent_creatinine(self) -> LabResult | None:
        return self.facts.latest("creatinine", self.creatinine_window_days)

    @cached_property
    def current_renal(self) -> RenalAssessment:
        return assess_renal_function(self.facts, self.recent_creatinine, self.threshold("weight_max_age_days"),
                                     self.creatinine_window_days, current=True)

    @cached_property
    def course_doses(self) -> list[DoseEvent]:
        """Earlier doses of the ordered ingredient in the current course, newest first."""
        gap = self.threshold("course_gap_days")
        course: list[DoseEvent] = []
        later = self.now
        for dose in self.facts.doses_of(self.order.ingredient):
            if (later - dose.when).days > gap:
                break
            course.append(dose)
            later = dose.when
        return course

    @cached_property
    def course_start(self) -> DoseEvent | None:
        return self.course_doses[-1] if self.course_doses else None

    @cached_property
    def baseline_creatinine(self) -> tuple[LabResult, str] | None:
        """Last creatinine before the course started, else the earliest within the look-back window, with which one."""
        start = self.course_start
        results = self.facts.results("creatinine")
        if start is not None:
            before = next((r for r in results if r.when < start.when), None)
            if before is not None:
                return before, f"last value before the first dose of this course ({start.when.date().isoformat()})"
        lookback = self.threshold("renal_deterioration")["baseline_lookback_days"]
        window = [r for r in results if (self.now - r.when).days <= lookback]
        if window:
            return window[-1], f"earliest value in the last {lookback // 365} years (no value before the course start)"
        return None
