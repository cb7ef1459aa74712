"""Renal function for bisphosphonate dosing: Cockcroft-Gault clearance, eGFR as a stated fallback,
dialysis."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from hooks.facts.model import LabResult, PatientFacts, censored_below, flipped
from hooks.fhir_read import days_between
from hooks.quick_frozen import quick_frozen

FEMALE_FACTOR = 0.85
EGFR_UNIT = "mL/min/1.73 m²"


def creatinine_clearance(
    creatinine_mg_dl: float, age_years: int, weight_kg: float, female: bool
) -> float:
    """Cockcroft-Gault: (140 - age) x weight / (72 x serum creatinine), x 0.85 for women; mL/min."""
    clearance = (140 - age_years) * weight_kg / (72 * creatinine_mg_dl)
    return clearance * FEMALE_FACTOR if female else clearance


def near_limits(value: float, limits: Iterable[float] = ()) -> str:
    """A computed value with one decimal, or more when one decimal would put it onto or across a
    limit it is compared with (29.96 against 30 is '29.96', never '30.0')."""
    # a value exactly at a limit is shown at it
    limits = [limit for limit in limits if abs(value - limit) > 1e-9]
    for digits in (1, 2, 3):
        text = f"{value:.{digits}f}"
        shown = float(text)
        if all(
            abs(shown - limit) > 1e-9 and (value < limit - 1e-9) == (shown < limit - 1e-9)
            for limit in limits
        ):
            return text
    return f"{value:g}"


def _as_reported(value: float) -> str:
    """A measured value as the laboratory sent it: 22, 29.5 (no padding to one decimal)."""
    return f"{value:g}"


@quick_frozen
@dataclass(frozen=True)
class RenalFunction:
    """A renal function estimate with the inputs used, so a card can show its working.

    A censored input ('>60', creatinine '<0.5') makes the estimate a bound: `comparator` says how
    the true value relates to `value`.
    """

    method: str
    value: float
    creatinine: LabResult | None
    weight: LabResult | None = None
    age_years: int | None = None
    sex: str | None = None
    egfr: LabResult | None = None
    fallback_reason: str = ""
    comparator: str | None = None

    @property
    def is_clearance(self) -> bool:
        return self.method == "cockcroft-gault"

    @property
    def censored(self) -> bool:
        return self.comparator is not None

    @property
    def label(self) -> str:
        return "CrCl" if self.is_clearance else "eGFR"

    @property
    def unit(self) -> str:
        return "mL/min" if self.is_clearance else EGFR_UNIT

    @property
    def short_unit(self) -> str:
        """The unit for one-line summaries; an eGFR is always labelled as such."""
        return "mL/min" if self.is_clearance else f"{EGFR_UNIT} (not CrCl)"

    def decide_below(self, limit: float) -> bool | None:
        """Below the limit (True), at or above it (False), or None when a censored value allows
        both."""
        return censored_below(self.value, self.comparator, limit)

    def number(self, limits: Iterable[float] = ()) -> str:
        """The value with its bound: a clearance with one decimal (never rounded onto a limit), an
        eGFR as reported."""
        text = near_limits(self.value, limits) if self.is_clearance else _as_reported(self.value)
        return f"{self.comparator or ''}{text}"

    def shown(self, limits: Iterable[float] = ()) -> str:
        """'CrCl 24.3 mL/min', 'CrCl >85.3 mL/min', 'eGFR 22 mL/min/1.73 m² (not CrCl)', 'eGFR >60
        mL/min/1.73 m² (not CrCl)'."""
        return f"{self.label} {self.number(limits)} {self.short_unit}"

    def shown_value(self) -> str:
        return self.shown()

    def working(self, limits: Iterable[float] = ()) -> str:
        """The inputs and result in one line of markdown."""
        limits = tuple(limits)
        if self.is_clearance:
            if not self.creatinine or not self.weight:
                raise RuntimeError("a creatinine clearance without its creatinine and weight")
            bound = ""
            if self.censored:
                bound = (
                    "; the creatinine is a censored value, so the clearance is a bound: "
                    f"{'at least' if self.comparator in ('>', '>=') else 'at most'} this"
                )
            return (
                f"creatinine {self.creatinine.shown()}; weight {self.weight.shown(1)}; age"
                f" {self.age_years}; {self.sex} → **CrCl {self.number(limits)} mL/min**"
                f" (Cockcroft-Gault, actual body weight{bound})"
            )
        egfr = self.egfr
        if not egfr:
            raise RuntimeError("an eGFR-based renal function without its eGFR")
        # an eGFR is always labelled with its body-surface unit; the unit the record gave is noted
        reported = (
            f"eGFR {egfr.bound}{_as_reported(egfr.value)} {EGFR_UNIT} on"
            f" {egfr.when.date().isoformat()} (recorded with the unit '{egfr.recorded_unit}', read"
            f" as {EGFR_UNIT})"
            if egfr.note
            else f"eGFR {egfr.shown(1)}"
        )
        return (
            f"{reported} → **{self.shown(limits)}**, used because creatinine clearance could not be"
            f" calculated ({self.fallback_reason}); eGFR is normalised to body surface and is not"
            " the clearance the label is written for"
        )


@quick_frozen
@dataclass(frozen=True)
class RenalAssessment:
    """The renal estimate at one point in time, or why there is none."""

    function: RenalFunction | None
    creatinine: LabResult | None
    missing: tuple[str, ...]


def weight_near(
    facts: PatientFacts, when: datetime, max_age_days: int, before_only: bool
) -> LabResult | None:
    """The body weight closest to `when` (only earlier ones if before_only), within max_age_days of
    it."""
    candidates = [
        w
        for w in facts.results("body_weight")
        if abs(days_between(w.when, when)) <= max_age_days and (not before_only or w.when <= when)
    ]
    return min(candidates, key=lambda w: abs((w.when - when).total_seconds()), default=None)


def assess_renal_function(
    facts: PatientFacts,
    creatinine: LabResult | None,
    weight_max_age_days: int,
    egfr_max_age_days: int,
    *,
    current: bool,
) -> RenalAssessment:
    """`_assess_renal_function`, once per call for each question (the facts remember it)."""
    return facts.remember(
        ("renal", creatinine, weight_max_age_days, egfr_max_age_days, current),
        lambda: _assess_renal_function(
            facts, creatinine, weight_max_age_days, egfr_max_age_days, current=current
        ),
    )


def _assess_renal_function(
    facts: PatientFacts,
    creatinine: LabResult | None,
    weight_max_age_days: int,
    egfr_max_age_days: int,
    *,
    current: bool,
) -> RenalAssessment:
    """Cockcroft-Gault from `creatinine` when weight, age and sex are known; else the latest eGFR,
    said so.

    With no recorded sex or no birth date there is no clearance (never a guessed one): `missing`
    says which.
    """
    missing: list[str] = []
    if creatinine is None:
        missing.append("serum creatinine")
    else:
        reference_time = facts.now if current else creatinine.when
        weight = weight_near(facts, reference_time, weight_max_age_days, before_only=current)
        age = facts.age_on(creatinine.when.date())
        if weight is None:
            missing.append(f"body weight within {weight_max_age_days} days")
        if facts.birth_date is None:
            missing.append("date of birth")
        elif age is None:
            missing.append("age (the date of birth is after the creatinine)")
        if facts.sex is None:
            missing.append("recorded sex (Patient.gender female or male, or US Core birth sex)")
        if not missing and creatinine.value > 0:
            if weight is None or age is None:
                raise RuntimeError("nothing is missing, yet no weight or age")
            value = creatinine_clearance(creatinine.value, age, weight.value, facts.sex == "female")
            return RenalAssessment(
                RenalFunction(
                    "cockcroft-gault",
                    value,
                    creatinine,
                    weight,
                    age,
                    facts.sex,
                    comparator=flipped(creatinine.comparator),
                ),
                creatinine,
                (),
            )
    egfr = facts.latest("egfr", egfr_max_age_days) if current else None
    if egfr is not None:
        function = RenalFunction(
            "egfr",
            egfr.value,
            creatinine,
            egfr=egfr,
            fallback_reason=", ".join(missing) + " missing",
            comparator=egfr.comparator,
        )
        return RenalAssessment(function, creatinine, tuple(missing))
    return RenalAssessment(None, creatinine, tuple(missing))


def on_dialysis(facts: PatientFacts) -> tuple[str, ...]:
    """Evidence that the patient is on dialysis, one line each: an active dialysis or end-stage
    renal disease Condition (ICD-10-CM N18.6, Z99.2; SNOMED 46177005, 236435004), or a dialysis
    Procedure within the knowledge's window. Worked out once per call (five rules and the
    suggestion gate's trials ask)."""
    return facts.remember(("dialysis",), lambda: _dialysis_evidence(facts))


def _dialysis_evidence(facts: PatientFacts) -> tuple[str, ...]:
    lines = [c.label for c in facts.conditions_in("dialysis", active_only=True)]
    lines += [
        f"{p.label} performed {p.when.date().isoformat()}"
        for p in facts.dialysis_procedures
        if p.when
    ]
    return tuple(lines)
