"""Eligibility rules for early breast cancer, judged on the first dose of a course: menopausal
status, chemotherapy, bone-loss indication, adjuvant denosumab, DXA."""

from __future__ import annotations

from hooks.cards import Finding
from hooks.facts.groups import group_name
from hooks.rules.common import finding, unavailable_line
from hooks.rules.context import OrderContext, minimum_days
from hooks.rules.rule import rule
from hooks.suggestions import delete_draft, order_observation, replace_draft_regimen


def _later_dose(ctx: OrderContext) -> bool:
    """Eligibility is judged when a course starts: a later dose of the same course was judged at its
    first dose (catalog "Definitions"), so the rule is exempt whatever the record would show."""
    if ctx.first_dose_of_course:
        return False
    ctx.decided.add(ctx.rule_id)
    return True


def _adjuvant_question(ctx: OrderContext) -> bool:
    """Early breast cancer and no bone-loss indication: the order stands or falls on the adjuvant
    evidence."""
    return ctx.setting == "early" and not ctx.bone_loss.indicated


# The parts of the record the menopausal status and the bone-loss indication rest on (fact group,
# what it holds).
STATUS_SOURCES = (
    ("menopause", group_name("menopause")),
    ("procedures", group_name("procedures")),
    (
        "medications",
        (
            f"{group_name('medications')} (GnRH agonists, chemotherapy, aromatase inhibitors, "
            "corticosteroids)"
        ),
    ),
    ("bone_density", "DXA T-scores, BMI and smoking status"),
)


def _unavailable_sources(ctx: OrderContext) -> list[str]:
    return [group for group, _ in STATUS_SOURCES if ctx.facts.is_unavailable(group)]


def _status_lines(ctx: OrderContext) -> list[str]:
    """Status and indication, and the parts of the record behind them that could not be read (never
    taken as empty)."""
    lines = ctx.menopause.lines()
    lines.append(f"- No bone-loss indication: {ctx.bone_loss.reason()}.")
    if ctx.bone_loss.not_assessed:
        lines.append(f"- Not assessed: {', '.join(ctx.bone_loss.not_assessed)}.")
    missing = _unavailable_sources(ctx)
    lines += [
        unavailable_line(name, reason)
        for group, name in STATUS_SOURCES
        if group in missing and (reason := ctx.facts.is_unavailable(group))
    ]
    if missing:
        lines.append(
            "- The menopausal status and the bone-loss indication above may therefore be"
            " incomplete."
        )
    return lines


@rule("adjuvant-premenopausal-chemotherapy")
def adjuvant_premenopausal_chemotherapy(ctx: OrderContext) -> Finding | None:
    """Early setting, pre- or perimenopausal without ovarian suppression, on chemotherapy, no bone-
    loss indication."""
    if _later_dose(ctx):
        return None
    chemotherapy = ctx.facts.active_medications("chemotherapy")
    if not (_adjuvant_question(ctx) and ctx.menopause.before_menopause and chemotherapy):
        return None
    order = ctx.order
    lines = [
        f"**{order.describe()}** alongside chemotherapy before menopause is not recommended.",
        "",
        ctx.setting_line(),
        *_status_lines(ctx),
        *(f"- Chemotherapy: {m.dated()}." for m in chemotherapy),
        "",
        (
            "Gnant's 2011 commentary on AZURE and ABCSG-12 sets the practice point: adjuvant"
            " bisphosphonates should not be combined with chemotherapy in pre- and perimenopausal"
            " women. AZURE showed no benefit before menopause (the EBCTCG meta-analysis agrees),"
            " whereas ABCSG-12 showed one under ovarian suppression without chemotherapy. A"
            " bisphosphonate is still right for bone loss (T-score below -2.0 or two risk factors)"
            " or with ovarian suppression."
        ),
    ]
    return finding(
        ctx,
        "warning",
        f"{order.ingredient_display.capitalize()} with chemotherapy before menopause: no adjuvant"
        " benefit",
        lines,
        suggestions=[delete_draft(order, "Remove this order")],
        reports=_unavailable_sources(ctx),
    )


@rule("adjuvant-no-benefit-premenopausal")
def adjuvant_no_benefit_premenopausal(ctx: OrderContext) -> Finding | None:
    """Early setting, pre- or perimenopausal without ovarian suppression or chemotherapy, no bone-
    loss indication."""
    if _later_dose(ctx):
        return None
    if not (
        _adjuvant_question(ctx) and ctx.menopause.before_menopause
    ) or ctx.facts.active_medications("chemotherapy"):
        return None
    order = ctx.order
    lines = [
        f"**{order.describe()}**: adjuvant bisphosphonates have shown no benefit before menopause.",
        "",
        ctx.setting_line(),
        *_status_lines(ctx),
        "",
        (
            "The EBCTCG meta-analysis found no effect on recurrence or survival in premenopausal"
            " women; the benefit is confined to women who are postmenopausal, naturally or through"
            " ovarian suppression. If the order is for bone health, record the T-score or the risk"
            " factors that justify it."
        ),
    ]
    return finding(
        ctx,
        "info",
        f"Adjuvant {order.ingredient_display} before menopause: no proven benefit",
        lines,
        reports=_unavailable_sources(ctx),
    )


@rule("menopausal-status-unknown")
def menopausal_status_unknown(ctx: OrderContext) -> Finding | None:
    """Early setting, menopausal status not documented, no bone-loss indication."""
    if _later_dose(ctx):
        return None
    if not _adjuvant_question(ctx) or ctx.menopause.value != "unknown":
        return None
    unread = [g for g in _unavailable_sources(ctx) if g != "bone_density"]
    first = (
        "part of the record that tells whether the patient is postmenopausal could not be read"
        if unread
        else "the record does not say whether the patient is postmenopausal"
    )
    lines = [
        f"**{ctx.order.describe()}**: {first}.",
        "",
        ctx.setting_line(),
        *_status_lines(ctx),
        "",
        (
            "Adjuvant bisphosphonates benefit postmenopausal women (natural menopause, or induced"
            " by ovarian suppression or oophorectomy) and not premenopausal women. Please document"
            " the menopausal status (problem list, or an observation of menopausal status) so that"
            " the order can be checked."
        ),
    ]
    return finding(
        ctx,
        "info",
        "Menopausal status not documented: adjuvant benefit cannot be judged",
        lines,
        reports=_unavailable_sources(ctx),
    )


@rule("adjuvant-denosumab-not-recommended")
def adjuvant_denosumab_not_recommended(ctx: OrderContext) -> Finding | None:
    """Early setting, denosumab 120 mg on the D-CARE schedule (every 3-4 weeks, monthly, or no
    interval stated)."""
    if _later_dose(ctx):
        return None
    spec = ctx.threshold("adjuvant_denosumab")
    order = ctx.order
    if (
        ctx.setting != "early"
        or order.formulation is None
        or order.formulation.id != spec["formulation"]
    ):
        return None
    if order.interval is None and ctx.tolerant:
        return None
    if (
        order.interval is not None
        and order.interval.days > minimum_days(spec["every_at_most"], 0) + 1e-9
    ):
        return None
    regimen = ctx.knowledge.raw["regimens"]["entries"]["za-4mg-6-monthly"]
    lines = [
        (
            f"**{order.describe()}** in early breast cancer: denosumab 120 mg on the monthly"
            " schedule is not recommended as adjuvant therapy."
        ),
        "",
        ctx.setting_line(),
        "",
        (
            "In D-CARE, denosumab 120 mg given monthly and then every 3 months did not improve"
            " bone-metastasis-free or disease-free survival. For adjuvant bone-targeted therapy use"
            " zoledronic acid 4 mg every 6 months. Denosumab 60 mg every 6 months on an aromatase"
            " inhibitor is a different question (bone loss)."
        ),
    ]
    return finding(
        ctx,
        "warning",
        "Denosumab 120 mg is not recommended as adjuvant therapy: use zoledronic acid 4 mg every 6"
        " months",
        lines,
        suggestions=[
            replace_draft_regimen(order, ctx.knowledge, regimen, True),
            delete_draft(order, "Remove this order"),
        ],
        alternatives=True,
    )


@rule("dxa-missing")
def dxa_missing(ctx: OrderContext) -> Finding | None:
    """Early setting, on endocrine therapy or with premature menopause, and no DXA T-score within 2
    years."""
    if _later_dose(ctx):
        return None
    if ctx.setting != "early":
        return None
    facts = ctx.facts
    reasons = [
        f"- Endocrine therapy: {m.dated()}."
        for name in ctx.threshold("endocrine_therapy_classes")
        for m in facts.active_medications(name)
    ]
    reasons += [
        f"- Premature menopause: {c.label}."
        for c in facts.conditions_in("premature-menopause", active_only=False)
    ]
    if not reasons or ctx.bone_loss.lowest_t_score is not None:
        return None
    months = ctx.threshold("bone_loss")["dxa_max_age_months"]
    unavailable = facts.is_unavailable("bone_density")
    older = facts.t_scores[0] if facts.t_scores else None
    status = (
        unavailable_line("Bone density results", unavailable)
        if unavailable
        else f"- No DXA T-score of spine, hip or femur in the last {months} months"
        + (f"; the latest is {older.shown()}." if older else "; none on record.")
    )
    forearm = ctx.bone_loss.forearm_note()
    if forearm and not unavailable:
        status += f"\n- A {forearm}."
    what = "Bone density could not be checked" if unavailable else "No recent bone density scan"
    lines = [
        f"**{what}** for a patient starting or on {ctx.order.describe()}.",
        "",
        *reasons,
        status,
        "",
        (
            "A baseline DXA scan is recommended with endocrine therapy or premature menopause; it"
            " decides whether bone loss needs treatment (T-score below -2.0) and sets the interval"
            " for repeat scans."
        ),
    ]
    suggestion = order_observation(
        ctx.knowledge,
        "dxa-scan",
        ctx.patient_reference,
        ctx.user_reference,
        ctx.now,
        "Baseline bone density on endocrine therapy or with premature menopause",
    )
    return finding(
        ctx,
        "info",
        f"{what}: order a DXA scan",
        lines,
        suggestions=[suggestion],
        reports=["bone_density"],
    )
