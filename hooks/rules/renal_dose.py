"""Renal dose table: label dose by creatinine clearance, renal-dose-adjust, shared renal lines."""

from __future__ import annotations

from dataclasses import dataclass

from hooks.assessments.renal import RenalFunction, assess_renal_function, on_dialysis
from hooks.cards import Finding
from hooks.rules.context import OrderContext, below
from hooks.rules.rule import rule
from hooks.suggestions import update_draft_dose


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


def band_doses(bands: list[dict], function: RenalFunction) -> set[float | None]:
    """The table doses every value a (possibly censored) renal function allows falls into: one dose
    when the band is decided, several when a bound spans a band edge (None: below the table)."""
    if not function.censored:
        return {table_dose(bands, function.value)}
    step = 1e-6
    edges = sorted(
        {
            band[key]
            for band in bands
            for key in ("crcl_above", "crcl_from", "crcl_through", "crcl_below")
            if key in band
        }
    )
    bound, comparator = function.value, function.comparator
    if comparator in (">", ">="):
        start = bound if comparator == ">=" else bound + step
        points = [start, 1e6] + [
            p for edge in edges for p in (edge - step, edge, edge + step) if p >= start
        ]
    else:
        end = bound if comparator == "<=" else bound - step
        points = [step, end] + [
            p for edge in edges for p in (edge - step, edge, edge + step) if step <= p <= end
        ]
    return {table_dose(bands, point) for point in points}


def table_dose(bands: list[dict], clearance: float) -> float | None:
    """The label dose for a clearance, from bands written as above / from-through / from-below
    (bounds as the label states)."""
    for band in bands:
        if "crcl_above" in band and clearance > band["crcl_above"] + 1e-9:
            return band["dose_mg"]
        low = band.get("crcl_from")
        if low is None or below(clearance, low):
            continue
        if "crcl_through" in band and clearance <= band["crcl_through"] + 1e-9:
            return band["dose_mg"]
        if "crcl_below" in band and below(clearance, band["crcl_below"]):
            return band["dose_mg"]
    return None


def describe_bands(bands: list[dict]) -> str:
    """'above 60 mL/min: 4 mg; 50 to 60: 3.5 mg; 40 to under 50: 3.3 mg; ...' from the knowledge
    file's bands."""
    parts = []
    for band in bands:
        if "crcl_above" in band:
            parts.append(f"above {band['crcl_above']:g} mL/min: {band['dose_mg']:g} mg")
        elif "crcl_through" in band:
            parts.append(
                f"{band['crcl_from']:g} to {band['crcl_through']:g}: {band['dose_mg']:g} mg"
            )
        else:
            parts.append(
                f"{band['crcl_from']:g} to under {band['crcl_below']:g}: {band['dose_mg']:g} mg"
            )
    return "; ".join(parts)


@dataclass(frozen=True)
class LabelDose:
    """The dose a product's renal dose table gives for this order, and the renal function it rests
    on."""

    dose_mg: float
    function: RenalFunction
    basis: str
    bands: tuple[dict, ...]
    source: str | None


def renal_label_dose(ctx: OrderContext) -> LabelDose | None:
    """The label's dose for the order's renal function: for zoledronic acid 4 mg the baseline
    clearance of a course under way (the latest for a first dose).

    None when the product has no table, in hypercalcemia of malignancy (no reduction there), without
    a renal function, or below the table (renal-contraindicated speaks then). The suggestion gate
    writes this dose into every order it lets through, so no suggestion draws renal-dose-adjust.
    """
    order, facts = ctx.order, ctx.facts
    table = (order.formulation.renal.get("dose_table") if order.formulation else None) or None
    if (
        table is None
        or facts.setting.name == "hypercalcemia-of-malignancy"
        or ctx.current_renal.function is None
    ):
        return None
    if on_dialysis(facts):
        return None  # below every floor: renal-contraindicated speaks
    function, basis = ctx.current_renal.function, "latest renal function (first dose of a course)"
    if ctx.course_start is not None:
        baseline = _baseline_function(ctx)
        if baseline is not None:
            function, basis = baseline
        else:
            basis = (
                "latest renal function, because no baseline clearance before this course could be"
                " calculated"
            )
    doses = band_doses(table["bands"], function)
    if len(doses) != 1:
        # a censored value spanning a band edge decides no band: renal-data-missing says so
        return None
    dose = doses.pop()
    if dose is None:
        return None
    return LabelDose(dose, function, basis, tuple(table["bands"]), table.get("source"))


@rule("renal-dose-adjust")
def renal_dose_adjust(ctx: OrderContext) -> Finding | None:
    """Zoledronic acid 4 mg above the label's dose for the baseline clearance (latest clearance for
    a first dose)."""
    order = ctx.order
    label = renal_label_dose(ctx)
    if label is None:
        return None
    if ctx.tolerant and order.dose_mg is None:
        return None  # order-select: no dose chosen yet
    function, dose = label.function, label.dose_mg
    full_dose = order.formulation.max_dose_mg if order.formulation else None
    if full_dose is not None and dose >= full_dose - 1e-9:
        # no renal reduction at this clearance: an overdose is dose-above-maximum's to report
        return None
    if order.dose_mg is not None and not order.dose_mg > dose + 1e-9:
        return None
    ordered = f"{order.dose_mg:g} mg" if order.dose_mg is not None else "no stated dose"
    edges = tuple(
        band[key]
        for band in label.bands
        for key in ("crcl_above", "crcl_from", "crcl_through", "crcl_below")
        if key in band
    )
    lines = [
        (
            f"**{order.describe()}**: the label dose for this renal function is **{dose:g} mg**"
            f" (ordered: {ordered})."
        ),
        "",
        renal_function_line(function, edges),
        f"- Dose based on the {label.basis}.",
        "",
        (
            f"Label dose table by creatinine clearance: {describe_bands(list(label.bands))}. During"
            " a course the dose stays tied to the baseline clearance; after a withhold for renal"
            " deterioration the label resumes at the same dose as before."
        ),
    ]
    if not function.is_clearance:
        lines.append(
            "The table is written for creatinine clearance; here it was applied to eGFR because"
            " clearance could not be calculated."
        )
    suggestion = update_draft_dose(order, dose, f"Change dose to {dose:g} mg")
    return Finding(
        ctx.rule_id,
        "warning",
        f"Zoledronic acid dose for {function.shown(edges)} is {dose:g} mg (ordered {ordered})",
        "\n".join(lines),
        renal_sources(ctx, label.source),
        (suggestion,) if suggestion else (),
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
