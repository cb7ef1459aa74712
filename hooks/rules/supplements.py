"""Calcium and vitamin D supplement rules: supplements-missing and vitamin-d-low."""

from __future__ import annotations

from dataclasses import dataclass

from hooks.assessments.calcium import latest_calcium
from hooks.cards import Finding, Suggestion
from hooks.facts.model import MedicationFact
from hooks.fhir_read import format_number
from hooks.rules.calcium import below_text
from hooks.rules.common import finding
from hooks.rules.context import OrderContext
from hooks.rules.rule import rule
from hooks.supplement_orders import (
    calcium_order,
    calcium_regimen,
    calcium_spacing_text,
    vitamin_d_basis,
    vitamin_d_order,
    vitamin_d_repletion_order,
    vitamin_d_words,
)


@dataclass(frozen=True)
class CalciumDecision:
    """Whether a calcium supplement may be suggested now, and the detail line that says why."""

    allowed: bool
    pending: bool
    line: str
    reports: tuple[str, ...] = ()


def calcium_supplement_decision(ctx: OrderContext) -> CalciumDecision:
    """Calcium only after a calcium result within the window below the upper limit (albumin-
    corrected, else the uncorrected total, said so) and without an active hypercalcemia
    diagnosis."""
    facts, knowledge = ctx.facts, ctx.knowledge
    limits = ctx.threshold("calcium_high_for_supplements")
    window = limits["max_age_days"]
    upper = f"{limits['corrected_mg_dl']:g} mg/dL ({limits['corrected_mmol_l']:g} mmol/L)"
    diagnoses = facts.conditions_in("hypercalcemia", active_only=True)
    if diagnoses:
        return CalciumDecision(
            False, False, f"- No calcium: active hypercalcemia diagnosis ({diagnoses[0].label})."
        )
    unavailable = facts.is_unavailable("calcium")
    if unavailable:
        return CalciumDecision(
            False,
            True,
            "- Calcium pending: calcium results could not be "
            f"retrieved from the EHR ({unavailable}); add calcium "
            f"once a result below {upper} is known.",
            ("calcium",),
        )
    reading = latest_calcium(facts, knowledge, window)
    if reading is None:
        return CalciumDecision(
            False,
            True,
            "- Calcium pending: calcium waits for a calcium "
            "result. There is no serum calcium within the last "
            f"{window} days; add calcium once a result below the "
            f"upper limit of {upper} is known.",
        )
    limit = f"{format_number(reading.limit(limits), 2)} {reading.unit}"
    if reading.at_least(limits):
        return CalciumDecision(
            False,
            False,
            "- No calcium: the latest calcium is at or above the "
            f"upper limit of {limit} ({reading.explanation}).",
        )
    if not reading.below(limits):
        return CalciumDecision(
            False,
            True,
            "- Calcium pending: the latest calcium is a censored "
            f"value ({reading.explanation}) that cannot tell whether "
            f"it is below the upper limit of {limit}; add calcium "
            "once a measured result below it is known.",
        )
    uncorrected = "" if reading.corrected else "; the uncorrected total calcium is compared with it"
    return CalciumDecision(
        True,
        False,
        "- Calcium may be given: the latest calcium is below the "
        f"upper limit of {limit} ({reading.explanation}"
        f"{uncorrected}).",
    )


def _oral_bisphosphonate_on_record(medication: MedicationFact, ctx: OrderContext) -> bool:
    knowledge, agent = ctx.knowledge, medication.bone_agent
    if not medication.current or agent is None:
        return False
    if knowledge.ingredient_class.get(agent) != "bisphosphonate":
        return False
    route_text = medication.route_text.strip()
    if not route_text:
        return knowledge.ingredient_default_route.get(agent) == "oral"
    return any(
        route == "oral"
        for text, route in knowledge.route_by_text.items()
        if text == route_text or (len(text) > 3 and text in route_text)
    )


def oral_bisphosphonates(ctx: OrderContext) -> list[str]:
    """Oral bisphosphonates ordered now (the order checked) or current on record, by ingredient."""
    found = [ctx.order.ingredient] if ctx.order.is_oral and ctx.is_bisphosphonate else []
    found += [
        m.bone_agent
        for m in ctx.facts.medications
        if m.bone_agent and _oral_bisphosphonate_on_record(m, ctx)
    ]
    return list(dict.fromkeys(found))


@rule("supplements-missing")
def supplements_missing(ctx: OrderContext) -> Finding | None:
    """No current calcium or vitamin D order: suggest vitamin D, and calcium once a recent calcium
    result is below the upper limit (never in hypercalcemia), each on the bone agent's regimen.

    No card in hypercalcemia of malignancy, nor when there is nothing to order yet.
    """
    facts, order, knowledge = ctx.facts, ctx.order, ctx.knowledge
    if facts.is_unavailable("medications"):
        return None  # unknown is not missing: the completeness card says the list could not be read
    if ctx.setting == "hypercalcemia-of-malignancy":
        return None
    missing = [name for name in ("calcium", "vitamin-d") if not facts.active_medications(name)]
    if not missing:
        return None
    reason = f"Supplement during {order.ingredient_display} therapy"
    suggestions: list[Suggestion] = []
    sources: list[str] = ["ago-2024"]
    names = " and ".join({"calcium": "calcium", "vitamin-d": "vitamin D"}[m] for m in missing)
    lines = [
        f"**{order.describe()}**: no active order for {names.replace(' and ', ' or ')} on record.",
        "",
    ]
    decision = None
    if "calcium" in missing:
        decision = calcium_supplement_decision(ctx)
        lines.append(decision.line)
        if decision.allowed:
            regimen = calcium_regimen(knowledge, order, ctx.setting)
            spacing = calcium_spacing_text(knowledge, oral_bisphosphonates(ctx))
            suggestions.append(
                calcium_order(
                    knowledge,
                    regimen,
                    ctx.patient_reference,
                    ctx.user_reference,
                    ctx.now,
                    reason,
                    spacing,
                )
            )
            intake = ", if dietary intake is insufficient" if regimen.if_intake_insufficient else ""
            lines.append(
                f"- Calcium {regimen.words()} by mouth{intake}, at most "
                f"{regimen.dose_mg:g} mg elemental calcium a dose: {regimen.basis}."
            )
            if spacing:
                lines.append(f"- {spacing}")
            sources += regimen.sources
    if "vitamin-d" in missing:
        if ctx.low_vitamin_d is not None:
            lines.append(
                f"- Vitamin D is low ({ctx.low_vitamin_d.shown()}): see the separate card "
                "for repletion."
            )
        else:
            basis, vitamin_sources = vitamin_d_basis(knowledge)
            suggestions.append(
                vitamin_d_order(
                    knowledge, ctx.patient_reference, ctx.user_reference, ctx.now, reason
                )
            )
            lines.append(f"- Vitamin D3 {vitamin_d_words(knowledge)} by mouth: {basis}.")
            sources += vitamin_sources
    if not suggestions:
        return None  # nothing to order yet: the calcium and vitamin D cards say what comes first
    lines.append("")
    if order.ingredient == "denosumab":
        lines.append(
            "The denosumab labels require calcium and vitamin D supplements to prevent "
            "hypocalcemia (unless the patient is hypercalcemic)."
        )
    else:
        lines.append(
            "Calcium (if dietary intake is insufficient, and only together with vitamin "
            "D3) and vitamin D3 are recommended throughout bisphosphonate therapy."
        )
    lines.append(
        "A combined calcium and vitamin D product covers both. If the patient takes "
        "supplements bought over the counter, record them and dismiss this card."
    )
    indicator = "warning" if order.ingredient == "denosumab" else "info"
    pending = "; calcium waits for a calcium result" if decision and decision.pending else ""
    return finding(
        ctx,
        indicator,
        f"No {names} supplement on record for {order.ingredient_display}{pending}",
        lines,
        sources=[*sources, ctx.label_source],
        suggestions=suggestions,
        reports=decision.reports if decision else (),
    )


@rule("vitamin-d-low")
def vitamin_d_low(ctx: OrderContext) -> Finding | None:
    """25-OH vitamin D below the limit within the window (no level on record: no card)."""
    result = ctx.low_vitamin_d
    if result is None:
        return None
    limits = ctx.threshold("vitamin_d_low")
    lines = [
        (
            f"**25-OH vitamin D {result.shown()}** is below {limits['ng_ml']:g} ng/mL"
            f" ({limits['nmol_l']:g} nmol/L)."
        ),
        "",
        (
            f"Replete vitamin D alongside {ctx.order.describe()}: deficiency adds to the risk of"
            " hypocalcemia under bone-modifying agents. Choose the repletion dose per local"
            " protocol, then continue vitamin D3 800 IU daily."
        ),
    ]
    suggestion = vitamin_d_repletion_order(
        ctx.knowledge,
        ctx.patient_reference,
        ctx.user_reference,
        ctx.now,
        f"25-OH vitamin D {result.shown()}",
    )
    if suggestion is None:
        lines += [
            "",
            (
                "No one-click order: the sources give no repletion regimen, and this site has not"
                " set one (dose, interval and duration) in the knowledge file."
            ),
        ]
    molar = result.recorded_unit in ("nmol/L", "nmol/l")
    factor = ctx.knowledge.unit_factor("vitamin_d_to_ng_ml", result.recorded_unit) or 1.0
    shown = below_text(
        result.recorded_value, limits["nmol_l"] if molar else limits["ng_ml"] / factor
    )
    return finding(
        ctx,
        "warning",
        f"Vitamin D low ({result.bound}{shown} {result.recorded_unit}): replete it",
        lines,
        suggestions=[suggestion],
    )
