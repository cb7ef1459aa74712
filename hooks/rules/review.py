"""Patient-view review rules: who should be on a bone-modifying agent and is not, and denosumab
stopped without follow-on."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import cached_property

from hooks.cards import Finding, Suggestion
from hooks.facts.groups import REVIEWED_GROUPS
from hooks.facts.model import DoseEvent, PatientFacts
from hooks.fhir_read import shift_months
from hooks.knowledge import Knowledge
from hooks.rules.common import unavailable_line
from hooks.rules.context import PatientAssessments
from hooks.rules.rule import rule
from hooks.suggestions import prescribe_regimen

# Without these the review cannot tell whether the patient is already treated, so it does not
# suggest treatment.
TREATMENT_GROUPS = ("medications", "administrations")


@dataclass
class ReviewContext(PatientAssessments):
    facts: PatientFacts
    knowledge: Knowledge
    patient_reference: str
    user_reference: str | None
    now: datetime
    rule_id: str = ""  # the review rule running now
    decided: set[str] = field(default_factory=set)
    reported_unavailable: set[str] = field(default_factory=set)

    def in_scope(self, rule_id: str) -> bool:
        return True  # a review rule concerns the whole chart

    def rule_failed(self, rule_id: str) -> Finding:
        """The card of a review rule that could not be completed (logged by type and place only, no
        record values)."""
        return Finding(
            "rule-error",
            "warning",
            f"Bone-health review step {rule_id} could not be completed",
            f"An internal error stopped the `{rule_id}` review; this part of the chart was **not** "
            "reviewed. The error has been logged for the service's maintainers.",
            (),
        )

    @property
    def setting(self) -> str:
        return self.facts.setting.name

    @cached_property
    def breast_cancer(self) -> bool:
        """The review is for breast cancer: a breast cancer on record, active or not (a relapse may
        sit on an old entry)."""
        return bool(self.facts.conditions_in("breast-cancer", active_only=False))

    @cached_property
    def bone_metastases(self) -> bool:
        """Active bone metastases, also when hypercalcemia of malignancy takes precedence as the
        order setting."""
        return self.breast_cancer and self.facts.has_condition("bone-metastasis")

    def months_ago(self, months: int) -> date:
        """The calendar day `months` months before today (UTC): windows are inclusive and judged by
        day."""
        return shift_months(self.now, -months).date()

    @cached_property
    def current_bone_agent(self) -> list[str]:
        """Evidence that the patient is on a bone agent: an active order, or a dose within the
        review window."""
        since = self.months_ago(self.knowledge.threshold("review")["recent_dose_months"])
        evidence = [
            f"{m.dated()}"
            for m in self.facts.medications
            if m.bone_agent and m.status in ("active", "on-hold")
        ]
        evidence += [
            f"{self.knowledge.ingredient_display[d.ingredient]} on {d.when.date().isoformat()}"
            f" ({d.evidence})"
            for d in self.facts.bone_agent_doses
            if d.when.date() >= since
        ]
        return evidence

    @property
    def treatment_unknown(self) -> bool:
        return any(self.facts.is_unavailable(group) for group in TREATMENT_GROUPS)

    def cautions(self) -> list[str]:
        """Record entries the order checks will stop on, named up front so a suggestion is not taken
        blindly."""
        facts = self.facts
        lines = [
            f"- Caution: {c.label} on record (osteonecrosis of the jaw)."
            for c in facts.conditions_in("onj", active_only=False)
        ]
        lines += [
            f"- Caution: allergy on record to {a.label}."
            for a in facts.allergies
            if a.bisphosphonate_class or a.ingredients
        ]
        return lines

    def regimens(self, keys: Iterable[str], reason: str) -> list[Suggestion]:
        """Draft orders for the guideline regimens, first choice recommended.

        The suggestion gate then evaluates each as if signed (renal floors and dose table, calcium,
        allergy, jaw osteonecrosis, pregnancy) and keeps the safe ones, at this patient's renal
        dose.
        """
        orderable = [key for key in keys if self._orderable(key)]
        return [
            prescribe_regimen(
                self.knowledge,
                key,
                self.patient_reference,
                self.user_reference,
                self.now,
                reason,
                recommended=index == 0,
            )
            for index, key in enumerate(orderable)
        ]

    def _orderable(self, regimen_key: str) -> bool:
        """A draft order needs a product the EHR can order: an RxNorm code (clodronate, not a US
        product, has only its ATC code, so it is named in the card's text but not drafted)."""
        system = self.knowledge.raw["regimens"]["entries"][regimen_key]["medication"][0]
        return system == "rxnorm"

    def finding(
        self, indicator: str, summary: str, lines: list[str], suggestions: Iterable[Suggestion] = ()
    ) -> Finding:
        """A finding of the running review rule (its id from the registration), citing the rule's
        sources."""
        return Finding(
            self.rule_id,
            indicator,
            summary,
            "\n".join(lines),
            tuple(self.knowledge.rule_meta(self.rule_id)["sources"]),
            tuple(suggestions),
            None,
            (),
            True,
        )


def _last_denosumab(ctx: ReviewContext) -> DoseEvent | None:
    return next((d for d in ctx.facts.bone_agent_doses if d.ingredient == "denosumab"), None)


def _denosumab_stop_line(ctx: ReviewContext) -> str | None:
    last = _last_denosumab(ctx)
    if last is None:
        return None
    return (
        f"- Last denosumab dose on {last.when.date().isoformat()}: stopping denosumab without a"
        " bisphosphonate to follow brings a rebound of bone loss and vertebral fractures."
    )


def _denosumab_stopped_card_applies(ctx: ReviewContext) -> bool:
    """The denosumab card already asks for a bisphosphonate; the adjuvant and bone-loss cards would
    repeat it."""
    return review_denosumab_stopped(ctx) is not None


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
    """Early breast cancer, postmenopausal (natural or by ovarian suppression), no bone-modifying
    agent."""
    if (
        ctx.setting != "early"
        or not ctx.menopause.counts_as_postmenopausal
        or ctx.current_bone_agent
        or ctx.treatment_unknown
    ):
        return None
    if _denosumab_stopped_card_applies(ctx):
        return None
    lines = [
        "**Early breast cancer, postmenopausal, no adjuvant bisphosphonate on record.**",
        "",
        f"- Clinical setting: early ({ctx.facts.setting.evidence}).",
        *ctx.menopause.lines(),
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
            " 2 to 3 years."
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
    modifying agent; the adjuvant card already covers an eligible postmenopausal patient."""
    if ctx.setting not in ("early", "metastatic-other") or not ctx.bone_loss.indicated:
        return None
    if ctx.current_bone_agent or ctx.treatment_unknown:
        return None
    if (
        ctx.setting == "early" and ctx.menopause.counts_as_postmenopausal
    ) or _denosumab_stopped_card_applies(ctx):
        return None  # review-adjuvant-candidate or review-denosumab-stopped says it
    lines = [
        "**Bone-loss indication without a bone-modifying agent on record.**",
        "",
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
    """Last denosumab dose more than 7 months ago, none active, and no bisphosphonate since (outside
    bone metastases, where the untreated-metastases card says it)."""
    last = _last_denosumab(ctx)
    if last is None or not ctx.breast_cancer or ctx.bone_metastases or ctx.treatment_unknown:
        return None
    months = ctx.knowledge.threshold("review")["denosumab_stopped_months"]
    if last.when.date() >= ctx.months_ago(months):
        # "more than 7 months ago": a dose exactly 7 calendar months ago is not yet overdue
        return None
    facts, knowledge = ctx.facts, ctx.knowledge
    if any(
        m.bone_agent == "denosumab" and m.status in ("active", "on-hold") for m in facts.medications
    ):
        return None
    bisphosphonate_since = [
        d
        for d in facts.bone_agent_doses
        if knowledge.ingredient_class[d.ingredient] == "bisphosphonate" and d.when > last.when
    ]
    active_bisphosphonate = [
        m
        for m in facts.medications
        if m.bone_agent
        and m.status in ("active", "on-hold")
        and knowledge.ingredient_class[m.bone_agent] == "bisphosphonate"
    ]
    if bisphosphonate_since or active_bisphosphonate:
        return None
    lines = [
        (
            f"**Denosumab stopped**: last dose on {last.when.date().isoformat()} ({last.evidence}),"
            f" more than {months} months ago, and no bisphosphonate since."
        ),
        "",
        *ctx.cautions(),
        "",
        (
            "Bone loss rebounds quickly after denosumab stops (vertebral fractures 7.1 vs 1.2 per"
            " 100 patient-years in FREEDOM): follow it with a bisphosphonate for 1 to 2 years."
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
