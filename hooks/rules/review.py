"""Patient-view review rules: who should be on a bone-modifying agent and is not, and denosumab
stopped without follow-on."""

from __future__ import annotations

from hooks.cards import Finding
from hooks.facts.groups import REVIEWED_GROUPS
from hooks.rules.common import unavailable_line
from hooks.rules.review_context import ReviewContext
from hooks.rules.rule import rule


def _denosumab_stop_line(ctx: ReviewContext) -> str | None:
    last = ctx.last_denosumab
    if last is None:
        return None
    return (
        f"- Last denosumab dose on {last.when.date().isoformat()}: stopping denosumab without a"
        " bisphosphonate to follow brings a rebound of bone loss and vertebral fractures."
    )


@rule("review-bone-metastases-untreated")
def review_bone_metastases_untreated(ctx: ReviewContext) -> Finding | None:
    """Bone metastases and no bone-modifying agent."""
    if not ctx.bone_metastases or ctx.current_bone_agent or ctx.treatment_unknown:
        return None
    lines = [
        "**Bone metastases without a bone-modifying agent on record.**",
        "",
        f"- Clinical setting: {ctx.setting} ({ctx.facts.setting.evidence}).",
        (
            "- No active bone-agent order and no dose in the last "
            f"{ctx.knowledge.threshold('review')['recent_dose_months']} months."
        ),
        *filter(None, [_denosumab_stop_line(ctx)]),
        *ctx.cautions(),
        "",
        (
            "Zoledronic acid (every 12 weeks, or every 4 weeks) or denosumab 120 mg every 4 weeks"
            " reduce skeletal events in bone metastases. Check renal function, calcium and the"
            " dental status before the first dose."
        ),
    ]
    return ctx.finding(
        "warning",
        "Bone metastases without a bone-modifying agent: consider zoledronic acid or denosumab",
        lines,
        ctx.regimens(("za-4mg-12-weekly", "denosumab-120mg-4-weekly"), "Bone metastases"),
    )


@rule("review-adjuvant-candidate")
def review_adjuvant_candidate(ctx: ReviewContext) -> Finding | None:
    """Early breast cancer, postmenopausal (natural or by ovarian suppression), diagnosed within 12
    months or on adjuvant endocrine therapy, no bone-modifying agent."""
    if not ctx.adjuvant_candidate:
        return None
    clodronate = ctx.orderable("clodronate-1600mg-daily")
    lines = [
        "**Early breast cancer, postmenopausal, no adjuvant bisphosphonate on record.**",
        "",
        f"- Clinical setting: early ({ctx.facts.setting.evidence}).",
        *ctx.menopause.lines(),
        *ctx.adjuvant_reasons,
        *(
            [f"- Bone-loss indication as well: {ctx.bone_loss.reason()}."]
            if ctx.bone_loss.indicated
            else []
        ),
        *ctx.cautions(),
        "",
        (
            "For postmenopausal women who are candidates for adjuvant systemic therapy, adjuvant"
            " bisphosphonates reduce bone recurrence and breast cancer death (EBCTCG). Options:"
            " zoledronic acid 4 mg every 6 months for 3 to 5 years, or clodronate 1600 mg daily for"
            " 2 to 3 years"
            + (
                "."
                if clodronate
                else " (no orderable clodronate product is configured, so it is not drafted)."
            )
        ),
    ]
    return ctx.finding(
        "info",
        "Postmenopausal early breast cancer: consider an adjuvant bisphosphonate",
        lines,
        ctx.regimens(
            ("za-4mg-6-monthly", "clodronate-1600mg-daily"), "Adjuvant therapy, early breast cancer"
        ),
    )


@rule("review-bone-loss-untreated")
def review_bone_loss_untreated(ctx: ReviewContext) -> Finding | None:
    """Bone-loss indication (T-score < -2.0 or two risk factors) with breast cancer and no bone-
    modifying agent; not when the adjuvant or the denosumab card already asks for one."""
    if ctx.setting not in ("early", "metastatic-other") or not ctx.bone_loss.indicated:
        return None
    if ctx.current_bone_agent or ctx.treatment_unknown:
        return None
    if ctx.adjuvant_candidate or ctx.denosumab_stopped:
        return None  # review-adjuvant-candidate or review-denosumab-stopped says it
    lines = [
        "**Bone-loss indication without a bone-modifying agent on record.**",
        "",
        f"- Clinical setting: {ctx.setting} ({ctx.facts.setting.evidence}).",
        f"- {ctx.bone_loss.reason()}.",
        *ctx.menopause.lines(),
        *ctx.cautions(),
        "",
        (
            "With a T-score below -2.0 or two or more risk factors a bisphosphonate is recommended"
            " to prevent treatment-induced bone loss, whatever the menopausal status."
        ),
    ]
    return ctx.finding(
        "info",
        "Bone-loss indication: consider a bisphosphonate",
        lines,
        ctx.regimens(
            ("za-4mg-6-monthly", "alendronate-70mg-weekly"), "Treatment-induced bone loss"
        ),
    )


@rule("review-denosumab-stopped")
def review_denosumab_stopped(ctx: ReviewContext) -> Finding | None:
    """Last denosumab dose more than 7 and at most 24 months ago, none active, and no bisphosphonate
    since (outside bone metastases, where the untreated-metastases card says it)."""
    last = ctx.last_denosumab
    if last is None or not ctx.denosumab_stopped:
        return None
    low, high = ctx.window("denosumab_stopped_months"), ctx.window("denosumab_stopped_max_months")
    given, today = last.when.date(), ctx.now.date()
    months = (today.year - given.year) * 12 + today.month - given.month - (today.day < given.day)
    cautions = ctx.cautions()
    lines = [
        (
            f"**Denosumab stopped**: last dose on {given.isoformat()} ({last.evidence}),"
            + (f" {months} months ago" if months > low else f" just over {low} months ago")
            + f" (more than {low}), and no bisphosphonate since."
        ),
        "",
        *([*cautions, ""] if cautions else []),
        (
            "Bone loss rebounds quickly after denosumab stops (vertebral fractures 7.1 vs 1.2 per"
            " 100 patient-years in FREEDOM): follow it with a bisphosphonate for 1 to 2 years,"
            f" ideally within {low} months of the last dose (this card is shown up to {high}"
            " months after it)."
        ),
    ]
    return ctx.finding(
        "warning",
        "Denosumab stopped without a bisphosphonate: start one to prevent rebound fractures",
        lines,
        ctx.regimens(("alendronate-70mg-weekly", "za-4mg-6-monthly"), "Follow-on after denosumab"),
    )


@rule("record-incomplete", after_all=True)
def review_incomplete(ctx: ReviewContext) -> Finding | None:
    """The review could not be done in full: say which parts of the record were missing (not for a
    patient whose problem list was read and shows no breast cancer: the review has nothing to say
    about her)."""
    if not ctx.breast_cancer and not ctx.facts.is_unavailable("conditions"):
        return None
    lines = [
        unavailable_line(REVIEWED_GROUPS[group].review_name, reason)
        for group, reason in sorted(ctx.facts.unavailable.items())
        if group in REVIEWED_GROUPS
    ]
    if not lines:
        return None
    return ctx.finding(
        "info",
        "Bone-health review incomplete: part of the record could not be read",
        [
            "**The bone-health review could not be completed.**",
            "",
            *lines,
            "",
            (
                "Whether the patient needs a bone-modifying agent was not judged on the missing"
                " parts; they are not assumed to be normal."
            ),
        ],
    )
