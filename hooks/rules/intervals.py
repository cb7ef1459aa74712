"""Interval rules: the shortest label interval between doses, whether a denosumab strength fits its
interval, and interval-too-short."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

from hooks.cards import Finding
from hooks.facts.model import DoseEvent
from hooks.fhir_read import days_between
from hooks.rules.common import finding
from hooks.rules.context import OrderContext, matches_regimen, minimum_days
from hooks.rules.rule import rule
from hooks.suggestions import (
    every_words,
    update_draft_timing,
)


def rule_regimen_entry(ctx: OrderContext, table: str) -> dict[str, Any] | None:
    """The first entry of a regimen table (knowledge thresholds) that describes this order in this
    setting."""
    return next(
        (
            entry
            for entry in ctx.threshold(table)["entries"]
            if matches_regimen(entry, ctx.order)
            and ctx.setting in entry.get("settings", [ctx.setting])
        ),
        None,
    )


def interval_grace(ctx: OrderContext) -> float:
    return ctx.threshold("interval_grace_days_for_months")


def strength_schedule_mismatch(ctx: OrderContext) -> dict[str, Any] | None:
    """The entry of the denosumab strength table whose interval the order breaks (120 mg beyond 5
    weeks outside hypercalcemia of malignancy, 60 mg more often than every 6 months less the grace);
    None when the interval fits or the order states none.

    `denosumab-strength-schedule` fires on it, and the interval and metastatic-schedule rules leave
    the order's own interval to that card.
    """
    order = ctx.order
    if order.interval is None or order.formulation is None:
        return None
    days = order.interval.days
    for entry in ctx.threshold("denosumab_strength_schedule")["entries"]:
        if entry["formulation"] != order.formulation.id:
            continue
        if ctx.setting in entry.get("except_settings", ()):
            continue
        if "every_at_most" in entry and days > minimum_days(entry["every_at_most"], 0) + 1e-9:
            return entry
        if (
            "every_at_least" in entry
            and days < minimum_days(entry["every_at_least"], interval_grace(ctx)) - 1e-9
        ):
            return entry
    return None


SHORTEST_MONTH_DAYS = 28


def label_interval_days(every: list | tuple) -> float:
    """An oral tablet's labelled interval in days.

    The 2-week grace of the interval rule does not apply (it would let a monthly tablet be taken
    every 3 weeks); 'monthly' is met by any calendar month, so by 28 days.
    """
    period, unit = every
    return period * SHORTEST_MONTH_DAYS if unit == "mo" else minimum_days(every, 0)


def dose_due(ctx: OrderContext) -> datetime:
    """When the ordered dose is given: now, or the order's stated start when that is later."""
    starts = ctx.order.starts
    return starts if starts is not None and starts > ctx.now else ctx.now


def _interval_anchor(
    ctx: OrderContext, entry: dict[str, Any]
) -> tuple[DoseEvent | None, bool, datetime | None]:
    """The dose the minimum interval counts from, whether this order is an allowed extra dose, and
    from when an extra dose would be allowed.

    In hypercalcemia of malignancy denosumab may add up to two doses in the first 28 days of a
    course, each at least 7 days after the one before (the label's days 8 and 15); the 4 weeks then
    count from the last dose that is not such an extra.
    """
    last = ctx.last_dose
    extra = entry.get("extra_doses")
    if last is None or not extra or ctx.setting not in extra["settings"]:
        return last, False, None
    course = list(reversed(ctx.course_doses))  # oldest first
    if not course:
        return last, False, None
    start, anchor, previous, extras = course[0], course[0], course[0], 0
    for dose in course[1:]:
        in_window = (dose.when - start.when).days <= extra["within_days"]
        if (
            in_window
            and extras < extra["count"]
            and (dose.when - previous.when).days >= extra["min_gap_days"]
        ):
            extras += 1
        else:
            anchor = dose
        previous = dose
    if extras >= extra["count"] or anchor is not start:
        return anchor, False, None
    extra_from = previous.when + timedelta(days=extra["min_gap_days"])
    if (extra_from - start.when).days > extra["within_days"]:
        return anchor, False, None
    due = dose_due(ctx)
    allowed = (due - start.when).days <= extra["within_days"] and days_between(
        previous.when, due
    ) >= extra["min_gap_days"]
    return anchor, allowed, extra_from


@rule("interval-too-short")
def interval_too_short(ctx: OrderContext) -> Finding | None:
    """The order's interval, or the time since the last dose of the same drug, is under the minimum
    for product and setting; in hypercalcemia of malignancy a repeating zoledronic acid order (one
    dose treats it).

    A denosumab interval that does not fit its strength is `denosumab-strength-schedule`'s card, so
    only the time since the last dose is judged here then.
    """
    entry = rule_regimen_entry(ctx, "minimum_intervals")
    if entry is None:
        return None
    order = ctx.order
    shortest = minimum_days(entry["every"], interval_grace(ctx))
    problems: list[str] = []
    new_every = not_before = None
    single_dose = False
    # the order's own interval, unless it is the strength-schedule card's to judge
    interval = order.interval if strength_schedule_mismatch(ctx) is None else None
    if entry.get("single_dose") and interval is not None:
        problems.append(
            f"- The order repeats {interval.describe()}: it is a single dose, repeated only"
            " if calcium does not return to normal."
        )
        single_dose = True
    elif interval is not None and interval.days < shortest - 1e-9:
        problems.append(f"- The order repeats {interval.describe()}.")
        new_every = tuple(entry.get("suggested_every", entry["every"]))
    anchor, extra_dose, extra_from = _interval_anchor(ctx, entry)
    due = dose_due(ctx)
    if anchor is not None and not extra_dose and days_between(anchor.when, due) < shortest:
        gap = days_between(anchor.when, due)
        when = "" if due is ctx.now else f" before the order's start on {due.date().isoformat()}"
        problems.append(
            f"- The last dose of {order.ingredient_display} was {gap} days{when} ago, on "
            f"{anchor.when.date().isoformat()} ({anchor.evidence})."
        )
        not_before = anchor.when + timedelta(days=math.ceil(shortest))
        if extra_from is not None and extra_from < not_before:
            problems.append(
                "- In hypercalcemia of malignancy an extra dose is allowed from "
                f"{extra_from.date().isoformat()} (the label's doses on days 8 and 15)."
            )
            not_before = extra_from
    if not problems:
        return None
    allowance = " (2 weeks early is accepted)" if entry["every"][1] in ("mo", "a") else ""
    minimum = (
        "a single dose"
        if single_dose
        else f"the minimum of {every_words(entry['every'])}{allowance}"
    )
    lines = [
        f"**{order.describe()}** is more frequent than {minimum} for this product in this setting.",
        "",
        *problems,
        ctx.setting_line(),
        "",
        f"{entry['basis']}.",
    ]
    if not_before is not None:
        lines.append(f"The next dose is due from {not_before.date().isoformat()}.")
    suggestion = update_draft_timing(
        order, every=new_every, not_before=not_before, single_dose=single_dose
    )
    summary = (
        f"{order.ingredient_display.capitalize()} for hypercalcemia is a single dose, not "
        f"{order.interval.describe()}"
        if single_dose and order.interval
        else (
            f"{order.ingredient_display.capitalize()} too soon: minimum interval is"
            f" {every_words(entry['every'])}"
        )
    )
    return finding(
        ctx, "warning", summary, lines, sources=[entry.get("source")], suggestions=[suggestion]
    )
