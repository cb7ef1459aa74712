"""The completeness check: parts of the record that could not be read, and which safety checks that
left undone."""

from __future__ import annotations

from hooks.cards import Finding
from hooks.facts.groups import GROUP_BY_KEY
from hooks.rules.common import finding
from hooks.rules.context import OrderContext
from hooks.rules.rule import rule


def _lower_first(title: str) -> str:
    """'Low 25-OH vitamin D' -> 'low 25-OH vitamin D': only the capital that starts the sentence is
    lowered."""
    return title[:1].lower() + title[1:]


@rule("record-incomplete", after_all=True)
def record_incomplete(ctx: OrderContext) -> Finding | None:
    """Runs after all the others: for each fact group that could not be retrieved and that no other
    card explained, name the checks it blocked."""
    knowledge = ctx.knowledge
    lines: list[str] = []
    for group in sorted(ctx.facts.unavailable):
        if group not in GROUP_BY_KEY or group in ctx.reported_unavailable:
            continue
        # A rule that fired or decided anyway has nothing more to say; the others may have missed a
        # finding.
        blocked = [
            _lower_first(knowledge.rule_meta(rule_id)["title"])
            for rule_id in ctx.checks
            if group in knowledge.rule_meta(rule_id)["needs"]
            and ctx.in_scope(rule_id)
            and rule_id not in ctx.decided
        ]
        if blocked:
            lines.append(
                f"- {GROUP_BY_KEY[group].name} could not be retrieved"
                f" ({ctx.facts.unavailable[group]}). Not fully checked:"
                f" {'; '.join(dict.fromkeys(blocked))}."
            )
    if not lines:
        return None
    detail = [
        f"**Some safety checks for {ctx.order.describe()} could not be completed.**",
        "",
        *lines,
        "",
        (
            "These parts of the record were unavailable to the service; they are not assumed to be"
            " normal. Review them in the chart before signing."
        ),
    ]
    return finding(
        ctx,
        "warning",
        f"Part of the record could not be read: some checks for {ctx.order.ingredient_display} were"
        " not done",
        detail,
    )
