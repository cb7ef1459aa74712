"""Calcium and vitamin D rules: low calcium, calcium not measured, denosumab in severe renal
impairment, supplements."""

from __future__ import annotations

from hooks.assessments.calcium import CalciumReading
from hooks.assessments.renal import on_dialysis
from hooks.cards import Finding, Suggestion
from hooks.facts.groups import group_name
from hooks.facts.model import LabResult
from hooks.fhir_read import format_number
from hooks.rules.common import finding, unavailable_line
from hooks.rules.context import OrderContext, below
from hooks.rules.rule import rule
from hooks.suggestions import delete_draft, order_observation


def below_text(value: float, limit: float) -> str:
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
    """A lab order of the knowledge's orderables (labelled with the orderable's plain name)."""
    return order_observation(
        ctx.knowledge, orderable, ctx.patient_reference, ctx.user_reference, ctx.now, reason
    )


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
        shown = f"Calcium {below_text(reading.value, reading.limit(limits))} {reading.unit}"
    elif ionized is not None:
        shown = f"Ionized calcium {below_text(ionized.value, limits['ionized_mmol_l'])} mmol/L"
    else:  # each line of `low` is about one of the two
        raise RuntimeError("calcium-low with neither a low calcium nor a low ionized calcium")
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
    shown = f"{below_text(reading.value, limit)} {reading.unit}"
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
    """Denosumab with clearance or eGFR below the limit, or on dialysis: severe hypocalcemia risk.

    First dose of a course: the Prolia boxed-warning work-up (one order per test without a recent
    result) and calcium weekly in the first month; later doses: calcium monthly, nothing to order.
    """
    limit = ctx.threshold("denosumab_severe_renal_impairment_ml_min")
    reasons, named = _severe_renal_impairment(ctx, limit)
    if not reasons:
        return None
    workup = ctx.threshold("denosumab_ckd_mbd_workup")
    # on dialysis no clearance is the basis (catalog: the card does not present one)
    finding_line = (
        f"on dialysis, counted with severe renal impairment (below {limit:g} mL/min)."
        if named == "on dialysis"
        else f"{named}: severe renal impairment (below {limit:g} mL/min)."
    )
    lines = [
        f"**{ctx.order.describe()}** {finding_line}",
        "",
        *reasons,
        "",
        "Denosumab needs no renal dose change, but in severe renal impairment and on dialysis the"
        " risk of severe, sometimes fatal, hypocalcemia is higher. Keep calcium and vitamin D"
        " supplements running and correct a low calcium before the dose.",
        "",
    ]
    if ctx.course_doses:
        last = ctx.course_doses[0].when.date().isoformat()
        lines.append(
            f"Later dose of the course (last denosumab dose {last}): check {workup['later_doses']}."
        )
        return finding(
            ctx,
            "warning",
            f"Denosumab {named}: high risk of hypocalcemia, check {workup['later_doses']}",
            lines,
            sources=[ctx.label_source, "prolia-label"],
        )
    days = workup["result_max_age_days"]
    reason = f"CKD-mineral and bone disorder work-up before denosumab {named}"
    suggestions: list[Suggestion] = []
    fresh: list[str] = []
    missing: list[str] = []
    for test in workup["tests"]:
        latest = _latest_result(ctx, test["results"], days)
        if latest is not None:
            fresh.append(f"{test['name']}: {latest.shown()}")
            continue
        missing.append(test["name"])
        suggestions += [_lab_order(ctx, orderable, reason) for orderable in test["orderables"]]
    monitoring = workup["calcium_monitoring"]
    start = ctx.order.starts if ctx.order.starts and ctx.order.starts > ctx.now else ctx.now
    series = f"{_every(monitoring)} x {monitoring['count']} from {start.date().isoformat()}"
    weekly = order_observation(  # labelled "Order serum calcium weekly x 4 from <date>"
        ctx.knowledge,
        "serum-calcium",
        ctx.patient_reference,
        ctx.user_reference,
        ctx.now,
        f"Calcium after denosumab {named}",
        repeat=(
            start,
            {
                "frequency": monitoring["frequency"],
                "period": monitoring["period"],
                "periodUnit": monitoring["period_unit"],
                "count": monitoring["count"],
            },
            series,
        ),
    )
    suggestions.append(weekly)
    gap = ctx.threshold("course_gap_days")
    lines += [
        f"First dose of a course (no denosumab dose in the last {gap} days):",
        "- Before the dose, evaluate for CKD-mineral and bone disorder (calcium with albumin,"
        " phosphate, intact PTH, 25-OH vitamin D).",
        *(f"  - Within {days} days: {line}." for line in fresh),
    ]
    if missing:
        lines.append(f"  - No result within {days} days: {', '.join(missing)} (ordered below).")
    unavailable = [g for g in ("calcium", "vitamin_d") if ctx.facts.is_unavailable(g)]
    lines += [
        f"  {unavailable_line(group_name(g), ctx.facts.is_unavailable(g) or '')}"
        for g in unavailable
    ]
    lines.append(f"- After the dose: calcium {series}, then {workup['later_doses']}.")
    return finding(
        ctx,
        "warning",
        f"Denosumab {named}: high risk of hypocalcemia; work-up before the first dose, then"
        f" calcium {_every(monitoring)}",
        lines,
        sources=[ctx.label_source, "prolia-label"],
        suggestions=suggestions,
        reports=unavailable,
    )


def _severe_renal_impairment(ctx: OrderContext, limit: float) -> tuple[list[str], str]:
    """The evidence lines for CrCl or eGFR below the limit, or dialysis, and how the summary names
    it ('with CrCl 24.3 mL/min', 'with eGFR 22 mL/min/1.73 m² (not CrCl)', 'on dialysis')."""
    facts = ctx.facts
    function = ctx.current_renal.function
    dialysis = on_dialysis(facts)
    if dialysis:
        return [f"- On dialysis: {line}." for line in dialysis], "on dialysis"
    reasons: list[str] = []
    named = ""
    if function is not None and function.decide_below(limit) is True:
        reasons.append(f"- {function.working((limit,))}")
        named = f"with {function.shown((limit,))}"
    egfr = facts.latest("egfr", ctx.creatinine_window_days)
    if (
        egfr is not None
        and egfr.decide_below(limit) is True
        and (function is None or function.is_clearance)
    ):
        reasons.append(f"- eGFR {egfr.shown().replace(' m²', ' m² (not CrCl)', 1)}.")
        named = named or f"with eGFR {egfr.bound}{egfr.value:g} mL/min/1.73 m² (not CrCl)"
    return reasons, named


def _latest_result(ctx: OrderContext, kinds: list[str], days: int) -> LabResult | None:
    """The newest result of these kinds within `days`; None also when their group could not be
    retrieved (unknown is not recent)."""
    found = [
        result
        for kind in kinds
        if not ctx.facts.is_unavailable("vitamin_d" if kind == "vitamin_d" else "calcium")
        and (result := ctx.facts.latest(kind, days)) is not None
    ]
    return max(found, key=lambda r: r.when, default=None)


def _every(monitoring: dict) -> str:
    """'weekly' for once every week, else 'every 2 wk' (the knowledge's calcium monitoring)."""
    words = {"d": "daily", "wk": "weekly", "mo": "monthly"}
    if monitoring["frequency"] == 1 and monitoring["period"] == 1:
        return words[monitoring["period_unit"]]
    return f"{monitoring['frequency']}x every {monitoring['period']:g} {monitoring['period_unit']}"
