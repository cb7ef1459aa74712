"""Calcium judgments: latest albumin-corrected calcium, hypercalcemia, current hypercalcemia of
malignancy."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from hooks.facts.model import ConditionFact, LabResult, PatientFacts, censored_below, trimmed
from hooks.facts.observations import MOLAR_UNITS
from hooks.fhir_read import days_between
from hooks.knowledge import Knowledge
from hooks.quick_frozen import quick_frozen


@quick_frozen
@dataclass(frozen=True)
class CalciumReading:
    """The latest calcium for the calcium rules, in the unit family it was reported in (mg/dL or
    mmol/L)."""

    value: float
    unit: str
    mg_dl: float
    corrected: bool
    when: datetime
    explanation: str
    comparator: str | None = (
        None  # a censored calcium: the true value relates to `value` by this comparator
    )

    def decide_below(self, limits: dict[str, float]) -> bool | None:
        """Below the limit (True), at or above it (False), or None when a censored value allows
        both."""
        return censored_below(self.value, self.comparator, self.limit(limits))

    def below(self, limits: dict[str, float]) -> bool:
        """Certainly below the limit (a censored value that could lie on either side is not)."""
        return self.decide_below(limits) is True

    def at_least(self, limits: dict[str, float]) -> bool:
        """Certainly at or above the limit."""
        return self.decide_below(limits) is False

    def limit(self, limits: dict[str, float]) -> float:
        return limits["corrected_mmol_l"] if self.unit == "mmol/L" else limits["corrected_mg_dl"]


def latest_calcium(
    facts: PatientFacts, knowledge: Knowledge, max_age_days: int
) -> CalciumReading | None:
    """Latest albumin-corrected calcium (measured, or computed from total calcium and an albumin
    drawn with it; uncorrected total calcium when there is no albumin, said so), in the unit family
    it was reported in."""
    direct = facts.latest("calcium_corrected", max_age_days)
    total = facts.latest("calcium_total", max_age_days)
    if direct and (total is None or direct.when >= total.when):
        value, unit = _in_family(direct)
        return CalciumReading(
            value,
            unit,
            direct.value,
            True,
            direct.when,
            f"albumin-corrected calcium {direct.shown()}",
            direct.comparator,
        )
    if total is None:
        return None
    value, unit = _in_family(total)
    pairing_days = knowledge.threshold("albumin_pairing_days")
    albumin = next(
        (
            a
            for a in facts.results("albumin")
            if abs(days_between(a.when, total.when)) <= pairing_days
        ),
        None,
    )
    if albumin is None:
        return CalciumReading(
            value,
            unit,
            total.value,
            False,
            total.when,
            f"total calcium {total.shown()}, **not corrected for albumin** (no albumin within "
            f"{pairing_days:g} day{'s' if pairing_days != 1 else ''} of it)",
            total.comparator,
        )
    reference = knowledge.threshold("albumin_correction_reference_g_dl")
    factor = knowledge.threshold(
        "albumin_correction_factor"
        if unit == "mg/dL"
        else "albumin_correction_factor_mmol_l_per_g_dl"
    )
    corrected = value + factor * (reference - albumin.value)
    mg_dl = total.value + knowledge.threshold("albumin_correction_factor") * (
        reference - albumin.value
    )
    return CalciumReading(
        corrected,
        unit,
        mg_dl,
        True,
        total.when,
        f"calcium {total.shown()} with albumin {albumin.shown()} gives albumin-corrected calcium "
        f"{total.bound}{trimmed(corrected, 3)} {unit}",
        total.comparator,
    )


def _in_family(result: LabResult) -> tuple[float, str]:
    """Calcium compared in the unit it was reported in, so 2.12 mmol/L and 8.5 mg/dL are each
    exactly at their limit."""
    if result.recorded_unit in MOLAR_UNITS:
        return result.recorded_value, "mmol/L"
    return result.value, "mg/dL"


def recent_conditions(
    facts: PatientFacts, value_set: str, max_age_days: int
) -> list[ConditionFact]:
    """Active conditions of a value set whose onset (else recorded date) lies within
    `max_age_days`."""
    return [
        c
        for c in facts.conditions_in(value_set, active_only=True)
        if c.onset is not None and 0 <= days_between(c.onset, facts.now) <= max_age_days
    ]


def current_hypercalcemia_of_malignancy(facts: PatientFacts, knowledge: Knowledge) -> str | None:
    """Why hypercalcemia of malignancy is current, or None: a recent corrected calcium at the
    treatment threshold, or a recent hypercalcemia diagnosis with a recent calcium still above the
    upper limit.

    An old problem-list entry, or one whose calcium is now normal, does not count: the label's renal
    waiver is for the hypercalcemia dose only.
    """
    if not facts.has_condition("malignancy"):
        return None
    spec = knowledge.threshold("hypercalcemia_of_malignancy")
    calcium = latest_calcium(facts, knowledge, spec["calcium_max_age_days"])
    if calcium is None:
        return None
    if calcium.at_least(
        {"corrected_mg_dl": spec["corrected_mg_dl"], "corrected_mmol_l": spec["corrected_mmol_l"]}
    ):
        return (
            f"{calcium.explanation}, within {spec['calcium_max_age_days']} days, with an active"
            " cancer"
        )
    diagnoses = recent_conditions(facts, "hypercalcemia", spec["condition_max_age_days"])
    if diagnoses and calcium.at_least(
        {
            "corrected_mg_dl": spec["condition_corrected_mg_dl"],
            "corrected_mmol_l": spec["condition_corrected_mmol_l"],
        }
    ):
        onset = diagnoses[0].onset
        if onset is None:
            raise RuntimeError("a recent hypercalcemia diagnosis without an onset date")
        return (
            f"{diagnoses[0].label} recorded {onset.date().isoformat()} and {calcium.explanation},"
            " with an active cancer"
        )
    return None
