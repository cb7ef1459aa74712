"""Renal function for bisphosphonate dosing: Cockcroft-Gault creatinine clearance, with eGFR only as a stated fallback."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from hooks.facts import LabResult, PatientFacts
from hooks.fhir_read import days_between

FEMALE_FACTOR = 0.85


def creatinine_clearance(creatinine_mg_dl: float, age_years: int, weight_kg: float, female: bool) -> float:
    """Cockcroft-Gault: (140 - age) x weight / (72 x serum creatinine), x 0.85 for women; mL/min."""
    clearance = (140 - age_years) * weight_kg / (72 * creatinine_mg_dl)
    return clearance * FEMALE_FACTOR if female else clearance


@dataclass(frozen=True)
class RenalFunction:
    """A renal function estimate with the inputs used, so a card can show its working."""
    method: str
    value: float
    creatinine: LabResult | None
    weight: LabResult | None = None
    age_years: int | None = None
    sex: str | None = None
    egfr: LabResult | None = None

    @property
    def is_clearance(self) -> bool:
        return self.method == "cockcroft-gault"

    @property
    def label(self) -> str:
        return "CrCl" if self.is_clearance else "eGFR"

    @property
    def unit(self) -> str:
        return "mL/min" if self.is_clearance else "mL/min/1.73 m2"

    @property
    def short_unit(self) -> str:
        """The unit without the body-surface part, for one-line summaries."""
        return "mL/min"

    def shown_value(self) -> str:
        return f"{self.label} {self.value:.1f} {self.unit}"

    def working(self) -> str:
        """The inputs and result in one line of markdown."""
        if self.is_clearance:
            assert self.creatinine and self.weight
            return (f"creatinine {self.creatinine.shown()}; weight {self.weight.shown(1)}; age {self.age_years}; "
                    f"{self.sex} → **CrCl {self.value:.1f} mL/min** (Cockcroft-Gault, actual body weight)")
        assert self.egfr
        return (f"eGFR {self.egfr.shown(1)} → **eGFR {self.value:.1f} mL/min/1.73 m2**, used because creatinine "
                f"clearance could not be calculated ({self.fallback_reason}); eGFR is normalised to body surface "
                f"and is not the clearance the label is written for")

    fallback_reason: str = ""


@dataclass(frozen=True)
class RenalAssessment:
    """The renal estimate at one point in time, or why there is none."""
    function: RenalFunction | None
    creatinine: LabResult | None
    missing: tuple[str, ...]


def weight_near(facts: PatientFacts, when: datetime, max_age_days: int, before_only: bool) -> LabResult | None:
    """The body weight closest to `when` (only earlier ones if before_only), within max_age_days of it."""
    candidates = [w for w in facts.results("body_weight")
                  if abs(days_between(w.when, when)) <= max_age_days and (not before_only or w.when <= when)]
    return min(candidates, key=lambda w: abs((w.when - when).total_seconds()), default=None)


def assess_renal_function(facts: PatientFacts, creatinine: LabResult | None, weight_max_age_days: int,
                          egfr_max_age_days: int, *, current: bool) -> RenalAssessment:
    """Cockcroft-Gault from `creatinine` when weight, age and sex are known; else the latest eGFR, said so."""
    missing: list[str] = []
    if creatinine is None:
        missing.append("serum creatinine")
    else:
        reference_time = facts.now if current else creatinine.when
        weight = weight_near(facts, reference_time, weight_max_age_days, before_only=current)
        age = facts.age_on(creatinine.when.date())
        if weight is None:
            missing.append(f"body weight within {weight_max_age_days} days")
        if age is None:
            missing.append("date of birth")
        if facts.sex is None:
            missing.append("sex (female or male)")
        if not missing and creatinine.value > 0:
            assert weight is not None and age is not None
            value = creatinine_clearance(creatinine.value, age, weight.value, facts.sex == "female")
            return RenalAssessment(RenalFunction("cockcroft-gault", value, creatinine, weight, age, facts.sex), creatinine, ())
    egfr = facts.latest("egfr", egfr_max_age_days) if current else None
    if egfr is not None:
        function = RenalFunction("egfr", egfr.value, creatinine, egfr=egfr, fallback_reason=", ".join(missing) + " missing")
        return RenalAssessment(function, creatinine, tuple(missing))
    return RenalAssessment(None, creatinine, tuple(missing))
