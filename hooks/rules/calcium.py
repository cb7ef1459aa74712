"""Calcium and vitamin D rules: low calcium, calcium not measured, denosumab in severe renal impairment, supplements."""
from __future__ import annotations

from hooks.cards import Finding
from hooks.facts import is_hypercalcemic
from hooks.fhir_read import format_number
from hooks.rules.common import finding, unavailable_line
from hooks.rules.context import OrderContext, below
from hooks.suggestions import delete_draft, order_observation, prescribe_supplement


def _below_text(value: float, limit: float) -> str:
    """A value found below a limit, shown with enough digits not to read as the limit itself (8.496, not 8.5)."""
    for digits in (2, 3, 4):
        text = format_number(value, digits)
        if below(float(text), limit):
            return text
    return f"{value:g}"


def calcium_low(ctx: OrderContext) -> Finding | None:
    """Corrected (or, without albumin, total) calcium or ionized calcium below the label's limit within the window."""
    limits = ctx.threshold("calcium_low")
    order, reading, ionized = ctx.order, ctx.calcium, ctx.ionized_calcium
    if reading is not None and ionized is not None and reading.when.date() != ionized.when.date():
        # A later calcium of the other kind shows the current level; only same-day results are judged together.
        reading, ionized = (reading, None) if reading.when > ionized.when else (None, ionized)
    low: list[str] = []
    if reading is not None and reading.below(limits):
        low.append(f"{reading.explanation}: below {format_number(reading.limit(limits), 2)} {reading.unit}.")
    if ionized is not None and below(ionized.value, limits["ionized_mmol_l"]):
        low.append(f"Ionized calcium {ionized.shown(3)}: below {limits['ionized_mmol_l']:g} mmol/L.")
    if not low:
        return None
    risk = ("Denosumab can cause severe, sometimes fatal, hypocalcemia; the label requires pre-existing hypocalcemia "
            "to be corrected before the first dose." if order.ingredient == "denosumab" else
            "The labels contraindicate bisphosphonates in hypocalcemia: correct calcium (and vitamin D) first, then "
            "re-check before giving.")
    lines = [f"**Do not give {order.describe()} until calcium is corrected.**", "", *(f"- {line}" for line in low), "", risk]
    if reading is not None and not reading.corrected:
        lines.append("The total calcium could not be corrected for albumin; an albumin drawn with the calcium would confirm the level.")
    shown = (f"Calcium {_below_text(reading.value, reading.limit(limits))} {reading.unit}"
             if reading is not None and reading.below(limits) else
             f"Ionized calcium {_below_text(ionized.value, limits['ionized_mmol_l'])} mmol/L")
    return finding(ctx, "calcium-low", "critical", f"{shown} is low: correct it before {order.ingredient_display}",
                   lines, sources=[ctx.label_source], suggestions=[delete_draft(order, "Remove this order")])


def calcium_data_missing(ctx: OrderContext) -> Finding | None:
    """IV bisphosphonate or denosumab with no calcium in the window: offer calcium and albumin."""
    window = ctx.threshold("calcium_low")["max_age_days"]
    facts, order = ctx.facts, ctx.order
    unavailable = facts.is_unavailable("calcium")
    problems: list[str] = []
    if unavailable:
        problems.append(unavailable_line("Calcium results", unavailable))
    elif ctx.calcium is None and ctx.ionized_calcium is None:
        older = facts.latest("calcium_total") or facts.latest("calcium_corrected")
        for kind in ("calcium_total", "calcium_corrected", "calcium_ionized"):
            for u in facts.unreadable.get(kind, []):
                if u.when and ctx.days_since(u.when) <= window:
                    problems.append(f"- A calcium result from {u.when.date().isoformat()} cannot be used: {u.reason}"
                                    f"{f' ({u.recorded_unit!r})' if u.recorded_unit else ''}.")
        problems.append(f"- No serum calcium within the last {window} days"
                        + (f"; the latest is {older.shown()}." if older else "; none on record."))
    else:
        return None
    why = ("Denosumab can cause severe hypocalcemia; calcium must be known (and corrected) before each dose."
           if order.ingredient == "denosumab" else
           "Hypocalcemia must be excluded before an IV bisphosphonate; albumin lets calcium be corrected.")
    what = "Calcium could not be checked" if unavailable else "Calcium not documented"
    lines = [f"**{what}** before {order.describe()}.", "", *problems, "", why]
    reason = f"Calcium before {order.describe()}"
    suggestions = [order_observation(ctx.knowledge, orderable, ctx.patient_reference, ctx.user_reference, ctx.now, reason)
                   for orderable in ("serum-calcium", "serum-albumin")]
    return finding(ctx, "calcium-data-missing", "warning", f"{what} before {order.ingredient_display}: order calcium and albumin",
                   lines, sources=[ctx.label_source], suggestions=suggestions, reports=["calcium"])


def denosumab_renal_hypocalcemia(ctx: OrderContext) -> Finding | None:
    """Denosumab with clearance or eGFR below the limit, or on dialysis: severe hypocalcemia risk, check calcium soon."""
    limit = ctx.threshold("denosumab_severe_renal_impairment_ml_min")
    facts = ctx.facts
    reasons: list[str] = []
    function = ctx.current_renal.function
    if function is not None and below(function.value, limit):
        reasons.append(f"- {function.working()}")
    egfr = facts.latest("egfr", ctx.creatinine_window_days)
    if egfr is not None and below(egfr.value, limit) and (function is None or function.is_clearance):
        reasons.append(f"- eGFR {egfr.shown()}.")
    reasons += [f"- On dialysis: {c.label}." for c in facts.conditions_in("dialysis", active_only=True)]
    if not reasons:
        return None
    days = ctx.threshold("denosumab_calcium_check_within_days")
    lines = [f"**{ctx.order.describe()}** in severe renal impairment (below {limit} mL/min) or dialysis.", "", *reasons, "",
             "Denosumab needs no renal dose change, but patients with severe renal impairment or on dialysis are at "
             "greater risk of severe hypocalcemia. Make sure calcium and vitamin D are supplemented and check calcium "
             f"within {days} days of the dose (weekly in the first month after a Prolia dose, per its boxed warning)."]
    suggestion = order_observation(ctx.knowledge, "serum-calcium", ctx.patient_reference, ctx.user_reference, ctx.now,
                                   "Hypocalcemia monitoring after denosumab in severe renal impairment", within_days=days)
    return finding(ctx, "denosumab-renal-hypocalcemia", "warning",
                   "Denosumab in severe renal impairment: high risk of hypocalcemia, check calcium within "
                   f"{days} days", lines, sources=[ctx.label_source], suggestions=[suggestion])


def supplements_missing(ctx: OrderContext) -> Finding | None:
    """No active calcium or vitamin D order for a patient starting or continuing a bone agent (never calcium if hypercalcemic)."""
    facts, order, knowledge = ctx.facts, ctx.order, ctx.knowledge
    if facts.is_unavailable("medications"):
        return None  # unknown is not missing: the completeness card says the medication list could not be read
    hypercalcemic, _why = is_hypercalcemic(facts, knowledge)
    if hypercalcemic or ctx.setting == "hypercalcemia-of-malignancy":
        return None
    missing = [name for name in ("calcium", "vitamin-d") if not facts.active_medications(name)]
    if not missing:
        return None
    low_vitamin_d = ctx.low_vitamin_d
    reason = f"Supplement during {order.ingredient_display} therapy"
    suggestions = []
    lines = [f"**{order.describe()}**: no active order for "
             f"{' or '.join({'calcium': 'calcium', 'vitamin-d': 'vitamin D'}[m] for m in missing)} on record.", ""]
    if "calcium" in missing:
        suggestions.append(prescribe_supplement(knowledge, "calcium", ctx.patient_reference, ctx.user_reference, ctx.now, reason))
    if "vitamin-d" in missing:
        if low_vitamin_d is not None:
            lines.append(f"- Vitamin D is low ({low_vitamin_d.shown()}): see the separate card for repletion.")
        else:
            suggestions.append(prescribe_supplement(knowledge, "vitamin-d", ctx.patient_reference, ctx.user_reference,
                                                    ctx.now, reason))
    if order.ingredient == "denosumab":
        lines.append("The denosumab labels require calcium and vitamin D supplements to prevent hypocalcemia "
                     "(unless the patient is hypercalcemic).")
    else:
        lines.append("Calcium (if dietary intake is insufficient, and only together with vitamin D3) and vitamin D3 are "
                     "recommended throughout bisphosphonate therapy.")
    lines.append("A combined calcium and vitamin D product covers both. If the patient takes supplements bought over the "
                 "counter, record them and dismiss this card.")
    indicator = "warning" if order.ingredient == "denosumab" else "info"
    names = " and ".join({"calcium": "calcium", "vitamin-d": "vitamin D"}[m] for m in missing)
    return finding(ctx, "supplements-missing", indicator, f"No {names} supplement on record for {order.ingredient_display}",
                   lines, sources=["ago-2024", ctx.label_source], suggestions=suggestions)


def vitamin_d_low(ctx: OrderContext) -> Finding | None:
    """25-OH vitamin D below the limit within the window (no level on record: no card)."""
    result = ctx.low_vitamin_d
    if result is None:
        return None
    limits = ctx.threshold("vitamin_d_low")
    lines = [f"**25-OH vitamin D {result.shown()}** is below {limits['ng_ml']:g} ng/mL ({limits['nmol_l']:g} nmol/L).", "",
             f"Replete vitamin D alongside {ctx.order.describe()}: deficiency adds to the risk of hypocalcemia under "
             "bone-modifying agents. Choose the repletion dose per local protocol, then continue vitamin D3 800 IU daily."]
    suggestion = prescribe_supplement(ctx.knowledge, "vitamin-d-repletion", ctx.patient_reference, ctx.user_reference,
                                      ctx.now, f"25-OH vitamin D {result.shown()}")
    molar = result.recorded_unit in ("nmol/L", "nmol/l")
    factor = ctx.knowledge.unit_factor("vitamin_d_to_ng_ml", result.recorded_unit) or 1.0
    shown = _below_text(result.recorded_value, limits["nmol_l"] if molar else limits["ng_ml"] / factor)
    return finding(ctx, "vitamin-d-low", "warning", f"Vitamin D low ({shown} {result.recorded_unit}): replete it", lines,
                   suggestions=[suggestion])
