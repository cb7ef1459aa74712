"""What a patient-view review rule sees: the patient's facts, the knowledge, and the review's
derived values (treatment on record, clinical windows, orderable regimens)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime

from hooks.call_cached import call_cached
from hooks.cards import Finding, Suggestion
from hooks.facts.model import DoseEvent, PatientFacts
from hooks.fhir_read import shift_months
from hooks.knowledge import Knowledge
from hooks.rules.context import PatientAssessments
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

    @call_cached
    def breast_cancer(self) -> bool:
        """The review is for breast cancer: a breast cancer on record, active or not (a relapse may
        sit on an old entry)."""
        return bool(self.facts.conditions_in("breast-cancer", active_only=False))

    @call_cached
    def bone_metastases(self) -> bool:
        """Active bone metastases, also when hypercalcemia of malignancy takes precedence as the
        order setting."""
        return self.breast_cancer and self.facts.has_condition("bone-metastasis")

    def months_ago(self, months: int) -> date:
        """The calendar day `months` months before today (UTC): windows are inclusive and judged by
        day."""
        return shift_months(self.now, -months).date()

    @call_cached
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
        orderable = [key for key in keys if self.orderable(key)]
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

    def orderable(self, regimen_key: str) -> bool:
        """A draft order needs a product the EHR can order: a regimen naming a product of the
        knowledge's product table, or an RxNorm code. A regimen known only by its ATC code
        (clodronate, no US product) is named in the card's text and never drafted."""
        regimen = self.knowledge.raw["regimens"]["entries"][regimen_key]
        if "product" in regimen:
            return regimen["product"] in self.knowledge.product_by_rxnorm
        return regimen["medication"][0] == "rxnorm"

    def window(self, name: str) -> int:
        return self.knowledge.threshold("review")[name]

    @call_cached
    def last_denosumab(self) -> DoseEvent | None:
        return next((d for d in self.facts.bone_agent_doses if d.ingredient == "denosumab"), None)

    @call_cached
    def denosumab_stopped(self) -> bool:
        """Breast cancer without bone metastases, last denosumab dose more than 7 and at most 24
        months ago, no active denosumab order and no bisphosphonate since (G12)."""
        last = self.last_denosumab
        if last is None or not self.breast_cancer or self.bone_metastases:
            return False
        if self.treatment_unknown:
            return False
        day = last.when.date()
        # "more than 7 months": a dose exactly 7 calendar months ago is not yet overdue; "at most
        # 24 months": a dose exactly 24 months ago still counts.
        if day >= self.months_ago(self.window("denosumab_stopped_months")):
            return False
        if day < self.months_ago(self.window("denosumab_stopped_max_months")):
            return False
        facts, classes = self.facts, self.knowledge.ingredient_class
        if any(
            m.bone_agent == "denosumab" and m.status in ("active", "on-hold")
            for m in facts.medications
        ):
            return False
        since = any(
            classes[d.ingredient] == "bisphosphonate" and d.when > last.when
            for d in facts.bone_agent_doses
        )
        active = any(
            m.bone_agent
            and m.status in ("active", "on-hold")
            and classes[m.bone_agent] == "bisphosphonate"
            for m in facts.medications
        )
        return not (since or active)

    @call_cached
    def latest_diagnosis(self) -> datetime | None:
        """The latest onset (else recordedDate) of the breast-cancer Conditions."""
        dates = [
            c.onset
            for c in self.facts.conditions_in("breast-cancer", active_only=False)
            if c.onset is not None
        ]
        return max(dates, default=None)

    @call_cached
    def adjuvant_reasons(self) -> list[str]:
        """Why the patient is a candidate for adjuvant systemic therapy now: a recent diagnosis, or
        adjuvant endocrine therapy running (G1)."""
        months = self.window("adjuvant_diagnosis_months")
        reasons = []
        diagnosed = self.latest_diagnosis
        if diagnosed is not None and diagnosed.date() >= self.months_ago(months):
            reasons.append(
                f"- Breast cancer diagnosed on {diagnosed.date().isoformat()}, within {months}"
                " months."
            )
        reasons += [
            f"- Adjuvant endocrine therapy: {m.dated()}."
            for name in self.window_list("adjuvant_endocrine_classes")
            for m in self.facts.active_medications(name)
        ]
        return reasons

    def window_list(self, name: str) -> list[str]:
        return list(self.knowledge.threshold("review")[name])

    @call_cached
    def adjuvant_candidate(self) -> bool:
        """Early, postmenopausal (natural or by ovarian suppression), no bone agent, a candidate for
        adjuvant therapy now, and the denosumab card does not already ask for a bisphosphonate."""
        return (
            self.setting == "early"
            and self.menopause.counts_as_postmenopausal
            and not self.current_bone_agent
            and not self.treatment_unknown
            and bool(self.adjuvant_reasons)
            and not self.denosumab_stopped
        )

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
