"""Runs the rules over each bone-agent order; a rule that fails yields a card saying so, never silence."""
from __future__ import annotations

import dataclasses
import logging
import traceback
from datetime import datetime
from typing import Callable, Iterable

from hooks.cards import Finding
from hooks.facts import PatientFacts
from hooks.knowledge import Knowledge
from hooks.orders import BoneAgentOrder
from hooks.rules.context import OrderContext

log = logging.getLogger(__name__)

Rule = Callable[[OrderContext], "Finding | None"]


SEVERITY = {"critical": 0, "warning": 1, "info": 2}


def evaluate_orders(orders: Iterable[BoneAgentOrder], facts: PatientFacts, knowledge: Knowledge,
                    rules: Iterable[tuple[str, Rule]], patient_reference: str, user_reference: str | None,
                    now: datetime, *, all_orders: Iterable[BoneAgentOrder] | None = None,
                    tolerant: bool = False) -> list[Finding]:
    """Each order against each rule in scope for it; per order the cards come most serious first. `all_orders` are the
    bone-agent drafts of the whole order set (order-select checks only the selected ones, but sees the rest)."""
    findings: list[Finding] = []
    rules = tuple(rules)
    orders = tuple(orders)
    others = tuple(all_orders) if all_orders is not None else orders
    checks = tuple(rule_id for rule_id, _ in rules)
    for order in orders:
        ctx = OrderContext(order, facts, knowledge, patient_reference, user_reference, now, other_orders=others,
                           checks=checks, tolerant=tolerant)
        for_order: list[Finding] = []
        for rule_id, rule in rules:
            if not ctx.in_scope(rule_id):
                continue
            try:
                finding = rule(ctx)
            except Exception as error:  # one broken rule must not hide the others, nor pass silently
                # Exception text can quote record values, so only the type and code location are logged.
                where = traceback.extract_tb(error.__traceback__)[-1]
                log.error("rule %s failed with %s at %s:%d", rule_id, type(error).__name__, where.filename, where.lineno)
                finding = rule_error(rule_id, order)
            if finding is not None:
                ctx.reported_unavailable.update(finding.reports_unavailable)
                ctx.decided.add(finding.rule_id)
                for_order.append(_with_recognition_note(finding, order))
        findings.extend(sorted(for_order, key=lambda f: SEVERITY.get(f.indicator, 3)))
    return findings


def _with_recognition_note(finding: Finding, order: BoneAgentOrder) -> Finding:
    """A drug recognised only by its name may be misread; the clinician should know the check rests on that."""
    if order.recognised_by != "name":
        return finding
    note = (f"\n\n*The drug was recognised as {order.ingredient_display} by its name only: the order carries no "
            f"RxNorm or ATC code.*")
    return dataclasses.replace(finding, detail=finding.detail + note)


def rule_error(rule_id: str, order: BoneAgentOrder) -> Finding:
    return Finding(
        "rule-error", "warning",
        f"Safety check {rule_id} could not be completed for {order.ingredient_display}: check it manually",
        f"An internal error stopped the `{rule_id}` check for {order.describe()}. The order was **not** checked for "
        f"this hazard; please review it by hand. The error has been logged for the service's maintainers.",
        (), (), order.reference)
