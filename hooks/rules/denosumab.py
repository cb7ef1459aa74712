"""Denosumab rules: the strength must fit the ordered interval, and a bisphosphonate after denosumab
60 mg should not start late."""

from __future__ import annotations

from hooks.cards import Finding
from hooks.fhir_read import days_between, shift_months
from hooks.rules.common import finding
from hooks.rules.context import OrderContext
from hooks.rules.intervals import strength_schedule_mismatch
from hooks.rules.rule import rule
from hooks.suggestions import every_words, regimen_entry, replace_draft_regimen


@rule("denosumab-strength-schedule")
def denosumab_strength_schedule(ctx: OrderContext) -> Finding | None:
    """Denosumab whose ordered interval does not fit its strength: 120 mg beyond 5 weeks outside
    hypercalcemia of malignancy, 60 mg more often than every 6 months (2 weeks' grace)."""
    entry = strength_schedule_mismatch(ctx)
    order = ctx.order
    if entry is None or order.interval is None or order.formulation is None:
        return None
    spec = ctx.threshold("denosumab_strength_schedule")
    strength = order.formulation.strength_mg or order.dose_mg
    strength_text = f"{strength:g} mg" if strength else order.formulation.display
    lines = [
        (
            f"**{order.describe()}**: the {strength_text} strength is given"
            f" {every_words(entry['labelled'])}, not {order.interval.describe()}."
        ),
        "",
        ctx.setting_line(),
        "",
        f"{entry['basis']}.",
    ]
    option = spec.get("guideline_option")
    if (
        option
        and ctx.setting in option["settings"]
        and option["formulation"] == order.formulation.id
    ):
        lines.append(
            f"For bone metastases, {option['text']}: when that schedule is intended, override this"
            " card giving that reason."
        )
    key = spec["regimen_by_setting"].get(ctx.setting)
    regimen = regimen_entry(ctx.knowledge, key) if key else None
    if regimen is None:
        return finding(
            ctx,
            "warning",
            f"Denosumab {strength_text} {order.interval.describe()} does not fit its strength:"
            f" it is given {every_words(entry['labelled'])}",
            lines,
            sources=[entry["source"]],
        )
    lines.append(f"The regimen for this setting is {regimen['label']}.")
    sources = [entry["source"], option["source"] if option else None]
    return finding(
        ctx,
        "warning",
        f"Denosumab {strength_text} {order.interval.describe()} does not fit its strength: change"
        f" to {regimen['label']}",
        lines,
        sources=sources,
        suggestions=[replace_draft_regimen(order, ctx.knowledge, regimen, True)],
    )


@rule("denosumab-follow-on-late")
def denosumab_follow_on_late(ctx: OrderContext) -> Finding | None:
    """The first bisphosphonate since the last denosumab dose, which was 60 mg and more than 7 (at
    most 24) months ago: start it now, bone loss rebounds after denosumab."""
    spec = ctx.threshold("denosumab_follow_on")
    knowledge = ctx.knowledge
    denosumab = knowledge.formulation(spec["formulation"]).ingredient
    doses = ctx.facts.bone_agent_doses  # newest first
    last = next((d for d in doses if d.ingredient == denosumab), None)
    if last is None or last.formulation != spec["formulation"]:
        return None
    if any(
        knowledge.ingredient_class[d.ingredient] == "bisphosphonate" and d.when > last.when
        for d in doses
    ):
        return None
    after, within = spec["after_months"], spec["within_months"]
    given = last.when.date()
    # calendar months, judged by day: a dose exactly 7 months ago is not late yet
    if not (shift_months(ctx.now, -within).date() <= given < shift_months(ctx.now, -after).date()):
        return None
    days = days_between(last.when, ctx.now)
    lines = [
        (
            f"**{ctx.order.describe()}** is the first bisphosphonate since the last denosumab"
            f" 60 mg dose on {given.isoformat()} ({last.evidence}), {days} days ago: more than"
            f" {after} months."
        ),
        "",
        (
            "After denosumab stops, bone loss rebounds and vertebral fractures rise (FREEDOM"
            " extension: 7.1 per 100 patient-years after stopping, 1.2 while on denosumab). The"
            f" guideline asks for a bisphosphonate for 1 to 2 years, begun within {after} months"
            " of the last denosumab dose (AGO LoE 3c, GR C, AGO +)."
        ),
        "Give this bisphosphonate now, without further delay; the order itself needs no change.",
    ]
    return finding(
        ctx,
        "info",
        f"Denosumab 60 mg stopped {days} days ago (more than {after} months): start this"
        " bisphosphonate now, bone loss rebounds",
        lines,
    )
