"""Bone-loss indication: the lowest recent DXA T-score and the clinical fracture risk factors, each
with its evidence."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from hooks.facts.model import MedicationFact, PatientFacts, TScore
from hooks.fhir_read import days_between, shift_months
from hooks.knowledge import Knowledge

# Orders that were never taken neither start nor bridge a course (a draft signed in this request
# does).
NOT_TAKEN_STATUS = frozenset({"entered-in-error", "cancelled", "draft"})


@dataclass(frozen=True)
class BoneLossAssessment:
    indicated: bool
    lowest_t_score: TScore | None
    risk_factors: tuple[str, ...]
    not_assessed: tuple[str, ...]
    limits: dict
    # The latest forearm (radius/ulna) T-score when it is the only one: seen, never used (catalog
    # "Bone density").
    forearm: TScore | None = None

    def forearm_note(self) -> str | None:
        """'forearm T-score -3.3 on 2025-03-02 seen, not used: the indication reads spine or hip',
        when it applies."""
        if self.forearm is None:
            return None
        return (
            f"forearm T-score {self.forearm.value:g} on {self.forearm.when.date().isoformat()}"
            " seen, not used: the indication reads spine or hip"
        )

    def reason(self) -> str:
        """Why a bone agent is indicated (or why not), for a card's detail."""
        low = self.lowest_t_score
        parts = []
        if low is not None and low.value < self.limits["t_score_below"]:
            parts.append(f"{low.shown()}, below {self.limits['t_score_below']:g}")
        if self.risk_factors:
            parts.append(
                f"{len(self.risk_factors)} risk"
                f" factor{'s' if len(self.risk_factors) != 1 else ''}: "
                + "; ".join(self.risk_factors)
            )
        text = (
            ". ".join(parts)
            if parts
            else "no DXA T-score below the limit and no risk factors on record"
        )
        note = self.forearm_note()
        return f"{text} ({note})" if note else text


def recent_t_scores(facts: PatientFacts, months: int) -> list[TScore]:
    since = shift_months(facts.now, -months).date()
    return [t for t in facts.t_scores if t.when.date() >= since]


def assess_bone_loss(facts: PatientFacts, knowledge: Knowledge) -> BoneLossAssessment:
    """Indicated when the lowest T-score (spine, hip, femur; DXA within the window) is below -2.0,
    or with at least two clinical risk factors."""
    limits = knowledge.threshold("bone_loss")
    scores = recent_t_scores(facts, limits["dxa_max_age_months"])
    lowest = min(scores, key=lambda t: t.value) if scores else None
    factors: list[str] = []
    not_assessed = ["family history of hip fracture (no coded source is read)"]

    factors += [
        f"aromatase inhibitor ({m.dated()})"
        for m in facts.active_medications("aromatase-inhibitor")
    ][:1]
    if lowest is not None and lowest.value < limits["risk_factor_t_score_below"]:
        factors.append(f"{lowest.shown()} (below {limits['risk_factor_t_score_below']:g})")
    age = facts.age_on(facts.now.date())
    if age is None:
        not_assessed.append("age (no birth date)")
    elif age > limits["risk_factor_age_above"]:
        factors.append(f"age {age} (over {limits['risk_factor_age_above']})")
    bmi = body_mass_index(facts, limits)
    if bmi is None:
        not_assessed.append("BMI (no recent BMI, or weight and height)")
    # weight / height squared carries float noise: 51.2 kg, 160 cm is 20
    elif bmi[0] < limits["bmi_below"] - 1e-9:
        factors.append(f"BMI {bmi[0]:.1f} kg/m2 ({bmi[1]})")
    fracture = _fragility_fracture(facts, limits["fragility_fracture_from_age"])
    if fracture:
        factors.append(fracture)
    steroid = _long_corticosteroid_course(
        facts, limits["corticosteroid_months_over"], limits["corticosteroid_course_gap_days"]
    )
    if steroid:
        factors.append(steroid)
    smoking = _current_smoker(facts, knowledge)
    if smoking:
        factors.append(smoking)
    indicated = (lowest is not None and lowest.value < limits["t_score_below"]) or len(
        factors
    ) >= limits["min_risk_factors"]
    forearm = facts.forearm_t_scores[0] if facts.forearm_t_scores and lowest is None else None
    return BoneLossAssessment(
        indicated, lowest, tuple(factors), tuple(not_assessed), limits, forearm
    )


def body_mass_index(facts: PatientFacts, limits: dict) -> tuple[float, str] | None:
    """The latest recorded BMI in the window, else weight / height squared from recent results."""
    recorded = facts.latest("bmi", limits["bmi_max_age_days"])
    if recorded is not None:
        return recorded.value, f"recorded on {recorded.when.date().isoformat()}"
    weight = facts.latest("body_weight", limits["bmi_max_age_days"])
    height = facts.latest("body_height", limits["height_max_age_days"])
    if weight is None or height is None or height.value <= 0:
        return None
    return (
        weight.value / (height.value / 100) ** 2,
        f"weight {weight.shown()}, height {height.shown()}",
    )


def _fragility_fracture(facts: PatientFacts, from_age: int) -> str | None:
    for fracture in facts.conditions_in("fragility-fracture", active_only=False):
        if fracture.onset is None:
            return f"fragility fracture ({fracture.label}; age at fracture not recorded)"
        age = facts.age_on(fracture.onset.date())
        if age is not None and age >= from_age:
            return f"fragility fracture after {from_age} ({fracture.label}, at age {age})"
    return None


def _long_corticosteroid_course(facts: PatientFacts, months: int, gap_days: int) -> str | None:
    """An active oral corticosteroid (route oral or not stated) whose continuous run of orders (no
    gap longer than `gap_days`) began more than `months` ago; intravenous doses such as chemotherapy
    premedication do not count."""
    orders = sorted(
        (
            (m.authored, m)
            for m in facts.medications
            if "systemic-corticosteroid" in m.classes
            and m.authored
            and (m.in_request or m.status not in NOT_TAKEN_STATUS)
            and (not m.route_text or "oral" in m.route_text)
        ),
        key=lambda dated: dated[0],
    )
    if not any(m.current for _, m in orders):
        return None
    start: tuple[datetime, MedicationFact] | None = None
    previous: datetime | None = None
    for authored, order in orders:
        if previous is None or days_between(previous, authored) > gap_days:
            start = (authored, order)
        previous = authored
    limit = shift_months(
        facts.now, -months
    ).date()  # by calendar date, as every window: a start on that day is not "more"
    if start is not None and start[0].date() < limit:
        since, first = start
        return (
            f"systemic corticosteroid for more than {months} months ({first.label} since"
            f" {since.date().isoformat()})"
        )
    return None


def _current_smoker(facts: PatientFacts, knowledge: Knowledge) -> str | None:
    window = knowledge.raw["smoking"]["max_age_days"]
    latest = facts.smoking_statuses[0] if facts.smoking_statuses else None
    if (
        latest
        and latest.value == "current"
        and latest.when
        and days_between(latest.when, facts.now) <= window
    ):
        return f"current smoker ({latest.dated()})"
    return None
