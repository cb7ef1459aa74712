"""Regimen rules: schedule for bone metastases, pamidronate dose in hypercalcemia, adjuvant
duration, infusion time, dose, oral regimens."""

from __future__ import annotations

from typing import Any

from hooks.assessments.calcium import latest_calcium
from hooks.cards import Finding, Suggestion
from hooks.fhir_read import format_number, shift_months
from hooks.rules.common import finding
from hooks.rules.context import OrderContext, course_of, matches_regimen, minimum_days
from hooks.rules.intervals import (
    interval_grace,
    label_interval_days,
    rule_regimen_entry,
    strength_schedule_mismatch,
)
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
    schedule (a denosumab interval that does not fit its strength is the strength-schedule
    card's)."""
    if ctx.setting != "bone-metastatic" or strength_schedule_mismatch(ctx) is not None:
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
        suggestions=[update_draft_dose(order, dose)],
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
    began = (
        f"**{ctx.order.describe()}**: the bisphosphonate course began on"
        f" {start.when.date().isoformat()} ({start.evidence}), more than {years} years ago"
        f" ({len(course)} earlier doses on record)."
    )
    if ctx.bone_loss.indicated:
        # treatment of bone loss, not adjuvant intent: the label asks to reassess, not to stop
        low, high = ctx.threshold("bone_loss_reassess_years")
        lines = [
            began,
            "",
            ctx.setting_line(),
            f"- Bone-loss indication: {ctx.bone_loss.reason()}.",
            "",
            (
                "For bone loss the best duration of bisphosphonate treatment is not known: the"
                f" label asks to reassess the need for it after {low}-{high} years (fracture risk,"
                " bone density), and to stop in patients at low risk of fracture."
            ),
        ]
        return finding(
            ctx,
            "info",
            f"Bisphosphonate for more than {years} years for bone loss: reassess the need for"
            f" treatment (after {low}-{high} years)",
            lines,
            sources=[ctx.knowledge.raw["thresholds"]["bone_loss_reassess_years"]["source"]],
        )
    lines = [
        began,
        "",
        ctx.setting_line(),
        f"- No bone-loss indication ({ctx.bone_loss.reason()}): the course is adjuvant.",
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
    """The order states an infusion time shorter than the product's minimum, or than its renal
    band's (ibandronate 6 mg: 15 minutes only at CrCl >= 50, else 1 hour)."""
    from hooks.rules.renal_dose import renal_label_dose  # the renal band sets the minimum here

    order = ctx.order
    formulation = order.formulation
    minimum = formulation.min_infusion_minutes if formulation else None
    band = renal_label_dose(ctx) if formulation and formulation.renal.get("dose_table") else None
    band_minimum = band.band.get("min_infusion_minutes") if band else None
    by_band = band is not None and band_minimum is not None and band_minimum > (minimum or 0)
    if by_band:
        minimum = band_minimum
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
            f" label minimum is {minimum:g} minutes"
            + (f" {band.at()} ({band.basis})." if band and by_band else ".")
        ),
        "",
        "Faster infusion raises the risk of renal toxicity.",
    ]
    return finding(
        ctx,
        "warning",
        f"Infusion of {order.ingredient_display} over {order.infusion_minutes:g} min: the minimum"
        f" is {minimum:g} min" + (f" {band.at()}" if band and by_band else ""),
        lines,
        sources=[
            formulation.raw.get("infusion_source"),
            *([band.source] if band and by_band else []),
        ],
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
        suggestions=[update_draft_dose(order, maximum)],
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
        suggestions=[update_draft_timing(order, every=tuple(entry["every"]))],
    )
