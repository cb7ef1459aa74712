"""Interaction rules: zoledronic acid or pamidronate with a drug that adds hypocalcemia or kidney
injury (aminoglycosides, loop diuretics, NSAIDs, cisplatin, other nephrotoxic drugs)."""

from __future__ import annotations

from dataclasses import dataclass, field

from hooks.assessments.calcium import latest_calcium
from hooks.cards import Action, Finding, Suggestion
from hooks.fhir_read import format_number
from hooks.rules.common import finding, unavailable_line
from hooks.rules.context import OrderContext, below
from hooks.rules.renal import creatinine_rise
from hooks.rules.rule import rule
from hooks.suggestions import order_observation


@dataclass
class _Check:
    """One finding of the rule: the interacting drugs, the tests it asks for, what they showed."""

    drugs: list[str]
    names: list[str]
    results: list[str] = field(default_factory=list)  # one line per test, in the order checked
    open: bool = False  # a test is missing, stale or abnormal: the card stays
    to_order: list[str] = field(default_factory=list)  # orderables of the tests not fresh
    abnormal: list[str] = field(default_factory=list)  # short phrases for the summary

    def flag(self, line: str) -> None:
        self.results.append(line)
        self.open = True


def _exposures(ctx: OrderContext, classes: list[str]) -> tuple[list[str], list[str]]:
    """Active or on-hold orders (and drafts signed with the bone agent) of the classes, and their
    doses given within the knowledge's window (administrations, completed orders): evidence lines
    and the drugs' names."""
    wanted = set(classes)
    window = ctx.threshold("nephrotoxic_comedication")["administration_within_days"]
    orders = [
        m
        for m in ctx.facts.medications
        if wanted & m.classes
        and (
            m.status in ("active", "on-hold")
            or m.in_request
            # a completed order stands for a dose given on its date (no administration recorded)
            or (
                m.status == "completed"
                and m.authored is not None
                and 0 <= ctx.days_since(m.authored) <= window
            )
        )
    ]
    given = [
        a
        for a in ctx.facts.administered
        if wanted & a.classes and 0 <= ctx.days_since(a.when) <= window
    ]
    lines = [f"- {m.dated()}." for m in orders] + [f"- {a.dated()}." for a in given]
    return lines, [m.label for m in orders] + [a.label for a in given]


def _stale(ctx: OrderContext, kind: str, what: str, days: int) -> str:
    latest = ctx.facts.latest(kind)
    reason = ctx.facts.is_unavailable(kind if kind == "magnesium" else _group(kind))
    if reason:
        return unavailable_line(what, reason)
    older = f"; the latest is {latest.shown()}" if latest else "; none on record"
    return f"- {what}: none within {days} days{older}."


def _group(kind: str) -> str:
    return "calcium" if kind.startswith("calcium") else kind


def _calcium(ctx: OrderContext, check: _Check, days: int) -> None:
    """Calcium within the window, judged low as `calcium-low` judges it (corrected, ionized, or an
    uncorrected total)."""
    limits = ctx.knowledge.thresholds["calcium_low"]
    reading = latest_calcium(ctx.facts, ctx.knowledge, days)
    ionized = ctx.facts.latest("calcium_ionized", days)
    if reading is None and ionized is None:
        check.flag(_stale(ctx, "calcium_total", "Calcium", days))
        check.to_order.append("serum-calcium")
        return
    if reading is not None and reading.below(limits):
        check.flag(f"- Low calcium: {reading.explanation}.")
        check.abnormal.append("low calcium")
    elif ionized is not None and below(ionized.value, limits["ionized_mmol_l"]):
        check.flag(f"- Low ionized calcium {ionized.shown(3)}.")
        check.abnormal.append("low calcium")
    elif reading is not None:
        check.results.append(f"- Calcium: {reading.explanation}, not low.")
    elif ionized is not None:
        check.results.append(f"- Calcium: ionized calcium {ionized.shown(3)}, not low.")


def _magnesium(ctx: OrderContext, check: _Check, days: int) -> str | None:
    """Magnesium within the window against the knowledge's lower reference limit; returns the
    limit's source when the result is low."""
    spec = ctx.threshold("nephrotoxic_comedication")
    result = ctx.facts.latest("magnesium", days)
    if result is None:
        check.flag(_stale(ctx, "magnesium", "Magnesium", days))
        check.to_order.append("serum-magnesium")
        return None
    limit = spec["magnesium_low_mg_dl"]
    if result.decide_below(limit):
        check.flag(
            f"- Low magnesium: {result.shown()}, below the lower reference limit {limit:g} mg/dL."
        )
        check.abnormal.append(f"magnesium {format_number(result.value, 2)} mg/dL")
        return spec.get("magnesium_low_source")
    check.results.append(f"- Magnesium: {result.shown()}, not low.")
    return None


def _creatinine(ctx: OrderContext, check: _Check, days: int) -> None:
    latest = ctx.facts.latest("creatinine", days)
    if latest is None:
        check.flag(_stale(ctx, "creatinine", "Creatinine", days))
        check.to_order.append("serum-creatinine")
        return
    found = creatinine_rise(ctx, latest)
    if found is not None:
        check.flag(
            f"- Creatinine {latest.shown()} has risen by {found.rise:.2f} mg/dL over the baseline"
            f" {found.baseline.shown()} ({found.baseline_basis}): a rise of {found.limit:g} mg/dL"
            " or more withholds the dose."
        )
        check.abnormal.append(f"creatinine up {found.rise:.2f} mg/dL")
    else:
        check.results.append(
            f"- Creatinine: {latest.shown()}, no rise past the withhold threshold."
        )


def _order_tests(ctx: OrderContext, orderables: list[str], reason: str) -> Suggestion | None:
    if not orderables:
        return None
    made = [
        order_observation(
            ctx.knowledge, key, ctx.patient_reference, ctx.user_reference, ctx.now, reason
        )
        for key in orderables
    ]
    actions: tuple[Action, ...] = tuple(a for s in made for a in s.actions)
    return Suggestion(f"Order {' and '.join(_test_name(ctx, key) for key in orderables)}", actions)


def _test_name(ctx: OrderContext, orderable: str) -> str:
    """The plain name of a lab orderable ('serum magnesium')."""
    return ctx.knowledge.raw["orderables"][orderable].get("label", orderable.replace("-", " "))


@rule("nephrotoxic-comedication")
def nephrotoxic_comedication(ctx: OrderContext) -> Finding | None:
    """Zoledronic acid or pamidronate with an active aminoglycoside or loop diuretic (additive
    hypocalcemia: calcium and magnesium, hydration) or NSAID, cisplatin or other nephrotoxic drug
    (creatinine); quiet when every test is fresh and normal."""
    spec = ctx.threshold("nephrotoxic_comedication")
    order, facts, days = ctx.order, ctx.facts, spec["tests_within_days"]
    if order.ingredient not in spec["ingredients"]:
        return None
    hypo = _Check(*_exposures(ctx, spec["hypocalcemia_classes"]))
    nephro = _Check(*_exposures(ctx, spec["creatinine_classes"]))
    if not hypo.drugs and not nephro.drugs:
        if not (facts.is_unavailable("medications") or facts.is_unavailable("administrations")):
            ctx.decided.add(ctx.rule_id)
        return None
    sources: list[str | None] = [ctx.label_source]
    if hypo.drugs:
        _calcium(ctx, hypo, days)
        sources.append(_magnesium(ctx, hypo, days))
    if nephro.drugs:
        _creatinine(ctx, nephro, days)
    if not hypo.open and not nephro.open:
        ctx.decided.add(ctx.rule_id)  # every test it would order is fresh and normal
        return None
    drug = order.ingredient_display
    lines = [f"**{order.describe()}** with drugs that add to its risks.", ""]
    if hypo.drugs:
        lines += [
            "Aminoglycosides and loop diuretics lower calcium together with "
            f"{drug} (for long periods with aminoglycosides):",
            *hypo.drugs,
            *hypo.results,
            (
                f"Correct the {_words(hypo.abnormal)} and hydrate before the dose, then check"
                f" calcium and magnesium again (within {days} days)."
                if hypo.abnormal
                else f"Check calcium and magnesium (within {days} days) and hydrate before the"
                " dose."
            ),
        ]
        if ctx.setting == "hypercalcemia-of-malignancy":
            lines.append(
                "In hypercalcemia of malignancy give a loop diuretic only after the patient is"
                " rehydrated."
            )
        lines.append("")
    if nephro.drugs:
        lines += [
            f"Potentially nephrotoxic drugs add to the kidney risk of {drug}:",
            *nephro.drugs,
            *nephro.results,
            f"Check creatinine (within {days} days) before the dose.",
            "",
        ]
    if order.ingredient == "pamidronate":
        lines.append(
            "For pamidronate, the Zometa label's caution for these drug classes is applied by"
            " analogy."
        )
    names = _words(list(dict.fromkeys(hypo.names + nephro.names)))
    abnormal = hypo.abnormal + nephro.abnormal
    to_order = [_test_name(ctx, key) for key in hypo.to_order + nephro.to_order]
    if abnormal:
        summary = f"{_upper_first(_words(abnormal))} with {names}: review before {drug}"
    else:
        summary = f"{_upper_first(names)} with {drug}: check {_words(to_order)} before the dose"
    reason = f"Before {order.describe()} with interacting drugs"
    explained = (["calcium", "magnesium"] if hypo.drugs else []) + (
        ["creatinine"] if nephro.drugs else []
    )
    return finding(
        ctx,
        "warning",
        summary,
        lines[:-1] if lines[-1] == "" else lines,
        sources=sources,
        suggestions=[
            _order_tests(ctx, hypo.to_order, reason),
            _order_tests(ctx, nephro.to_order, reason),
        ],
        reports=[g for g in explained if facts.is_unavailable(g)],
    )


def _upper_first(text: str) -> str:
    return text[:1].upper() + text[1:]


def _words(items: list[str]) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"
