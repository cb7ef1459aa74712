"""Duplicate bone-agent orders, and the standing order a new draft merely continues."""

from __future__ import annotations

from hooks.cards import Finding
from hooks.facts.model import MedicationFact
from hooks.fhir_read import days_between
from hooks.rules.common import finding
from hooks.rules.context import MONTH_UNITS, OrderContext
from hooks.rules.intervals import dose_due, interval_grace
from hooks.rules.rule import rule
from hooks.suggestions import delete_draft

DUPLICATE_STATUSES = frozenset({"active", "on-hold", "draft"})


def _continues(ctx: OrderContext, standing: MedicationFact) -> bool:
    """Whether the draft is the next dose of this standing order: active, the same formulation, dose
    and interval, and the interval since the last dose of the drug met (2 weeks' grace on intervals
    in months, as for `interval-too-short`)."""
    order = ctx.order
    if (
        standing.status != "active"
        or standing.bone_agent != order.ingredient
        or order.formulation is None
        or standing.formulation != order.formulation.id
        or order.dose_mg is None
        or standing.dose_mg is None
        or abs(standing.dose_mg - order.dose_mg) > 1e-9
        or order.interval is None
        or standing.interval is None
        or abs(standing.interval.days - order.interval.days) > 1e-9
    ):
        return False
    last = ctx.last_dose
    if last is None:
        return True
    grace = interval_grace(ctx) if standing.interval.unit in MONTH_UNITS else 0
    return days_between(last.when, dose_due(ctx)) >= standing.interval.days - grace - 1e-9


@rule("duplicate-bone-agent")
def duplicate_bone_agent(ctx: OrderContext) -> Finding | None:
    """Another bone-agent order, active or draft, in the record or in the same request; a draft that
    only continues an active standing order is a lesser warning (renew or discontinue the old
    order)."""
    order, knowledge = ctx.order, ctx.knowledge
    drafts = [other for other in ctx.other_orders if other.resource is not order.resource]
    on_record = [
        m for m in ctx.facts.medications if m.bone_agent and m.status in DUPLICATE_STATUSES
    ]
    continued = [m for m in on_record if _continues(ctx, m)]
    on_record = [m for m in on_record if m not in continued]
    if not drafts and not on_record:
        return _continuation(ctx, continued) if continued else None
    same = any(o.ingredient == order.ingredient for o in drafts) or any(
        m.bone_agent == order.ingredient for m in on_record
    )
    lines = [f"**{order.describe()}** would duplicate bone-modifying therapy:", ""]
    lines += [f"- Also being ordered now: {o.describe()}." for o in drafts]
    lines += [f"- On record: {m.dated()}." for m in on_record]
    lines += [
        f"- On record, continued by this draft (renew or discontinue it): {m.dated()}."
        for m in continued
    ]
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


def _continuation(ctx: OrderContext, continued: list[MedicationFact]) -> Finding:
    """The draft is the next dose of an active standing order of the same regimen: not a second
    drug, but two orders would stand for the same doses."""
    order = ctx.order
    last = ctx.last_dose
    lines = [
        f"**{order.describe()}** repeats a standing order that is still active:",
        "",
        *[
            f"- On record: {m.dated()}" + (f", {m.interval.describe()}." if m.interval else ".")
            for m in continued
        ],
    ]
    if last is not None:
        lines.append(
            f"- Last dose of {order.ingredient_display} on {last.when.date().isoformat()}"
            f" ({last.evidence}), {days_between(last.when, dose_due(ctx))} days before this dose:"
            " the next dose is due."
        )
    lines += [
        "",
        (
            "Same product, dose and interval: this draft is the next dose of the active order."
            " Keep one order: renew the old order (and remove this draft), or discontinue the old"
            " order when this draft replaces it."
        ),
    ]
    return finding(
        ctx,
        "warning",
        f"{order.ingredient_display.capitalize()} already active: renew or discontinue the old"
        " order",
        lines,
        sources=[ctx.label_source],
        suggestions=[delete_draft(order, "Remove this draft (the active order continues)")],
    )
