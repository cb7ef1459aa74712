"""Renal safety rules: missing renal data, contraindication by creatinine clearance, dose table,
creatinine rise."""

from __future__ import annotations

from dataclasses import dataclass

from hooks.assessments.renal import on_dialysis
from hooks.cards import Finding
from hooks.facts.groups import group_name
from hooks.facts.model import LabResult
from hooks.rules.context import OrderContext, below
from hooks.rules.renal_dose import renal_function_line, renal_sources, undecided_thresholds
from hooks.rules.rule import rule
from hooks.suggestions import delete_draft, order_observation


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
            (u.when, u)
            for u in facts.unreadable.get("creatinine", [])
            if u.when and (facts.now - u.when).days <= window
        ]
        if unreadable:
            when, u = unreadable[0]
            problems.append(
                f"A creatinine result from {when.date().isoformat()} cannot be used: {u.reason}"
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
    stale = None if unavailable else _stale_for_severe_impairment(ctx)
    if stale:
        problems.append(stale)
        need_creatinine = True
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
        else "Renal function out of date"
        if stale and len(problems) == 1
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
    ) or ctx.label_source  # denosumab has no renal table: its own label
    summary = f"{what} before {order.ingredient_display}" + (
        f": order {to_order}" if to_order else ""
    )
    return Finding(
        ctx.rule_id,
        "warning",
        summary,
        detail,
        renal_sources(ctx, primary, shows_clearance=False),
        tuple(suggestions),
        order.reference,
        reports_unavailable=("creatinine", "egfr", "body_weight"),
    )


def _stale_for_severe_impairment(ctx: OrderContext) -> str | None:
    """Denosumab in severe renal impairment (the latest CrCl or eGFR below the limit, or dialysis)
    with a creatinine older than the shorter window: the line saying so, else None.

    Denosumab's creatinine window is long (no renal dose adjustment, L19), but the Prolia boxed
    warning (L22) makes the current renal function decide calcium monitoring when it is severe.
    """
    creatinine = ctx.recent_creatinine
    if ctx.order.ingredient != "denosumab" or creatinine is None:
        return None
    window = ctx.threshold("creatinine_max_age_days_denosumab_severe")
    age = ctx.days_since(creatinine.when)
    if age <= window:
        return None
    limit = ctx.threshold("denosumab_severe_renal_impairment_ml_min")
    function = ctx.current_renal.function
    egfr = ctx.facts.latest("egfr", ctx.creatinine_window_days)
    if on_dialysis(ctx.facts):
        why = "on dialysis"
    elif function is not None and function.decide_below(limit) is True:
        why = f"with {function.shown((limit,))} (below {limit:g} mL/min)"
    elif egfr is not None and egfr.decide_below(limit) is True:
        why = f"with eGFR {egfr.bound}{egfr.value:g} mL/min/1.73 m² (below {limit:g})"
    else:
        return None
    return (
        f"The latest creatinine, {creatinine.shown()}, is {age} days old: {why}, denosumab needs"
        f" a creatinine within the last {window} days."
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


@rule("renal-contraindicated")
def renal_contraindicated(ctx: OrderContext) -> Finding | None:
    """Clearance below the product's floor, or dialysis (below every floor).

    In hypercalcemia of malignancy zoledronic acid has no clearance floor: at creatinine >= 4.5
    mg/dL the label asks to weigh benefit and risk (a warning). A floor the label sets only for
    some settings (pamidronate: bone metastases) is a warning in the others.
    """
    order = ctx.order
    formulation = order.formulation
    renal = formulation.renal if formulation else {}
    floor = renal.get("crcl_floor")
    if formulation is None or floor is None:
        return None
    function = ctx.current_renal.function
    dialysis = on_dialysis(ctx.facts)
    hypercalcemia_limit = renal.get("hypercalcemia_withhold_creatinine_mg_dl")
    indicator = "critical"
    product = formulation.display.split(" (")[0]
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
            [renal_function_line(function)] if function else [f"- Creatinine {creatinine.shown()}."]
        )
    elif dialysis:
        reason = (
            f"{formulation.display}: dialysis counts as renal function below every clearance"
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
            f"{formulation.display}: not to be given below a creatinine clearance of {floor}"
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
        evidence = [renal_function_line(function, (floor,))]
    weighed = renal.get("crcl_floor_critical_settings")
    if indicator == "critical" and weighed and ctx.facts.setting.name not in weighed:
        # pamidronate: "not recommended" only for bone metastases; elsewhere clinical judgement
        indicator = "warning"
        summary = summary.replace(f"do not give {product}", f"weigh {product} against the risk")
        reason += (
            f" The label's limit is for {' and '.join(weighed)} settings; in this setting"
            " clinical judgement weighs the potential benefit against the potential risk."
        )
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
        renal_sources(ctx, renal.get("source")),
        (suggestion,) if suggestion else (),
        order.reference,
    )


@dataclass(frozen=True)
class CreatinineRise:
    """A creatinine rise over the baseline that reaches the label's withhold threshold."""

    rise: float
    limit: float
    baseline: LabResult
    baseline_basis: str
    abnormal_baseline: bool


def creatinine_rise(ctx: OrderContext, latest: LabResult | None) -> CreatinineRise | None:
    """The rise of `latest` over the baseline creatinine (last before therapy start, else earliest
    in 24 months) when it reaches the withhold threshold; also read by nephrotoxic-comedication."""
    spec = ctx.threshold("renal_deterioration")
    baseline = ctx.baseline_creatinine
    if latest is None or baseline is None or latest is baseline[0]:
        return None
    base = baseline[0]
    if latest.when <= base.when:
        return None
    # A censored creatinine decides the rise only as a lower bound: the latest at least ('>' or
    # exact) and the baseline at most ('<' or exact), with the baseline's band (normal or raised)
    # decided.
    if latest.comparator in ("<", "<=") or base.comparator in (">", ">="):
        return None
    baseline_low = base.decide_below(spec["baseline_abnormal_from_mg_dl"])
    if baseline_low is None:
        return None
    limit = spec[
        "rise_if_baseline_normal_mg_dl" if baseline_low else "rise_if_baseline_abnormal_mg_dl"
    ]
    rise = latest.value - base.value
    if below(rise, limit):
        return None
    return CreatinineRise(rise, limit, base, baseline[1], not baseline_low)


@rule("renal-deterioration")
def renal_deterioration(ctx: OrderContext) -> Finding | None:
    """Patient already on zoledronic acid or pamidronate whose creatinine has risen past the label's
    withhold threshold."""
    order, facts = ctx.order, ctx.facts
    rule = ctx.threshold("renal_deterioration")
    if order.ingredient not in rule["ingredients"] or not ctx.course_doses:
        return None
    latest = facts.latest("creatinine")
    found = creatinine_rise(ctx, latest)
    if latest is None or found is None:
        return None
    rise, limit, base, abnormal = found.rise, found.limit, found.baseline, found.abnormal_baseline
    resume_below = base.value * (1 + rule["resume_within_fraction"])
    lines = [
        (
            f"**Withhold {order.describe()}**: serum creatinine has risen by {rise:.2f} mg/dL since"
            " baseline."
        ),
        "",
        f"- Baseline: {base.shown()} — {found.baseline_basis}.",
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
        renal_sources(
            ctx,
            rule.get("source_by_ingredient", {}).get(order.ingredient, rule["source"]),
            shows_clearance=False,
        ),
        (suggestion,) if suggestion else (),
        order.reference,
    )
