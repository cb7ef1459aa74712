"""Renal safety rules: missing renal data, contraindication by creatinine clearance, dose table,
creatinine rise."""

from __future__ import annotations

from dataclasses import dataclass

from hooks.assessments.renal import RenalFunction, assess_renal_function, on_dialysis
from hooks.cards import Finding
from hooks.facts.groups import group_name
from hooks.rules.context import OrderContext, below
from hooks.rules.rule import rule
from hooks.suggestions import delete_draft, order_observation, update_draft_dose


@rule("renal-data-missing")
def renal_data_missing(ctx: OrderContext) -> Finding | None:
    """No usable creatinine before the dose, or no way to turn it into a clearance: say what is
    missing and offer it."""
    facts, order, window = ctx.facts, ctx.order, ctx.creatinine_window_days
    if ctx.is_bisphosphonate and on_dialysis(facts):
        return None  # dialysis decides renal-contraindicated; no clearance is needed
    problems: list[str] = []
    need_creatinine = need_weight = False
    unavailable = facts.is_unavailable("creatinine")
    if unavailable:
        problems.append(
            f"{group_name('creatinine')} could not be retrieved from the EHR ({unavailable})."
        )
        need_creatinine = True
    elif ctx.recent_creatinine is None:
        need_creatinine = True
        older = facts.latest("creatinine")
        unreadable = [
            u
            for u in facts.unreadable.get("creatinine", [])
            if u.when and (facts.now - u.when).days <= window
        ]
        if unreadable:
            u = unreadable[0]
            problems.append(
                f"A creatinine result from {u.when.date().isoformat()} cannot be used: {u.reason}"
                f"{f' ({u.recorded_unit!r})' if u.recorded_unit else ''}."
            )
        problems.append(
            f"No serum creatinine within the last {window} days"
            + (f"; the latest is {older.shown()}." if older else "; none on record.")
        )
    elif ctx.current_renal.function is None:
        missing = ctx.current_renal.missing
        weight_unavailable = facts.is_unavailable("body_weight")
        if weight_unavailable:
            problems.append(
                f"{group_name('body_weight')} could not be retrieved from the EHR"
                f" ({weight_unavailable})."
            )
        problems.append(
            f"Creatinine {ctx.recent_creatinine.shown()} is on record, but creatinine clearance"
            f" cannot be calculated without: {', '.join(missing)}; and there is no recent eGFR."
        )
        need_weight = any(m.startswith("body weight") for m in missing)
    else:
        undecided = undecided_thresholds(ctx)
        if undecided:
            function = ctx.current_renal.function
            problems.append(
                f"The renal function on record is a censored value: {function.working()}. It cannot"
                f" decide {'; nor '.join(undecided)}, so no renal limit or dose band was applied"
                " to it."
            )
            need_creatinine = True
            need_weight = function.is_clearance is False and any(
                m.startswith("body weight") for m in ctx.current_renal.missing
            )
    if not problems:
        return None
    suggestions = []
    if need_creatinine:
        suggestions.append(
            order_observation(
                ctx.knowledge,
                "serum-creatinine",
                ctx.patient_reference,
                ctx.user_reference,
                ctx.now,
                f"Renal function before {order.describe()}",
            )
        )
    if need_weight:
        suggestions.append(
            order_observation(
                ctx.knowledge,
                "body-weight",
                ctx.patient_reference,
                ctx.user_reference,
                ctx.now,
                "Weight for Cockcroft-Gault creatinine clearance",
            )
        )
    censored = (
        not unavailable
        and ctx.recent_creatinine is not None
        and ctx.current_renal.function is not None
    )
    what = (
        "Renal function could not be checked"
        if unavailable
        else "Renal function censored"
        if censored
        else "Renal function not documented"
    )
    to_order = " and ".join(
        name
        for name, needed in (("creatinine", need_creatinine), ("weight", need_weight))
        if needed
    )
    detail = (
        f"**{what}** for {order.describe()}.\n\n"
        + "\n".join(f"- {p}" for p in problems)
        + f"\n\n{_why_renal_function(order)} Check renal function before this order is given."
    )
    primary = (
        order.formulation.renal.get("source")
        if order.formulation and order.formulation.renal
        else None
    )
    summary = f"{what} before {order.ingredient_display}" + (
        f": order {to_order}" if to_order else ""
    )
    return Finding(
        ctx.rule_id,
        "warning",
        summary,
        detail,
        _rule_sources(ctx, primary, shows_clearance=False),
        tuple(suggestions),
        order.reference,
        reports_unavailable=("creatinine", "egfr", "body_weight"),
    )


def _why_renal_function(order) -> str:
    """Why this product needs renal function, in the clinician's terms."""
    if order.ingredient == "denosumab":
        return (
            "Denosumab needs no renal dose change, but severe renal impairment (CrCl below 30"
            " mL/min or dialysis) raises the risk of severe hypocalcemia, so renal function decides"
            " how closely calcium is monitored."
        )
    if order.is_oral:
        return (
            "Oral bisphosphonates are not recommended below the label's creatinine clearance limit "
            "(Cockcroft-Gault), so a creatinine from the last year and a recent weight are needed."
        )
    return (
        "The label asks for serum creatinine before each dose of an IV bisphosphonate; the dose and"
        " the contraindication limits are set by creatinine clearance (Cockcroft-Gault)."
    )


def _rule_sources(
    ctx: OrderContext, primary: str | None = None, shows_clearance: bool = True
) -> tuple[str, ...]:
    """The product's own label when known (else the running rule's sources), plus Cockcroft-Gault
    when a clearance is shown."""
    keys = [primary] if primary else list(ctx.knowledge.rule_meta(ctx.rule_id)["sources"])
    function = ctx.current_renal.function
    if shows_clearance and function is not None and function.is_clearance:
        keys.append("cockcroft-gault")
    return tuple(dict.fromkeys(keys))


def _renal_function_line(function: RenalFunction, limits=()) -> str:
    return f"- {function.working(limits)}"


def undecided_thresholds(ctx: OrderContext) -> list[str]:
    """The renal limits this order needs that a censored renal value cannot decide (catalog: a bound
    decides a threshold only when every value it allows lies on one side), each described for the
    card."""
    function = ctx.current_renal.function
    if function is None or not function.censored:
        return []
    order = ctx.order
    renal = order.formulation.renal if order.formulation else {}
    hypercalcemia = (
        ctx.facts.setting.name == "hypercalcemia-of-malignancy"
        and renal.get("hypercalcemia_withhold_creatinine_mg_dl") is not None
    )
    found: list[str] = []
    floor = renal.get("crcl_floor")
    if floor is not None and not hypercalcemia and function.decide_below(floor) is None:
        found.append(
            f"the limit of {floor} mL/min below which {order.formulation.display.split(' (')[0]} is"
            " not given"
        )
    table = renal.get("dose_table")
    if table and ctx.facts.setting.name != "hypercalcemia-of-malignancy":
        doses = band_doses(table["bands"], function)
        if len(doses) > 1:
            listed = [f"{d:g} mg" for d in sorted(d for d in doses if d is not None)]
            shown = (
                (", ".join(listed[:-1]) + " or " + listed[-1])
                if len(listed) > 1
                else "".join(listed)
            )
            if None in doses:
                shown += ", or a value below the table"
            found.append(f"the dose band of the label's table (it allows {shown})")
    if order.ingredient == "denosumab":
        limit = ctx.threshold("denosumab_severe_renal_impairment_ml_min")
        if function.decide_below(limit) is None:
            found.append(
                f"the limit of {limit} mL/min for severe renal impairment (hypocalcemia risk)"
            )
    return found


@rule("renal-contraindicated")
def renal_contraindicated(ctx: OrderContext) -> Finding | None:
    """Clearance below the product's floor, or dialysis (below every floor).

    In hypercalcemia of malignancy zoledronic
    acid has no clearance floor: at creatinine >= 4.5 mg/dL the label asks to weigh benefit and risk (a warning).
    """
    order = ctx.order
    renal = order.formulation.renal if order.formulation else {}
    floor = renal.get("crcl_floor")
    if floor is None:
        return None
    function = ctx.current_renal.function
    dialysis = on_dialysis(ctx.facts)
    hypercalcemia_limit = renal.get("hypercalcemia_withhold_creatinine_mg_dl")
    indicator = "critical"
    product = order.formulation.display.split(" (")[0]
    if ctx.facts.setting.name == "hypercalcemia-of-malignancy" and hypercalcemia_limit is not None:
        creatinine = ctx.recent_creatinine
        if creatinine is None or creatinine.decide_below(hypercalcemia_limit) is not False:
            return None  # below the limit, or a censored value that cannot tell
        indicator = "warning"
        reason = (
            "In hypercalcemia of malignancy the label needs no renal dose reduction below a serum"
            f" creatinine of {hypercalcemia_limit:g} mg/dL; the latest is {creatinine.shown()}."
            " Patients with higher values were not studied, and the hypercalcemia itself often"
            " causes the renal failure: weigh benefit and risk."
        )
        summary = (
            f"Creatinine {creatinine.bound}{creatinine.value:.2f} mg/dL is at or above"
            f" {hypercalcemia_limit:g}: weigh {order.ingredient_display} against the renal risk"
        )
        evidence = (
            [_renal_function_line(function)]
            if function
            else [f"- Creatinine {creatinine.shown()}."]
        )
    elif dialysis:
        reason = (
            f"{order.formulation.display}: dialysis counts as renal function below every clearance"
            f" floor (here {floor} mL/min); no Cockcroft-Gault value is the basis here."
        )
        summary = f"On dialysis: do not give {product}"
        evidence = [f"- On dialysis: {line}." for line in dialysis]
    else:
        if function is None or function.decide_below(floor) is not True:
            # at or above the floor, or a censored value that cannot tell (renal-data-missing says
            # so)
            return None
        reason = (
            f"{order.formulation.display}: not to be given below a creatinine clearance of {floor}"
            " mL/min."
        )
        if not function.is_clearance:
            reason += (
                " Here the eGFR was compared with it, because no creatinine clearance could be"
                " calculated."
            )
        summary = (
            f"{function.shown((floor,))} is below the limit of {floor} mL/min: do not give"
            f" {product}"
        )
        evidence = [_renal_function_line(function, (floor,))]
    verdict = "is contraindicated" if indicator == "critical" else "needs a benefit-risk decision"
    lines = [
        f"**{order.describe()}** {verdict} at this renal function.",
        "",
        *evidence,
        f"- Clinical setting: {ctx.facts.setting.name} ({ctx.facts.setting.evidence}).",
        "",
        reason,
    ]
    if (
        ctx.facts.setting.name in ("bone-metastatic", "metastatic-other")
        and order.ingredient != "denosumab"
    ):
        lines.append(
            "For bone metastases, denosumab 120 mg needs no renal dose adjustment; if it is chosen,"
            " monitor calcium closely, since severe renal impairment raises the risk of"
            " hypocalcemia."
        )
    suggestion = delete_draft(order, "Remove this order")
    return Finding(
        ctx.rule_id,
        indicator,
        summary,
        "\n".join(lines),
        _rule_sources(ctx, renal.get("source")),
        (suggestion,) if suggestion else (),
        order.reference,
    )


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
        _renal_function_line(function, edges),
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
        _rule_sources(ctx, label.source),
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


@rule("renal-deterioration")
def renal_deterioration(ctx: OrderContext) -> Finding | None:
    """Patient already on zoledronic acid or pamidronate whose creatinine has risen past the label's
    withhold threshold."""
    order, facts = ctx.order, ctx.facts
    rule = ctx.threshold("renal_deterioration")
    if order.ingredient not in rule["ingredients"] or not ctx.course_doses:
        return None
    latest = facts.latest("creatinine")
    baseline = ctx.baseline_creatinine
    if (
        latest is None
        or baseline is None
        or latest is baseline[0]
        or latest.when <= baseline[0].when
    ):
        return None
    base = baseline[0]
    # A censored creatinine decides the rise only as a lower bound: the latest at least ('>' or
    # exact) and the baseline at
    # most ('<' or exact), with the baseline's band (normal or raised) decided.
    if latest.comparator in ("<", "<=") or base.comparator in (">", ">="):
        return None
    baseline_low = base.decide_below(rule["baseline_abnormal_from_mg_dl"])
    if baseline_low is None:
        return None
    abnormal = not baseline_low
    limit = (
        rule["rise_if_baseline_abnormal_mg_dl"]
        if abnormal
        else rule["rise_if_baseline_normal_mg_dl"]
    )
    rise = latest.value - base.value
    if below(rise, limit):
        return None
    resume_below = base.value * (1 + rule["resume_within_fraction"])
    lines = [
        (
            f"**Withhold {order.describe()}**: serum creatinine has risen by {rise:.2f} mg/dL since"
            " baseline."
        ),
        "",
        f"- Baseline: {base.shown()} — {baseline[1]}.",
        f"- Latest: {latest.shown()}.",
        (
            f"- Withhold threshold for a {'raised' if abnormal else 'normal'} baseline"
            f" ({'at or above' if abnormal else 'below'} {rule['baseline_abnormal_from_mg_dl']:g}"
            f" mg/dL): a rise of {limit:g} mg/dL."
        ),
        "",
        (
            f"Resume only when creatinine is back within {rule['resume_within_fraction']:.0%} of"
            f" baseline (at or below {resume_below:.2f} mg/dL), at the same dose as before the"
            " pause."
        ),
    ]
    suggestion = delete_draft(order, "Withhold: remove this order")
    return Finding(
        ctx.rule_id,
        "critical",
        f"Creatinine up {rise:.1f} mg/dL from baseline on {order.ingredient_display}: withhold this"
        " dose",
        "\n".join(lines),
        _rule_sources(ctx, rule.get("source"), shows_clearance=False),
        (suggestion,) if suggestion else (),
        order.reference,
    )
