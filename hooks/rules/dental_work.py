"""Invasive dental work planned or recent: extractions, implants, jaw surgery before a dose."""

from __future__ import annotations

from hooks.cards import Finding
from hooks.rules.common import finding, unavailable_line
from hooks.rules.context import OrderContext
from hooks.rules.rule import rule


@rule("invasive-dental-work")
def invasive_dental_work(ctx: OrderContext) -> Finding | None:
    """Any bone-agent order with invasive dental work ordered (draft, active, on-hold), in
    preparation, or performed within the knowledge's window (default 8 weeks)."""
    facts, order = ctx.facts, ctx.order
    work = facts.dental_work
    if not work:
        if not facts.is_unavailable("dental_work"):
            ctx.decided.add(ctx.rule_id)
        return None
    weeks = ctx.threshold("invasive_dental_work")["recent_days"] // 7
    lines = [
        f"**{order.describe()}** with invasive dental work planned or done recently.",
        "",
        *(f"- {w.label}: {w.evidence}." for w in work),
    ]
    reason = facts.is_unavailable("dental_work")
    if reason:
        lines.append(unavailable_line("Some dental orders or procedures", reason))
    lines += [
        "",
        (
            f"Invasive dental procedures (extractions, implants, jaw surgery) during or shortly"
            f" before {order.ingredient_display} raise the risk of osteonecrosis of the jaw. Let"
            " planned work be completed and the site heal before the dose, or time the dose with"
            f" the dentist. Procedures done in the last {weeks} weeks are shown."
        ),
    ]
    first = work[0]
    sources = [ctx.label_source, "ago-2024", "za-her2-summary"]
    if first.date_unknown:
        # only done work without a date: whether it was within the window cannot be told
        summary = (
            f"{first.label} done, date not recorded: check it was more than {weeks} weeks before"
            f" {order.ingredient_display}"
        )
        return finding(ctx, "info", summary, lines, sources=sources)
    when = (
        f"planned{f' for {first.when.date().isoformat()}' if first.when else ''}"
        if first.planned
        else f"on {first.when.date().isoformat()}"
        if first.when
        else "recent"
    )
    return finding(
        ctx,
        "warning",
        f"{first.label} {when}: finish dental work and let it heal before"
        f" {order.ingredient_display}",
        lines,
        sources=sources,
    )
