"""Regimen rules: interval, schedule for bone metastases, adjuvant duration, infusion time, dose,
oral regimens, duplicates."""

from __future__ import annotations

from typing import Any

from hooks.assessments.calcium import latest_calcium
from hooks.cards import Finding, Suggestion
from hooks.fhir_read import format_number, shift_months
from hooks.rules.common import finding
from hooks.rules.context import OrderContext, course_of, matches_regimen, minimum_days
from hooks.rules.intervals import interval_grace, label_interval_days, rule_regimen_entry
from hooks.rules.rule import rule
from hooks.suggestions import (
    delete_draft,
    every_words,
    regimen_entry,
    replace_draft_regimen,
    update_draft_dose,
    update_draft_infusion,
    update_draft_timing,
)


@rule("metastatic-schedule-inappropriate")
def metastatic_schedule_inappropriate(ctx: OrderContext) -> Finding | None:
    """Bone metastases treated with an adjuvant or osteoporosis regimen instead of an oncology
    schedule."""
    if ctx.setting != "bone-metastatic":
        return None
    order = ctx.order
    table = ctx.threshold("metastatic_inappropriate_regimens")
    entry = None
    for candidate in table["entries"]:
        if not matches_regimen(candidate, order):
            continue
        floor = candidate.get("every_at_least")
        if floor and (
            order.interval is None
            or order.interval.days < minimum_days(floor, interval_grace(ctx)) - 1e-9
        ):
            continue
        entry = candidate
        break
    if entry is None:
        return None
    lines = [
        f"**{order.describe()}** is an adjuvant or osteoporosis regimen: {entry['describe']}.",
        "",
        ctx.setting_line(),
        "",
        (
            "For bone metastases the guideline regimens are zoledronic acid 4 mg every 12 weeks"
            " (preferred) or every 4 weeks, denosumab 120 mg every 4 weeks, pamidronate 90 mg or"
            " ibandronate 6 mg IV every 3-4 weeks, ibandronate 50 mg or clodronate 1600 mg by mouth"
            " daily, or clodronate 1500 mg IV every 3-4 weeks. Schedules from adjuvant trials or"
            " osteoporosis are not recommended for bone metastases."
        ),
    ]
    return finding(
        ctx,
        "warning",
        "Bone metastases: use an oncology schedule, not an adjuvant or osteoporosis regimen",
        lines,
        sources=[table.get("source")],
        suggestions=_oncology_regimens(ctx),
        alternatives=True,
    )


def _oncology_regimens(ctx: OrderContext) -> list[Suggestion | None]:
    """The oncology regimens to offer for this draft, first choices then the fallback (the
    suggestion gate keeps the ones this patient can safely receive, and the fallback only when no
    first choice passes)."""
    spec, knowledge, order = (
        ctx.threshold("metastatic_regimen_suggestions"),
        ctx.knowledge,
        ctx.order,
    )
    drafted = order.formulation.id if order.formulation else None
    keys = spec["by_formulation"].get(drafted) if drafted else None
    first = keys or spec["default"]
    fallback = [] if keys else [k for k in spec["fallback"] if k not in first]
    suggestions = [
        replace_draft_regimen(
            order,
            knowledge,
            regimen_entry(knowledge, key),
            key == spec["recommended"] or len(first) == 1,
        )
        for key in first
    ]
    suggestions += [
        replace_draft_regimen(order, knowledge, regimen_entry(knowledge, key), False, fallback=True)
        for key in fallback
    ]
    return suggestions


@rule("pamidronate-hcm-dose")
def pamidronate_hcm_dose(ctx: OrderContext) -> Finding | None:
    """Pamidronate in hypercalcemia of malignancy dosed below the label's range for the corrected
    calcium."""
    spec = ctx.threshold("pamidronate_hcm_dose")
    order = ctx.order
    if ctx.setting != "hypercalcemia-of-malignancy" or order.formulation is None:
        return None
    if order.formulation.id != spec["formulation"] or order.dose_mg is None:
        return None
    reading = latest_calcium(ctx.facts, ctx.knowledge, spec["calcium_max_age_days"])
    if reading is None or not reading.corrected:
        return None
    molar = reading.unit == "mmol/L"
    band = next((b for b in reversed(spec["bands"]) if _in_band(b, reading.value, molar)), None)
    if band is None or order.dose_mg >= band["minimum_dose_mg"] - 1e-9:
        return None
    dose = band["suggested_dose_mg"]
    lines = [
        (
            f"**{order.describe()}** for hypercalcemia of malignancy: the label dose for this"
            f" calcium level is {band['describe']}."
        ),
        "",
        f"- {reading.explanation[:1].upper()}{reading.explanation[1:]}.",
        ctx.setting_line(),
        "",
        (
            "A lower dose may not bring calcium down; re-treatment, if needed, is at least 7 days"
            " after this dose."
        ),
    ]
    return finding(
        ctx,
        "warning",
        f"Pamidronate {order.dose_mg:g} mg is below the dose for corrected calcium "
        f"{format_number(reading.value, 2)} {reading.unit}: give {dose:g} mg",
        lines,
        sources=[spec.get("source")],
        suggestions=[update_draft_dose(order, dose, f"Change dose to {dose:g} mg")],
    )


def _in_band(band: dict[str, Any], value: float, molar: bool) -> bool:
    unit = "mmol_l" if molar else "mg_dl"
    if f"above_{unit}" in band:
        return value > band[f"above_{unit}"] + 1e-9
    return band[f"from_{unit}"] - 1e-9 <= value <= band[f"through_{unit}"] + 1e-9


@rule("adjuvant-duration-exceeded")
def adjuvant_duration_exceeded(ctx: OrderContext) -> Finding | None:
    """Early breast cancer: the adjuvant bisphosphonate course began more than the maximum number of
    years ago."""
    if ctx.setting != "early":
        return None
    knowledge = ctx.knowledge
    doses = [
        d
        for d in ctx.facts.bone_agent_doses
        if knowledge.ingredient_class[d.ingredient] == "bisphosphonate"
    ]
    course = course_of(doses, ctx.now, ctx.threshold("course_gap_days"))
    if not course:
        return None
    start = course[-1]
    years = ctx.threshold("adjuvant_max_years")
    if ctx.now.date() <= shift_months(start.when, 12 * years).date():
        return None
    lines = [
        (
            f"**{ctx.order.describe()}**: the adjuvant bisphosphonate course began on"
            f" {start.when.date().isoformat()} ({start.evidence}), more than {years} years ago"
            f" ({len(course)} earlier doses on record)."
        ),
        "",
        ctx.setting_line(),
        "",
        (
            f"Adjuvant bisphosphonates are given for 3 to {years} years; longer treatment has shown"
            " no further benefit (SUCCESS A: 5 years no better than 2 for disease-free or overall"
            " survival, with more adverse events)."
        ),
    ]
    return finding(
        ctx,
        "warning",
        f"Adjuvant bisphosphonate for more than {years} years: consider stopping",
        lines,
        suggestions=[delete_draft(ctx.order, "Stop: remove this order")],
    )


@rule("infusion-too-fast")
def infusion_too_fast(ctx: OrderContext) -> Finding | None:
    """The order states an infusion time shorter than the product's minimum."""
    order = ctx.order
    formulation = order.formulation
    minimum = formulation.min_infusion_minutes if formulation else None
    if (
        formulation is None
        or minimum is None
        or order.infusion_minutes is None
        or not order.infusion_minutes < minimum - 1e-9
    ):
        return None
    lines = [
        (
            f"**{order.describe()}** is to be infused over {order.infusion_minutes:g} minutes; the"
            f" label minimum is {minimum:g} minutes."
        ),
        "",
        "Faster infusion raises the risk of renal toxicity.",
    ]
    return finding(
        ctx,
        "warning",
        f"Infusion of {order.ingredient_display} over {order.infusion_minutes:g} min: the minimum"
        f" is {minimum:g} min",
        lines,
        sources=[formulation.raw.get("infusion_source")],
        suggestions=[update_draft_infusion(order, minimum, f"Infuse over {minimum:g} minutes")],
    )


@rule("dose-above-maximum")
def dose_above_maximum(ctx: OrderContext) -> Finding | None:
    """A single dose above the product's label maximum."""
    order = ctx.order
    formulation = order.formulation
    maximum = formulation.max_dose_mg if formulation else None
    if (
        formulation is None
        or maximum is None
        or order.dose_mg is None
        or not order.dose_mg > maximum + 1e-9
    ):
        return None
    lines = [
        (
            f"**{order.describe()}**: a single dose of {order.dose_mg:g} mg is above the label"
            f" maximum of {maximum:g} mg."
        ),
        "",
        "Higher single doses add renal toxicity without added benefit.",
    ]
    return finding(
        ctx,
        "warning",
        f"{order.ingredient_display.capitalize()} {order.dose_mg:g} mg is above the maximum single"
        f" dose of {maximum:g} mg",
        lines,
        sources=[formulation.raw.get("max_dose_source")],
        suggestions=[update_draft_dose(order, maximum, f"Change dose to {maximum:g} mg")],
    )


@rule("oral-bp-regimen")
def oral_bp_regimen(ctx: OrderContext) -> Finding | None:
    """A weekly or monthly oral bisphosphonate strength ordered more often than its label
    interval."""
    entry = rule_regimen_entry(ctx, "oral_bisphosphonate_regimens")
    order = ctx.order
    if entry is None or order.interval is None:
        return None
    if not order.interval.days < label_interval_days(entry["every"]) - 1e-9:
        return None
    lines = [
        (
            f"**{order.describe()}**: the {entry['strength']} strength is taken"
            f" {every_words(entry['every'])}, not {order.interval.describe()}."
        ),
        "",
        "Taking it more often multiplies the dose and the risk of esophageal and gastric injury.",
    ]
    return finding(
        ctx,
        "warning",
        f"{order.ingredient_display.capitalize()} {entry['strength']} ordered"
        f" {order.interval.describe()}: it is taken {every_words(entry['every'])}",
        lines,
        sources=[entry.get("source")],
        suggestions=[
            update_draft_timing(
                order, f"Change to {every_words(entry['every'])}", every=tuple(entry["every"])
            )
        ],
    )


DUPLICATE_STATUSES = frozenset({"active", "on-hold", "draft"})


@rule("duplicate-bone-agent")
def duplicate_bone_agent(ctx: OrderContext) -> Finding | None:
    """Another bone-agent order, active or draft, in the record or in the same request."""
    order, knowledge = ctx.order, ctx.knowledge
    drafts = [other for other in ctx.other_orders if other.resource is not order.resource]
    on_record = [
        m for m in ctx.facts.medications if m.bone_agent and m.status in DUPLICATE_STATUSES
    ]
    if not drafts and not on_record:
        return None
    same = any(o.ingredient == order.ingredient for o in drafts) or any(
        m.bone_agent == order.ingredient for m in on_record
    )
    lines = [f"**{order.describe()}** would duplicate bone-modifying therapy:", ""]
    lines += [f"- Also being ordered now: {o.describe()}." for o in drafts]
    lines += [f"- On record: {m.dated()}." for m in on_record]
    lines += [
        "",
        (
            "The same drug must not be given twice (for example Zometa and Reclast are both"
            " zoledronic acid)."
            if same
            else "Two bone-modifying agents are not given together: choose one."
        ),
    ]
    suggestions = [delete_draft(order, "Remove this order")]
    suggestions += [delete_draft(o, f"Remove the other order ({o.describe()})") for o in drafts]
    others = sorted(
        {knowledge.ingredient_display[o.ingredient] for o in drafts}
        | {knowledge.ingredient_display[m.bone_agent] for m in on_record if m.bone_agent}
    )
    summary = (
        f"Duplicate {order.ingredient_display}: already ordered or active"
        if same
        else (
            f"{order.ingredient_display.capitalize()} with another bone agent ({', '.join(others)})"
        )
    )
    return finding(
        ctx,
        "critical" if same else "warning",
        summary,
        lines,
        sources=[ctx.label_source] if same else [],
        suggestions=suggestions,
        alternatives=True,
    )
