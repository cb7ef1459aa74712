"""Calcium and vitamin D rules: low calcium, calcium not measured, denosumab in severe renal
impairment, supplements."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from hooks.assessments.calcium import CalciumReading, latest_calcium
from hooks.assessments.renal import on_dialysis
from hooks.cards import Finding, Suggestion
from hooks.facts.groups import group_name
from hooks.facts.model import MedicationFact
from hooks.fhir_read import format_number
from hooks.rules.common import finding, unavailable_line
from hooks.rules.context import OrderContext, below
from hooks.rules.rule import rule
from hooks.suggestions import delete_draft, order_observation
from hooks.supplement_orders import (
    calcium_order,
    calcium_regimen,
    calcium_spacing_text,
    vitamin_d_basis,
    vitamin_d_order,
    vitamin_d_repletion_order,
    vitamin_d_words,
)


def _below_text(value: float, limit: float) -> str:
    """A value found below a limit, shown with enough digits not to read as the limit itself (8.496,
    not 8.5)."""
    for digits in (2, 3, 4):
        text = format_number(value, digits)
        if below(float(text), limit):
            return text
    return f"{value:g}"


def _risk(ctx: OrderContext) -> str:
    if ctx.order.ingredient == "denosumab":
        return (
            "Denosumab can cause severe, sometimes fatal, hypocalcemia; the label requires "
            "pre-existing hypocalcemia to be corrected before the first dose."
        )
    return (
        "The labels contraindicate bisphosphonates in hypocalcemia: correct calcium (and "
        "vitamin D) first, then re-check before giving."
    )


def _lab_order(ctx: OrderContext, orderable: str, reason: str) -> Suggestion:
    """A lab order of the knowledge's orderables, labelled with the orderable's plain name."""
    suggestion = order_observation(
        ctx.knowledge, orderable, ctx.patient_reference, ctx.user_reference, ctx.now, reason
    )
    label = ctx.knowledge.raw["orderables"][orderable].get("label")
    return dataclasses.replace(suggestion, label=f"Order {label}") if label else suggestion


@rule("calcium-low")
def calcium_low(ctx: OrderContext) -> Finding | None:
    """Albumin-corrected or ionized calcium below the label's limit within the window: critical.

    A total calcium below the limit that could not be corrected for albumin, with no ionized calcium
    on the same day or later: a warning asking for albumin and ionized calcium (total calcium reads
    low when albumin is low).
    """
    limits = ctx.threshold("calcium_low")
    order, reading, ionized = ctx.order, ctx.calcium, ctx.ionized_calcium
    if reading is not None and ionized is not None:
        if not reading.corrected and ionized.when.date() >= reading.when.date():
            reading = None  # an ionized calcium with or after an uncorrected total shows the level
        elif reading.when.date() != ionized.when.date():
            # A later calcium of the other kind shows the current level; only same-day results are
            # judged together.
            reading, ionized = (reading, None) if reading.when > ionized.when else (None, ionized)
    low: list[str] = []
    if reading is not None and reading.corrected and reading.below(limits):
        low.append(
            f"{reading.explanation}: below {format_number(reading.limit(limits), 2)} "
            f"{reading.unit}."
        )
    if ionized is not None and below(ionized.value, limits["ionized_mmol_l"]):
        low.append(
            f"Ionized calcium {ionized.shown(3)}: below {limits['ionized_mmol_l']:g} mmol/L."
        )
    if not low:
        if reading is not None and not reading.corrected and reading.below(limits):
            return _uncorrected_calcium_low(ctx, reading, limits)
        return None
    lines = [
        f"**Do not give {order.describe()} until calcium is corrected.**",
        "",
        *(f"- {line}" for line in low),
        "",
        _risk(ctx),
    ]
    if reading is not None and reading.corrected and reading.below(limits):
        shown = f"Calcium {_below_text(reading.value, reading.limit(limits))} {reading.unit}"
    else:
        shown = f"Ionized calcium {_below_text(ionized.value, limits['ionized_mmol_l'])} mmol/L"
    return finding(
        ctx,
        "critical",
        f"{shown} is low: correct it before {order.ingredient_display}",
        lines,
        sources=[ctx.label_source],
        suggestions=[delete_draft(order, "Remove this order")],
    )


def _uncorrected_calcium_low(
    ctx: OrderContext, reading: CalciumReading, limits: dict[str, float]
) -> Finding:
    """A low total calcium without albumin: not a stop, since a low albumin lowers the total;
    albumin or an ionized calcium shows whether the patient is hypocalcemic."""
    order = ctx.order
    limit = reading.limit(limits)
    shown = f"{_below_text(reading.value, limit)} {reading.unit}"
    pairing = ctx.threshold("albumin_pairing_days")
    days = f"{pairing:g} day{'s' if pairing != 1 else ''}"
    lines = [
        f"**The calcium before {order.describe()} is low but not corrected for albumin.**",
        "",
        f"- {reading.explanation}: below {format_number(limit, 2)} {reading.unit}.",
        "- No ionized calcium on the same day or later.",
        "",
        (
            "Total calcium reads low when albumin is low, so this value alone does not show "
            f"hypocalcemia. An albumin drawn with a calcium (within {days}) gives the "
            "albumin-corrected calcium, and an ionized calcium measures the free calcium "
            "directly: either confirms or rules out hypocalcemia before the dose."
        ),
        "",
        f"If hypocalcemia is confirmed, correct it before the dose. {_risk(ctx)}",
    ]
    reason = f"Uncorrected total calcium {shown} before {order.describe()}"
    suggestions = [
        _lab_order(ctx, orderable, reason) for orderable in ("serum-albumin", "ionized-calcium")
    ]
    return finding(
        ctx,
        "warning",
        f"Uncorrected calcium {shown} is low: confirm with albumin or ionized calcium "
        f"before {order.ingredient_display}",
        lines,
        sources=[ctx.label_source],
        suggestions=suggestions,
    )


@rule("calcium-data-missing")
def calcium_data_missing(ctx: OrderContext) -> Finding | None:
    """IV bisphosphonate or denosumab with no calcium in the window: offer calcium and albumin."""
    window = ctx.threshold("calcium_low")["max_age_days"]
    facts, order = ctx.facts, ctx.order
    unavailable = facts.is_unavailable("calcium")
    problems: list[str] = []
    if unavailable:
        problems.append(unavailable_line(group_name("calcium"), unavailable))
    elif ctx.calcium is None and ctx.ionized_calcium is None:
        older = facts.latest("calcium_total") or facts.latest("calcium_corrected")
        for kind in ("calcium_total", "calcium_corrected", "calcium_ionized"):
            for u in facts.unreadable.get(kind, []):
                if u.when and ctx.days_since(u.when) <= window:
                    problems.append(
                        f"- A calcium result from {u.when.date().isoformat()} cannot be used:"
                        f" {u.reason}{f' ({u.recorded_unit!r})' if u.recorded_unit else ''}."
                    )
        problems.append(
            f"- No serum calcium within the last {window} days"
            + (f"; the latest is {older.shown()}." if older else "; none on record.")
        )
    else:
        problems = _censored_calcium(ctx)
        if not problems:
            return None
    why = (
        "Denosumab can cause severe hypocalcemia; calcium must be known (and corrected) before each"
        " dose."
        if order.ingredient == "denosumab"
        else (
            "Hypocalcemia must be excluded before an IV bisphosphonate; albumin lets calcium be"
            " corrected."
        )
    )
    censored = not unavailable and (ctx.calcium is not None or ctx.ionized_calcium is not None)
    what = (
        "Calcium could not be checked"
        if unavailable
        else "Calcium censored"
        if censored
        else "Calcium not documented"
    )
    lines = [f"**{what}** before {order.describe()}.", "", *problems, "", why]
    reason = f"Calcium before {order.describe()}"
    suggestions = [
        order_observation(
            ctx.knowledge, orderable, ctx.patient_reference, ctx.user_reference, ctx.now, reason
        )
        for orderable in ("serum-calcium", "serum-albumin")
    ]
    return finding(
        ctx,
        "warning",
        f"{what} before {order.ingredient_display}: order calcium and albumin",
        lines,
        sources=[ctx.label_source],
        suggestions=suggestions,
        reports=["calcium"],
    )


def _censored_calcium(ctx: OrderContext) -> list[str]:
    """The latest calcium is a censored value ('<9') that cannot decide the lower limit: say so
    (catalog: a bound decides a threshold only when every value it allows lies on one side)."""
    limits = ctx.threshold("calcium_low")
    reading, ionized = ctx.calcium, ctx.ionized_calcium
    lines = []
    if reading is not None and reading.comparator and reading.decide_below(limits) is None:
        limit = reading.limit(limits)
        lines.append(
            f"- The latest calcium is a censored value ({reading.explanation}): it cannot decide"
            f" the lower limit of {format_number(limit, 2)} {reading.unit}, so calcium-low was not"
            " judged on it."
        )
    if (
        ionized is not None
        and ionized.comparator
        and ionized.decide_below(limits["ionized_mmol_l"]) is None
    ):
        lines.append(
            f"- The latest ionized calcium is a censored value ({ionized.shown(3)}): it cannot"
            f" decide the lower limit of {limits['ionized_mmol_l']:g} mmol/L."
        )
    if reading is not None and ionized is not None and lines:
        # A usable result of the other kind decides the check: only report when neither can.
        reading_ok = not (reading.comparator and reading.decide_below(limits) is None)
        ionized_ok = not (
            ionized.comparator and ionized.decide_below(limits["ionized_mmol_l"]) is None
        )
        if reading_ok or ionized_ok:
            return []
    return lines


@rule("denosumab-renal-hypocalcemia")
def denosumab_renal_hypocalcemia(ctx: OrderContext) -> Finding | None:
    """Denosumab with clearance or eGFR below the limit, or on dialysis: severe hypocalcemia risk,
    check calcium soon."""
    limit = ctx.threshold("denosumab_severe_renal_impairment_ml_min")
    facts = ctx.facts
    reasons: list[str] = []
    function = ctx.current_renal.function
    dialysis = on_dialysis(facts)
    if function is not None and function.decide_below(limit) is True and not dialysis:
        reasons.append(f"- {function.working((limit,))}")
    egfr = facts.latest("egfr", ctx.creatinine_window_days)
    if (
        egfr is not None
        and egfr.decide_below(limit) is True
        and (function is None or function.is_clearance)
        and not dialysis
    ):
        reasons.append(f"- eGFR {egfr.shown().replace(' m²', ' m² (not CrCl)', 1)}.")
    reasons += [f"- On dialysis: {line}." for line in dialysis]
    if not reasons:
        return None
    days = ctx.threshold("denosumab_calcium_check_within_days")
    lines = [
        (
            f"**{ctx.order.describe()}** in severe renal impairment (below {limit} mL/min) or"
            " dialysis."
        ),
        "",
        *reasons,
        "",
        (
            "Denosumab needs no renal dose change, but patients with severe renal impairment or on"
            " dialysis are at greater risk of severe hypocalcemia. Make sure calcium and vitamin D"
            f" are supplemented and check calcium within {days} days of the dose (weekly in the"
            " first month after a Prolia dose, per its boxed warning)."
        ),
    ]
    suggestion = order_observation(
        ctx.knowledge,
        "serum-calcium",
        ctx.patient_reference,
        ctx.user_reference,
        ctx.now,
        "Hypocalcemia monitoring after denosumab in severe renal impairment",
        within_days=days,
    )
    if dialysis:
        named = "on dialysis"
    elif function is not None and function.decide_below(limit) is True:
        named = f"with {function.shown((limit,))}"
    else:
        assert egfr is not None  # the only other reason a line was written
        named = f"with eGFR {egfr.bound}{egfr.value:g} mL/min/1.73 m² (not CrCl)"
    return finding(
        ctx,
        "warning",
        f"Denosumab {named}: high risk of hypocalcemia, check calcium within {days} days",
        lines,
        sources=[ctx.label_source],
        suggestions=[suggestion],
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
    shown = _below_text(
        result.recorded_value, limits["nmol_l"] if molar else limits["ng_ml"] / factor
    )
    return finding(
        ctx,
        "warning",
        f"Vitamin D low ({result.bound}{shown} {result.recorded_unit}): replete it",
        lines,
        suggestions=[suggestion],
    )
