"""What a rule sees about one order: the order, the patient's facts, the knowledge and shared
derived values."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from hooks.assessments.bone_health import BoneLossAssessment, assess_bone_loss
from hooks.assessments.calcium import CalciumReading, latest_calcium
from hooks.assessments.menopause import MenopausalStatus, menopausal_status
from hooks.assessments.renal import RenalAssessment, assess_renal_function
from hooks.call_cached import call_cached
from hooks.cards import Finding
from hooks.facts.model import DoseEvent, LabResult, PatientFacts, censored_below
from hooks.fhir_read import DAYS_PER_UNIT, days_between
from hooks.knowledge import Knowledge
from hooks.orders import BoneAgentOrder

MONTH_UNITS = frozenset({"mo", "a"})


def below(value: float, limit: float) -> bool:
    """Value < limit, ignoring float noise from unit conversion (132.6 umol/L is exactly 1.5
    mg/dL)."""
    return value < limit - 1e-9


def at_least(value: float, limit: float) -> bool:
    return not below(value, limit)


def minimum_days(every: Iterable[Any], grace_days: float) -> float:
    """A minimum interval in days; minimums written in months or years are met `grace_days`
    early."""
    period, unit = every
    days = period * DAYS_PER_UNIT[unit]
    return days - grace_days if unit in MONTH_UNITS else days


def course_of(doses: list[DoseEvent], now: datetime, gap_days: int) -> list[DoseEvent]:
    """The doses (newest first) of the course running up to now: a longer gap than `gap_days` ends
    the search."""
    course: list[DoseEvent] = []
    later = now
    for dose in doses:
        if (later - dose.when).days > gap_days:
            break
        course.append(dose)
        later = dose.when
    return course


def order_kinds(order: BoneAgentOrder, knowledge: Knowledge) -> frozenset[str]:
    """The kinds of order (knowledge file `applies_to`) this order is; a bisphosphonate whose route
    is unknown counts as parenteral, the stricter reading."""
    bisphosphonate = knowledge.ingredient_class[order.ingredient] == "bisphosphonate"
    return frozenset(
        {
            "any",
            "bisphosphonate" if bisphosphonate else "denosumab",
            "oral-bisphosphonate" if bisphosphonate and order.is_oral else "parenteral",
        }
    )


def kinds_in_scope(
    order: BoneAgentOrder, kinds: frozenset[str], scopes: Iterable[str], only_for: Iterable[str]
) -> bool:
    """Whether a rule written for these kinds of order (knowledge file `applies_to`) concerns an
    order of `kinds` (`order_kinds`), and, when the rule names ingredients or formulations
    (`only_for`), whether the order is of one of them."""
    named = only_for if isinstance(only_for, frozenset) else frozenset(only_for)
    if (
        named
        and order.ingredient not in named
        and (order.formulation is None or order.formulation.id not in named)
    ):
        return False
    return not kinds.isdisjoint(scopes)


def rule_error(rule_id: str, order: BoneAgentOrder) -> Finding:
    """The card of an order rule that could not be completed: the hazard was not checked, never
    silence."""
    return Finding(
        "rule-error",
        "warning",
        f"Safety check {rule_id} could not be completed for {order.ingredient_display}: check it"
        " manually",
        f"An internal error stopped the `{rule_id}` check for {order.describe()}. The order was"
        " **not** checked for this hazard; please review it by hand. The error has been logged for"
        " the service's maintainers.",
        (),
        (),
        order.reference,
    )


def matches_regimen(entry: dict[str, Any], order: BoneAgentOrder) -> bool:
    """Whether a regimen-table entry (formulation or ingredient, route, dose range) describes this
    order."""
    if "formulation" in entry and (
        order.formulation is None or order.formulation.id != entry["formulation"]
    ):
        return False
    if "ingredient" in entry and order.ingredient != entry["ingredient"]:
        return False
    if "route" in entry and order.route != entry["route"]:
        return False
    if "dose_mg_range" in entry:
        dose = (
            order.dose_mg
            if order.dose_mg is not None
            else (order.product.strength_mg if order.product else None)
        )
        low, high = entry["dose_mg_range"]
        if dose is None or not low <= dose <= high:
            return False
    return True


class PatientAssessments:
    """Menopausal status and bone-loss indication, worked out once per request from `facts` and
    `knowledge` (shared by the order rules and the patient-view review)."""

    facts: PatientFacts
    knowledge: Knowledge

    @call_cached
    def menopause(self) -> MenopausalStatus:
        return self.facts.remember(
            ("menopause",), lambda: menopausal_status(self.facts, self.knowledge)
        )

    @call_cached
    def bone_loss(self) -> BoneLossAssessment:
        return self.facts.remember(
            ("bone-loss",), lambda: assess_bone_loss(self.facts, self.knowledge)
        )


@dataclass
class OrderContext(PatientAssessments):
    order: BoneAgentOrder
    facts: PatientFacts
    knowledge: Knowledge
    patient_reference: str
    user_reference: str | None
    now: datetime
    other_orders: tuple[BoneAgentOrder, ...] = ()
    checks: tuple[str, ...] = ()
    reported_unavailable: set[str] = field(default_factory=set)
    # Rules that fired, or that could decide although some data they use was unavailable (the
    # completeness card skips them).
    decided: set[str] = field(default_factory=set)
    # order-select: the order may not say its dose or timing yet, so rules skip what it does not say
    tolerant: bool = False
    rule_id: str = ""  # the rule running now (set by the rule loop); its findings carry this id
    # Values derived from this order that modules above this one work out (the renal label band),
    # each once per context: several rules and the suggestion gate ask.
    derived: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def remember(self, key: str, compute: Callable[[], Any]) -> Any:
        """`derived[key]`, computed by `compute()` the first time this context asks."""
        if key not in self.derived:
            self.derived[key] = compute()
        return self.derived[key]

    def threshold(self, name: str):
        return self.knowledge.threshold(name)

    @property
    def setting(self) -> str:
        return self.facts.setting.name

    def setting_line(self) -> str:
        return f"- Clinical setting: {self.facts.setting.name} ({self.facts.setting.evidence})."

    def in_scope(self, rule_id: str) -> bool:
        # A rule the knowledge does not list raises KeyError here, inside the rule loop's guard.
        return self._rules_in_scope[rule_id]

    @call_cached
    def _rules_in_scope(self) -> dict[str, bool]:
        """Whether each rule of the knowledge concerns this order: worked out once per knowledge
        for each kind, ingredient and formulation of order (every rule asks, for every order and
        every trial of the suggestion gate)."""
        order, kinds, knowledge = self.order, self._order_kinds, self.knowledge
        formulation = order.formulation.id if order.formulation else None
        return knowledge.recognised(
            "rules in scope",
            [sorted(kinds), order.ingredient, formulation],
            lambda: {
                rule_id: kinds_in_scope(order, kinds, *knowledge.rule_scope(rule_id))
                for rule_id in knowledge.raw["rules"]
            },
        )

    @call_cached
    def _order_kinds(self) -> frozenset[str]:
        return order_kinds(self.order, self.knowledge)

    def rule_failed(self, rule_id: str) -> Finding:
        return rule_error(rule_id, self.order)

    @property
    def is_bisphosphonate(self) -> bool:
        return self.knowledge.ingredient_class[self.order.ingredient] == "bisphosphonate"

    @property
    def label_source(self) -> str | None:
        """The ordered product's own label, when the knowledge file knows it."""
        return self.order.formulation.label_source if self.order.formulation else None

    def days_since(self, moment: datetime) -> int:
        return days_between(moment, self.now)

    @call_cached
    def creatinine_window_days(self) -> int:
        """30 days before a parenteral bisphosphonate dose (or when the route is unknown), a year
        for oral bisphosphonates, 180 days for denosumab (no renal dose adjustment;
        renal-data-missing asks for 30 days in severe renal impairment)."""
        if self.order.ingredient == "denosumab":
            name = "creatinine_max_age_days_denosumab"
        elif self.order.is_oral:
            name = "creatinine_max_age_days_oral"
        else:
            name = "creatinine_max_age_days_parenteral"
        return self.threshold(name)

    @call_cached
    def recent_creatinine(self) -> LabResult | None:
        return self.facts.latest("creatinine", self.creatinine_window_days)

    @call_cached
    def current_renal(self) -> RenalAssessment:
        return assess_renal_function(
            self.facts,
            self.recent_creatinine,
            self.threshold("weight_max_age_days"),
            self.creatinine_window_days,
            current=True,
        )

    @call_cached
    def calcium(self) -> CalciumReading | None:
        """Latest (corrected where possible) calcium within the calcium rules' window."""
        return self.facts.remember(
            ("calcium",),
            lambda: latest_calcium(
                self.facts,
                self.knowledge,
                self.knowledge.thresholds["calcium_low"]["max_age_days"],
            ),
        )

    @call_cached
    def ionized_calcium(self) -> LabResult | None:
        return self.facts.latest(
            "calcium_ionized", self.knowledge.thresholds["calcium_low"]["max_age_days"]
        )

    @call_cached
    def low_vitamin_d(self) -> LabResult | None:
        """The latest 25-OH vitamin D within the window when it is below the limit (compared in the
        unit reported)."""
        limits = self.knowledge.thresholds["vitamin_d_low"]
        result = self.facts.latest("vitamin_d", limits["max_age_days"])
        if result is None:
            return None
        molar = result.recorded_unit in ("nmol/L", "nmol/l")
        value, limit = (
            (result.recorded_value, limits["nmol_l"]) if molar else (result.value, limits["ng_ml"])
        )
        # a bound must decide it
        return result if censored_below(value, result.comparator, limit) is True else None

    @call_cached
    def course_doses(self) -> list[DoseEvent]:
        """Earlier doses of the ordered ingredient in the current course, newest first."""
        return course_of(
            self.facts.doses_of(self.order.ingredient), self.now, self.threshold("course_gap_days")
        )

    @property
    def first_dose_of_course(self) -> bool:
        """No earlier dose of the ordered ingredient within the course gap (catalog "Definitions"):
        the rules marked "first dose of a course" stay quiet on later doses."""
        return not self.course_doses

    @call_cached
    def course_start(self) -> DoseEvent | None:
        return self.course_doses[-1] if self.course_doses else None

    @call_cached
    def last_dose(self) -> DoseEvent | None:
        """The most recent earlier dose of the ordered ingredient, in or out of the current
        course."""
        doses = self.facts.doses_of(self.order.ingredient)
        return doses[0] if doses else None

    @call_cached
    def baseline_creatinine(self) -> tuple[LabResult, str] | None:
        """Last creatinine before the course started, else the earliest within the look-back window,
        with which one."""
        start = self.course_start
        results = self.facts.results("creatinine")
        if start is not None:
            before = next((r for r in results if r.when < start.when), None)
            if before is not None:
                return (
                    before,
                    (
                        "last value before the first dose of this course"
                        f" ({start.when.date().isoformat()})"
                    ),
                )
        lookback = self.threshold("renal_deterioration")["baseline_lookback_days"]
        window = [r for r in results if (self.now - r.when).days <= lookback]
        if window:
            return (
                window[-1],
                (
                    f"earliest value in the last {lookback // 365} years (no value before the"
                    " course start)"
                ),
            )
        return None
