"""A rule declared with its id, written once (`@rule("calcium-low")`), and the one loop that runs
rules."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable, Iterable
from functools import lru_cache
from typing import Any, NamedTuple, Protocol

from hooks.cards import Finding

log = logging.getLogger(__name__)

Check = Callable[[Any], "Finding | None"]


class RuleContext(Protocol):
    """What the loop needs from an order's or a review's context."""

    rule_id: str  # the rule running now: its findings carry this id
    decided: set[str]
    reported_unavailable: set[str]

    def in_scope(self, rule_id: str) -> bool: ...

    def rule_failed(self, rule_id: str) -> Finding: ...


class Rule(NamedTuple):
    """A registered rule: its id (written only here; its findings take it from the context while it
    runs) and its check, which returns a finding or None.

    Calling the rule runs the check under its id.
    """

    rule_id: str
    check: Check

    @property
    def after_all(self) -> bool:
        """Runs after every other rule of its hook, whatever its place in the registry."""
        return False

    def __call__(self, ctx: Any) -> Finding | None:
        outer = ctx.rule_id
        ctx.rule_id = self.rule_id
        try:
            return self.check(ctx)
        finally:
            ctx.rule_id = outer


class AfterAllRule(Rule):
    """A rule that reads what the others decided (the completeness card): it runs last."""

    __slots__ = ()

    @property
    def after_all(self) -> bool:
        return True


def rule(rule_id: str, *, after_all: bool = False) -> Callable[[Check], Rule]:
    """Declare a check as the rule `rule_id`: `@rule("calcium-low")` above the function.

    The registry lists the rule; the knowledge file's `rules` section must have its entry (checked
    at start-up).
    """

    def declare(check: Check) -> Rule:
        return (AfterAllRule if after_all else Rule)(rule_id, check)

    return declare


@lru_cache(maxsize=32)
def running_order(rules: tuple[tuple[str, Check], ...]) -> tuple[Rule, ...]:
    """The rules as the loop runs them: registry order, the after-all rules last (worked out once
    per registry, not for every order and trial)."""
    registered = [entry if isinstance(entry, Rule) else Rule(*entry) for entry in rules]
    return tuple(r for r in registered if not r.after_all) + tuple(
        r for r in registered if r.after_all
    )


@lru_cache(maxsize=32)
def rule_ids(rules: tuple[tuple[str, Check], ...]) -> tuple[str, ...]:
    """The ids of a registry's rules in registry order, worked out once per registry (every call
    makes an evaluator that asks)."""
    return tuple(rule_id for rule_id, _ in rules)


def run_rules(rules: Iterable[tuple[str, Check]], ctx: RuleContext) -> list[Finding]:
    """Each rule in scope for the context, in registry order, the after-all rules last.

    The whole rule, scope check included, runs inside the guard: a rule that fails (or has no
    knowledge entry) yields the context's card saying the check was not done, never silence and
    never a failed call. `rules` are Rules or (rule id, check) pairs.
    """
    found: list[Finding] = []
    outer = ctx.rule_id
    for entry in running_order(rules if isinstance(rules, tuple) else tuple(rules)):
        try:
            # what calling the rule does (run the check under its id), without a call of its own for
            # each of the 30-odd rules of every order and trial
            ctx.rule_id = entry.rule_id
            finding = entry.check(ctx) if ctx.in_scope(entry.rule_id) else None
        except Exception as error:  # one broken rule must not hide the others, nor pass silently
            # Exception text can quote record values, so only the type and code location are logged.
            where = traceback.extract_tb(error.__traceback__)[-1]
            log.error(
                "rule %s failed with %s at %s:%d",
                entry.rule_id,
                type(error).__name__,
                where.filename,
                where.lineno,
            )
            finding = ctx.rule_failed(entry.rule_id)
        if finding is not None:
            ctx.reported_unavailable.update(finding.reports_unavailable)
            ctx.decided.add(finding.rule_id)
            found.append(finding)
    ctx.rule_id = outer
    return found
