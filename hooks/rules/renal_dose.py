"""Renal dose tables applied to an order: the band for the patient, renal-dose-adjust, the limits a
censored value cannot decide, shared renal lines."""

from __future__ import annotations

from hooks.assessments.renal import RenalFunction, assess_renal_function, on_dialysis
from hooks.cards import Finding, Suggestion
from hooks.orders import BoneAgentOrder
from hooks.rules.context import OrderContext
from hooks.rules.renal_bands import (
    LabelDose,
    apply_band,
    band_edges,
    band_indexes,
    band_text,
    describe_bands,
    doses_per_day,
    exceeded,
)
from hooks.rules.rule import rule
from hooks.suggestion_labels import dose_label
from hooks.suggestions import update_draft


def renal_sources(
    ctx: OrderContext, primary: str | None = None, shows_clearance: bool = True
) -> tuple[str, ...]:
    """The product's own label when known (else the running rule's sources), plus Cockcroft-Gault
    when a clearance is shown."""
    keys = [primary] if primary else list(ctx.knowledge.rule_meta(ctx.rule_id)["sources"])
    function = ctx.current_renal.function
    if shows_clearance and function is not None and function.is_clearance:
        keys.append("cockcroft-gault")
    return tuple(dict.fromkeys(keys))


def renal_function_line(function: RenalFunction, limits=()) -> str:
    return f"- {function.working(limits)}"


def undecided_thresholds(ctx: OrderContext) -> list[str]:
    """The renal limits this order needs that a censored renal value cannot decide (catalog: a bound
    decides a threshold only when every value it allows lies on one side), each described for the
    card."""
    function = ctx.current_renal.function
    if function is None or not function.censored:
        return []
    order = ctx.order
    formulation = order.formulation
    renal = formulation.renal if formulation else {}
    hypercalcemia = (
        ctx.facts.setting.name == "hypercalcemia-of-malignancy"
        and renal.get("hypercalcemia_withhold_creatinine_mg_dl") is not None
    )
    found: list[str] = []
    floor = renal.get("crcl_floor")
    if (
        formulation is not None
        and floor is not None
        and not hypercalcemia
        and function.decide_below(floor) is None
    ):
        found.append(
            f"the limit of {floor} mL/min below which {formulation.display.split(' (')[0]} is"
            " not given"
        )
    table = renal.get("dose_table")
    if table and not hypercalcemia:
        indexes = band_indexes(table["bands"], function)
        if len(indexes) > 1:
            per_day = table.get("dose_per") == "day"
            listed = [
                band_text(table["bands"][i], per_day)
                for i in sorted((i for i in indexes if i is not None), reverse=True)
            ]
            shown = (
                (", ".join(listed[:-1]) + " or " + listed[-1])
                if len(listed) > 1
                else "".join(listed)
            )
            if None in indexes:
                shown += ", or a value below the table"
            found.append(f"the dose band of the label's table (it allows {shown})")
    check = renal.get("dose_check")
    if check and function.decide_below(check["crcl_below"]) is None:
        found.append(f"the limit of {check['crcl_below']:g} mL/min for the label's renal dose")
    if order.ingredient == "denosumab":
        limit = ctx.threshold("denosumab_severe_renal_impairment_ml_min")
        if function.decide_below(limit) is None:
            found.append(
                f"the limit of {limit} mL/min for severe renal impairment (hypocalcemia risk)"
            )
    return found


def renal_label_dose(ctx: OrderContext) -> LabelDose | None:
    """The band of the order's renal table for the patient: by the baseline clearance of a course
    under way when the table says so (zoledronic acid 4 mg), else the latest; dialysis takes the
    lowest band of a product without a floor.

    None when the product has no table, in hypercalcemia of malignancy for a product whose label
    sets a creatinine limit there instead (zoledronic acid), without a renal function, or below the
    table or floor (renal-contraindicated speaks then). The suggestion gate writes this band into
    every order it lets through, so no suggestion draws renal-dose-adjust.
    """
    return ctx.remember("renal label dose", lambda: _renal_label_dose(ctx))


def _renal_label_dose(ctx: OrderContext) -> LabelDose | None:
    order, facts = ctx.order, ctx.facts
    renal = order.formulation.renal if order.formulation else {}
    table = renal.get("dose_table")
    if not table or (
        facts.setting.name == "hypercalcemia-of-malignancy"
        and renal.get("hypercalcemia_withhold_creatinine_mg_dl") is not None
    ):
        return None
    bands = tuple(table["bands"])
    per_day = table.get("dose_per") == "day"
    dialysis = on_dialysis(facts)
    if dialysis:
        if renal.get("crcl_floor") is not None:
            return None  # below every floor: renal-contraindicated speaks
        lowest = min(range(len(bands)), key=lambda i: min(band_edges(bands[i : i + 1]) or (0,)))
        basis = "dialysis, which takes the lowest band of the table"
        return LabelDose(
            bands[lowest], lowest, None, basis, bands, table.get("source"), per_day, tuple(dialysis)
        )
    function = ctx.current_renal.function
    if function is None:
        return None
    basis = "latest renal function"
    if table.get("basis") == "baseline":
        basis = "latest renal function (first dose of a course)"
        if ctx.course_start is not None:
            baseline = _baseline_function(ctx)
            if baseline is not None:
                function, basis = baseline
            else:
                basis = (
                    "latest renal function, because no baseline clearance before this course"
                    " could be calculated"
                )
    indexes = band_indexes(list(bands), function)
    if len(indexes) != 1:
        # a censored value spanning a band edge decides no band: renal-data-missing says so
        return None
    index = indexes.pop()
    if index is None:
        return None
    return LabelDose(
        bands[index],
        index,
        function,
        basis,
        bands,
        table.get("source"),
        per_day,
        baseline=table.get("basis") == "baseline",
    )


@rule("renal-dose-adjust")
def renal_dose_adjust(ctx: OrderContext) -> Finding | None:
    """An order above its renal band (dose, daily dose or frequency) for the patient's clearance or
    dialysis; a product without a table but a renal check (IV clodronate) below its limit."""
    order = ctx.order
    label = renal_label_dose(ctx)
    if label is None:
        return _dose_check(ctx)
    if not label.reduced:
        return None  # no renal reduction here: an overdose is dose-above-maximum's to report
    over = exceeded(order, label)
    if ctx.tolerant and order.dose_mg is None:
        over = [o for o in over if o != "dose"]  # order-select: no dose chosen yet
    if not over:
        return None
    edges = band_edges(label.bands)
    target = band_text(label.band, label.per_day)
    ordered = _ordered(order, label)
    lines = [
        f"**{order.describe()}**: the label gives **{target}** at this renal function (ordered:"
        f" {ordered}).",
        "",
        *(
            [renal_function_line(label.function, edges)]
            if label.function
            else [f"- On dialysis: {line}." for line in label.dialysis]
        ),
        f"- Band chosen by the {label.basis}.",
        "",
        f"Label table by creatinine clearance: {describe_bands(list(label.bands), label.per_day)}.",
    ]
    if label.baseline:
        lines.append(
            "During a course the dose stays tied to the baseline clearance; after a withhold for"
            " renal deterioration the label resumes at the same dose as before."
        )
    if label.function is not None and not label.function.is_clearance:
        lines.append(
            "The table is written for creatinine clearance; here it was applied to eGFR because"
            " clearance could not be calculated."
        )
    suggestion = _band_update(order, label, over)
    what = "frequency" if over == ["interval"] else "dose"
    return Finding(
        ctx.rule_id,
        "warning",
        f"{order.ingredient_display.capitalize()} {what} {label.at('for')} is {target}"
        f" (ordered {ordered})",
        "\n".join(lines),
        renal_sources(ctx, label.source),
        (suggestion,) if suggestion else (),
        order.reference,
    )


def _ordered(order: BoneAgentOrder, label: LabelDose) -> str:
    if order.dose_mg is None:
        return "no stated dose"
    if label.per_day:
        daily = order.dose_mg * doses_per_day(order)
        how = order.interval.describe() if order.interval else "no interval stated: once daily"
        return f"{daily:g} mg/day: {order.dose_mg:g} mg {how}"
    every = f" {order.interval.describe()}" if order.interval and label.every else ""
    return f"{order.dose_mg:g} mg{every}"


def _band_update(order: BoneAgentOrder, label: LabelDose, over: list[str]) -> Suggestion | None:
    """One update of the draft to its band (dose, interval and infusion time together), labelled
    with the change."""
    dose = label.dose_for(order)
    every = label.every if "interval" in over else None
    text = band_text(label.band, label.per_day)
    return update_draft(
        order,
        dose_label(order.dose_mg, dose, every),
        f"Change the draft order to {dose:g} mg ({text} by the renal table)",
        lambda draft: apply_band(draft["dosageInstruction"][0], order, label),
    )


def _dose_check(ctx: OrderContext) -> Finding | None:
    """A product with no renal table in the knowledge but a renal check (IV clodronate): below the
    limit, or on dialysis, the label's renal dose must be looked up."""
    order = ctx.order
    check = (order.formulation.renal.get("dose_check") if order.formulation else None) or None
    if check is None:
        return None
    limit = check["crcl_below"]
    dialysis = on_dialysis(ctx.facts)
    function = ctx.current_renal.function
    if dialysis:
        shown, evidence = "On dialysis", [f"- On dialysis: {line}." for line in dialysis]
    elif function is not None and function.decide_below(limit) is True:
        shown = function.shown((limit,))
        evidence = [renal_function_line(function, (limit,))]
    else:
        return None
    lines = [
        f"**{order.describe()}** at this renal function: {check['message']}.",
        "",
        *evidence,
        "",
        f"The knowledge holds no renal dose table for this product; below {limit:g} mL/min the"
        " label's renal dose applies: look it up before this dose is given.",
    ]
    return Finding(
        ctx.rule_id,
        "warning",
        f"{shown}{'' if dialysis else f' is below {limit:g} mL/min'}: {check['message']}",
        "\n".join(lines),
        renal_sources(ctx, order.formulation.renal.get("source") if order.formulation else None),
        (),
        order.reference,
    )


def _baseline_function(ctx: OrderContext) -> tuple[RenalFunction, str] | None:
    baseline = ctx.baseline_creatinine
    if baseline is None or ctx.course_start is None or baseline[0].when >= ctx.course_start.when:
        return None
    assessment = assess_renal_function(
        ctx.facts,
        baseline[0],
        ctx.threshold("weight_max_age_days"),
        ctx.creatinine_window_days,
        current=False,
    )
    if assessment.function is None:
        return None
    return assessment.function, f"baseline clearance: {baseline[1]}"
