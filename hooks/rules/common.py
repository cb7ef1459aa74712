"""Helpers every rule module shares: building a finding with the rule's sources, and describing
record entries."""

from __future__ import annotations

from collections.abc import Iterable

from hooks.cards import Finding, Suggestion
from hooks.facts.model import ConditionFact
from hooks.rules.context import OrderContext


def finding(
    ctx: OrderContext,
    indicator: str,
    summary: str,
    lines: Iterable[str],
    *,
    sources: Iterable[str | None] = (),
    suggestions: Iterable[Suggestion | None] = (),
    reports: Iterable[str] = (),
    alternatives: bool = False,
) -> Finding:
    """A finding of the running rule (its id from the registration) about the context's order; cites
    the given sources first, else the rule's own from the knowledge file."""
    cited = [s for s in sources if s] or list(ctx.knowledge.rule_meta(ctx.rule_id)["sources"])
    return Finding(
        ctx.rule_id,
        indicator,
        summary,
        "\n".join(lines),
        tuple(dict.fromkeys(cited)),
        tuple(s for s in suggestions if s is not None),
        ctx.order.reference,
        tuple(reports),
        alternatives,
    )


def condition_line(condition: ConditionFact) -> str:
    since = f", recorded from {condition.onset.date().isoformat()}" if condition.onset else ""
    return f"- {condition.label} ({condition.status or 'no clinical status'}{since})."


def unavailable_line(what: str, reason: str) -> str:
    return f"- {what} could not be retrieved from the EHR ({reason})."
