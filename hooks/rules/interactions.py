"""Interaction rules: a bone-modifying agent ordered with a drug that makes it unsafe (none
registered yet)."""

from __future__ import annotations

# A rule of this family (e.g. zoledronic acid with an active aminoglycoside) is a function of an
# OrderContext declared
# with `@rule("rule-id")` (hooks.rules.rule) that reads `ctx.facts.active_medications(<class>)`, the
# classes being the
# knowledge's `medication_classes`, and returns `finding(ctx, ...)` (hooks.rules.common) or None. It
# is listed in
# hooks/rules/registry.py and has its entry in the knowledge file's `rules`: `applies_to` (order
# kinds), `only_for` to
# name ingredients or formulation ids, `needs` (fact groups), sources and override reasons.
