"""Rules on the patient's history: jaw osteonecrosis and its risks, dental check, pregnancy,
allergy, esophagus, femur."""

from __future__ import annotations

from datetime import UTC

from hooks.cards import Finding
from hooks.facts.groups import group_name
from hooks.fhir_read import shift_months
from hooks.rules.common import condition_line, finding, unavailable_line
from hooks.rules.context import OrderContext
from hooks.rules.rule import rule
from hooks.suggestions import delete_draft, order_observation


@rule("onj-history")
def onj_history(ctx: OrderContext) -> Finding | None:
    """Osteonecrosis of the jaw on record, whatever its clinical status (resolved counts; refuted
    does not)."""
    conditions = ctx.facts.conditions_in("onj", active_only=False)
    if not conditions:
        return None
    lines = [
        f"**{ctx.order.describe()}**: the patient has a history of osteonecrosis of the jaw.",
        "",
        *map(condition_line, conditions),
        "",
        (
            "Bisphosphonates and denosumab cause osteonecrosis of the jaw; after an episode,"
            " re-exposure needs a decision with the oral surgeon or dentist. Do not give as"
            " ordered."
        ),
    ]
    return finding(
        ctx,
        "critical",
        f"History of osteonecrosis of the jaw: do not give {ctx.order.ingredient_display} as"
        " ordered",
        lines,
        sources=[ctx.label_source, "ago-2024"],
        suggestions=[delete_draft(ctx.order, "Remove this order")],
    )


@rule("atypical-femur-fracture-history")
def atypical_femur_fracture_history(ctx: OrderContext) -> Finding | None:
    """Atypical femoral fracture on record, whatever its clinical status unless refuted."""
    conditions = ctx.facts.conditions_in("atypical-femoral-fracture", active_only=False)
    if not conditions:
        return None
    lines = [
        f"**{ctx.order.describe()}**: the patient has had an atypical femoral fracture.",
        "",
        *map(condition_line, conditions),
        "",
        (
            "Atypical femoral fractures are linked to long-term bisphosphonate and denosumab use"
            " (about 11 per 10,000 person-years). Weigh whether to continue, ask about thigh or"
            " groin pain, and image the other femur if symptoms appear."
        ),
    ]
    return finding(
        ctx,
        "warning",
        f"History of atypical femoral fracture: reconsider {ctx.order.ingredient_display}",
        lines,
        sources=[ctx.label_source, "ago-2024"],
    )


@rule("age-under-18")
def age_under_18(ctx: OrderContext) -> Finding | None:
    """A patient younger than the labels' minimum age on the order date (no birth date: no card)."""
    minimum = ctx.threshold("minimum_age_years")
    age = ctx.facts.age_on(ctx.now.astimezone(UTC).date())
    if age is None or age >= minimum:
        return None
    lines = [
        f"**{ctx.order.describe()}** for a patient aged {age}.",
        "",
        (
            "Safety and efficacy of bone-modifying agents have not been established below"
            f" {minimum} years; bisphosphonates persist in growing bone. Confirm the indication"
            " with a paediatric or adolescent oncology specialist."
        ),
    ]
    return finding(
        ctx,
        "warning",
        f"Patient aged {age}: {ctx.order.ingredient_display} is not established below {minimum}",
        lines,
        sources=[ctx.label_source],
    )


@rule("oral-bp-esophageal")
def oral_bp_esophageal(ctx: OrderContext) -> Finding | None:
    """Oral bisphosphonate with an active esophageal stricture or achalasia (contraindicated), or
    with Barrett's esophagus alone (a precaution: caution in active upper GI disease)."""
    facts, order = ctx.facts, ctx.order
    blocking = facts.conditions_in("esophageal-disorder", active_only=True)
    barretts = facts.conditions_in("barretts-esophagus", active_only=True)
    if blocking:
        lines = [
            (
                f"**{order.describe()}** is contraindicated with an esophageal disorder that delays"
                " emptying (stricture or achalasia)."
            ),
            "",
            *map(condition_line, blocking + barretts),
            "",
            (
                "A tablet held up in the esophagus can cause esophagitis, ulcers and strictures. If"
                " a bisphosphonate is needed, intravenous zoledronic acid bypasses the esophagus."
            ),
        ]
        return finding(
            ctx,
            "critical",
            f"Esophageal stricture or achalasia: oral {order.ingredient_display} is"
            " contraindicated",
            lines,
            sources=[ctx.label_source, "alendronate-label", "risedronate-label"],
            suggestions=[delete_draft(order, "Remove this order")],
        )
    if not barretts:
        return None
    lines = [
        f"**{order.describe()}** with Barrett's esophagus on record.",
        "",
        *map(condition_line, barretts),
        "",
        (
            "Oral bisphosphonates can irritate the upper gastrointestinal mucosa; the label asks"
            " for caution in active upper gastrointestinal disease. Barrett's esophagus is not a"
            " contraindication: give it with the administration instructions (full glass of"
            " water, upright for 30 minutes) and stop it if dysphagia, pain on swallowing or new"
            " heartburn appear; intravenous zoledronic acid avoids the esophagus."
        ),
    ]
    return finding(
        ctx,
        "warning",
        f"Barrett's esophagus: give oral {order.ingredient_display} with caution",
        lines,
        sources=[ctx.label_source, "alendronate-label"],
    )


@rule("pregnancy-or-lactation")
def pregnancy_or_lactation(ctx: OrderContext) -> Finding | None:
    """Active pregnancy or lactation on the problem list, or a current pregnancy-status observation
    of 'pregnant'."""
    facts = ctx.facts
    evidence = [
        condition_line(c)
        for value_set in ("pregnancy", "lactation")
        for c in facts.conditions_in(value_set, active_only=True)
    ]
    window = ctx.knowledge.raw["pregnancy_status"]["max_age_days"]
    # An "unknown" answer says nothing either way, so it does not cancel an earlier "pregnant" one.
    latest_status = next((s for s in facts.pregnancy_statuses if s.answer != "unknown"), None)
    if (
        latest_status
        and latest_status.answer == "pregnant"
        and ctx.days_since(latest_status.when) <= window
    ):
        evidence.append(
            f"- Pregnancy status: {latest_status.label} on {latest_status.when.date().isoformat()}."
        )
    if not evidence:
        return None
    lines = [
        f"**{ctx.order.describe()}** must not be given in pregnancy or while breast-feeding.",
        "",
        *evidence,
        "",
        "Bisphosphonates and denosumab can harm the fetus or the breast-fed child.",
    ]
    if ctx.order.ingredient == "denosumab":
        lines.append(
            "Denosumab also needs effective contraception during treatment and for at least 5"
            " months after the last dose."
        )
    return finding(
        ctx,
        "critical",
        f"Pregnancy or breast-feeding on record: do not give {ctx.order.ingredient_display}",
        lines,
        sources=[ctx.label_source],
        suggestions=[delete_draft(ctx.order, "Remove this order")],
    )


@rule("hypersensitivity")
def hypersensitivity(ctx: OrderContext) -> Finding | None:
    """Allergy to the ordered ingredient, or to bisphosphonates as a class when a bisphosphonate is
    ordered."""
    order = ctx.order
    matching = [
        a
        for a in ctx.facts.allergies
        if order.ingredient in a.ingredients or (ctx.is_bisphosphonate and a.bisphosphonate_class)
    ]
    if not matching:
        return None
    lines = [f"**{order.describe()}**: the record lists an allergy that covers this drug.", ""]
    for allergy in matching:
        scope = (
            "this drug" if order.ingredient in allergy.ingredients else "bisphosphonates (class)"
        )
        details = ", ".join(
            filter(
                None,
                [
                    allergy.verification,
                    f"criticality {allergy.criticality}" if allergy.criticality else None,
                ],
            )
        )
        lines.append(f"- {allergy.label}: {scope}" + (f" ({details})" if details else "") + ".")
    lines += [
        "",
        (
            "Hypersensitivity to the active substance (or, for bisphosphonates, to any"
            " bisphosphonate) is a label contraindication."
        ),
    ]
    class_only = all(order.ingredient not in a.ingredients for a in matching)
    return finding(
        ctx,
        "critical",
        "Allergy on record to"
        f" {'bisphosphonates, which include ' if class_only else ''}{order.ingredient_display}",
        lines,
        sources=[ctx.label_source],
        suggestions=[delete_draft(order, "Remove this order")],
    )


@rule("onj-risk-antiangiogenic")
def onj_risk_antiangiogenic(ctx: OrderContext) -> Finding | None:
    """IV bisphosphonate or denosumab while an anti-angiogenic drug (bevacizumab) is active, on the
    first dose of a course (the risk is weighed when the course starts, not at every dose)."""
    if not ctx.first_dose_of_course:
        ctx.decided.add(ctx.rule_id)
        return None
    drugs = ctx.facts.active_medications("anti-angiogenic")
    if not drugs:
        return None
    lines = [
        f"**{ctx.order.describe()}** with active anti-angiogenic therapy.",
        "",
        *(f"- {drug.dated()}." for drug in drugs),
        "",
        (
            "Anti-angiogenic therapy is associated with a higher risk of osteonecrosis of the jaw"
            " under IV bisphosphonates and denosumab. Make sure the dental status is optimised,"
            " avoid invasive dental procedures, and tell the patient which symptoms to report."
        ),
    ]
    return finding(
        ctx,
        "warning",
        "Anti-angiogenic therapy raises the jaw osteonecrosis risk of"
        f" {ctx.order.ingredient_display}",
        lines,
    )


@rule("dental-check-missing")
def dental_check_missing(ctx: OrderContext) -> Finding | None:
    """First course of an IV bisphosphonate or denosumab (not emergency hypercalcemia) with no
    recent dental examination."""
    facts, order = ctx.facts, ctx.order
    if ctx.setting == "hypercalcemia-of-malignancy" or facts.bone_agent_doses:
        ctx.decided.add(ctx.rule_id)  # exempt whatever the missing data would have shown
        return None
    months = ctx.threshold("dental_exam_max_age_months")
    # Exam times are read as UTC; count back from the UTC day too (a frozen clock may carry another
    # offset).
    since = shift_months(ctx.now.astimezone(UTC), -months).date()
    if any(exam.when.date() >= since for exam in facts.dental_exams):
        ctx.decided.add(ctx.rule_id)
        return None
    problems: list[str] = []
    unavailable = facts.is_unavailable("dental_exams")
    if unavailable:
        problems.append(unavailable_line(group_name("dental_exams"), unavailable))
    else:
        latest = facts.dental_exams[0] if facts.dental_exams else None
        problems.append(
            f"- No dental examination since {since.isoformat()}"
            + (f"; the latest is {latest.evidence}." if latest else "; none on record.")
        )
    for group in ("medications", "administrations"):
        reason = facts.is_unavailable(group)
        if reason:
            problems.append(
                f"- {group_name(group)} could not be retrieved ({reason}), so earlier doses may be"
                " missing from this view."
            )
    what = "Dental examination could not be checked" if unavailable else "No dental examination"
    lines = [
        f"**{what}** before the first dose of {order.describe()}.",
        "",
        *problems,
        "",
        (
            "Osteonecrosis of the jaw is rarer when dental problems are treated before the first"
            f" dose: arrange a dental examination (within {months} months before starting) and"
            " complete needed dental work first."
        ),
    ]
    suggestion = order_observation(
        ctx.knowledge,
        "dental-examination",
        ctx.patient_reference,
        ctx.user_reference,
        ctx.now,
        f"Dental clearance before starting {order.ingredient_display}",
    )
    return finding(
        ctx,
        "warning",
        f"{what} before starting {order.ingredient_display}",
        lines,
        suggestions=[suggestion],
        reports=["dental_exams"],
    )
