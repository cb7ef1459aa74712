"""Runs the rules over each bone-agent order, then passes every suggested order through the
suggestion gate."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable
from datetime import datetime

from hooks.assessments.renal import on_dialysis
from hooks.cards import Finding, Suggestion
from hooks.facts.model import PatientFacts
from hooks.fhir_read import codings, json_copy
from hooks.knowledge import Knowledge
from hooks.orders import BoneAgentOrder, in_setting, read_bone_agent_order
from hooks.proposals import (
    Proposal,
    Trial,
    administration_text,
    redosed,
    what_it_orders,
    with_description_note,
)
from hooks.rules.context import OrderContext
from hooks.rules.renal_bands import at_band, band_edges, band_text, exceeded, full_dose_text
from hooks.rules.renal_dose import renal_label_dose
from hooks.rules.rule import Check, rule_ids, run_rules
from hooks.suggestions import every_words

log = logging.getLogger(__name__)


SEVERITY = {"critical": 0, "warning": 1, "info": 2}


class OrderEvaluator:
    """The rules for one request's record, and the suggestion gate: every suggestion that creates or
    changes a bone-agent order is evaluated as if it had been signed (in place of the draft it
    updates, or as a new draft), and is offered only when no critical rule fires on it and the rule
    that offered it does not fire again."""

    def __init__(
        self,
        facts: PatientFacts,
        knowledge: Knowledge,
        rules: Iterable[tuple[str, Check]],
        patient_reference: str,
        user_reference: str | None,
        now: datetime,
        *,
        drafts: Iterable[BoneAgentOrder] = (),
        companions: Iterable[dict] = (),
        medications: dict[str, dict] | None = None,
        tolerant: bool = False,
    ) -> None:
        self.facts = facts
        self.knowledge = knowledge
        self.rules = tuple(rules)
        self.checks = rule_ids(self.rules)
        self.patient_reference = patient_reference
        self.user_reference = user_reference
        self.now = now
        self.drafts = tuple(drafts)
        self.companions = tuple(companions)
        self.medications = medications or {}
        self.tolerant = tolerant

    def context(self, order: BoneAgentOrder, others: tuple[BoneAgentOrder, ...]) -> OrderContext:
        return OrderContext(
            in_setting(order, self.facts.setting.name, self.knowledge),
            self.facts,
            self.knowledge,
            self.patient_reference,
            self.user_reference,
            self.now,
            other_orders=others,
            checks=self.checks,
            tolerant=self.tolerant,
        )

    def run_rules(self, order: BoneAgentOrder, others: tuple[BoneAgentOrder, ...]) -> list[Finding]:
        """Each rule in scope for the order (the one rule loop: a rule that fails yields a card
        saying so, never silence), each finding noting how the drug was recognised."""
        return self._findings(order, self.context(order, others))

    def _findings(self, order: BoneAgentOrder, ctx: OrderContext) -> list[Finding]:
        return [_with_recognition_note(f, order) for f in run_rules(self.rules, ctx)]

    def evaluate(self, orders: Iterable[BoneAgentOrder]) -> list[Finding]:
        """Each order against each rule; per order the cards come most serious first, suggestions
        gated."""
        findings: list[Finding] = []
        for order in orders:
            gated = [self.gate(f, order) for f in self.run_rules(order, self.drafts)]
            findings.extend(sorted(gated, key=lambda f: SEVERITY.get(f.indicator, 3)))
        return findings

    # --- the suggestion gate
    # ------------------------------------------------------------------------------------

    def gate(self, finding: Finding, order: BoneAgentOrder | None) -> Finding:
        """Keep the suggestions that are safe to accept with one click; say in the detail what was
        left out and why, and which warnings an offered order would still draw.

        `order` is the draft the finding is about (None for a chart review, whose suggestions create
        new drafts).
        """
        kept: list[Suggestion] = []
        notes: list[str] = []
        proposed = passed = 0
        for suggestion in finding.suggestions:
            if self._already_drafted(suggestion):
                notes.append(f"- *{suggestion.label}*: already in this order set.")
                continue
            proposal = self._proposal(suggestion, order)
            if proposal is None:
                kept.append(suggestion)
                continue
            if suggestion.fallback and passed:
                continue  # a first choice passed: the fallback is not needed
            proposed += 1
            suggestion, proposal, dose_note, prepared = self._at_label_dose(suggestion, proposal)
            trial = self.trial(proposal, prepared)
            blocking = trial.blocking
            again = [
                f
                for f in trial.findings
                if f.rule_id == finding.rule_id and finding.rule_id in self.checks
            ]
            if trial.order is None:
                log.warning(
                    "rule %s suggested an order the service cannot read back; suggestion withheld",
                    finding.rule_id,
                )
                continue
            if blocking or again:
                if again and not blocking:
                    log.warning(
                        "rule %s: its own suggestion would draw the same rule again; suggestion"
                        " withheld",
                        finding.rule_id,
                    )
                reasons = "; ".join(f.summary for f in blocking or again)
                notes.append(f"- Not offered: *{what_it_orders(suggestion)}*: {reasons}.")
                continue
            passed += 1
            suggestion = self._with_administration_text(suggestion, trial.order)
            kept.append(suggestion)
            if dose_note and f"- {dose_note}" not in notes:
                notes.append(f"- {dose_note}")
            warnings = [f for f in trial.findings if f.indicator == "warning"]
            if warnings:
                titles = "; ".join(dict.fromkeys(self._title(f) for f in warnings))
                notes.append(f"- *{suggestion.label}* would still draw a warning: {titles}.")
        if not notes and tuple(kept) == finding.suggestions:
            return finding
        if any(s.is_recommended for s in finding.suggestions) and not any(
            s.is_recommended for s in kept
        ):
            # the first choice was left out: the first safe option takes its place
            first = next(
                (i for i, s in enumerate(kept) if self._proposal(s, order) is not None), None
            )
            if first is not None:
                kept[first] = dataclasses.replace(kept[first], is_recommended=True)
        if not notes:
            return dataclasses.replace(finding, suggestions=tuple(kept))
        heading = "**One-click orders**"
        if proposed and not passed:
            heading += ": none is offered, because each option would be stopped by a safety check."
        detail = finding.detail + "\n\n" + "\n".join([heading, *notes])
        return dataclasses.replace(finding, detail=detail, suggestions=tuple(kept))

    def trial(self, proposal: Proposal, prepared: OrderContext | None = None) -> Trial:
        """Evaluate the proposed order as if signed: the other drafts of the request stay, the one
        it replaces goes. `prepared` is a context already made for exactly this (no rule has run in
        it): what it worked out (renal function, label band) is not worked out again."""
        candidate = proposal.order
        if candidate is None:
            return Trial(None, ())
        others = self._others(proposal.replaces) + (candidate,)
        ctx = prepared if prepared is not None else self.context(candidate, others)
        return Trial(candidate, tuple(self._findings(candidate, ctx)))

    def _others(self, replaced: BoneAgentOrder | None) -> tuple[BoneAgentOrder, ...]:
        """The request's other bone-agent drafts once `replaced` is taken out (matched by id: the
        selected orders and the whole order set are read separately)."""
        if replaced is None:
            return self.drafts
        return tuple(
            o
            for o in self.drafts
            if o is not replaced
            and not (replaced.resource_id is not None and o.resource_id == replaced.resource_id)
        )

    def _proposal(self, suggestion: Suggestion, order: BoneAgentOrder | None) -> Proposal | None:
        """The bone-agent order a suggestion creates or changes, if it does."""
        for action in suggestion.actions:
            resource = action.resource
            if resource is None or resource.get("resourceType") != "MedicationRequest":
                continue
            if action.type == "update":
                replaces = (
                    order if order is not None and resource.get("id") == order.resource_id else None
                )
                replaces = replaces or next(
                    (o for o in self.drafts if o.resource_id == resource.get("id")), None
                )
                return Proposal(resource, replaces, self._read(resource))
            if action.type == "create" and (created := self._read(resource)) is not None:
                return Proposal(resource, None, created)
        return None

    def _read(self, resource: dict) -> BoneAgentOrder | None:
        return read_bone_agent_order(resource, self.medications, self.knowledge)

    def _at_label_dose(
        self, suggestion: Suggestion, proposal: Proposal
    ) -> tuple[Suggestion, Proposal, str, OrderContext | None]:
        """A proposed order of a product with a renal table carries its band for this patient (dose,
        interval, infusion time; the baseline clearance of a course under way for zoledronic acid):
        a schedule or product change never undoes a renal reduction.

        Also the context made for the proposal when it comes back unchanged, for its trial."""
        candidate = proposal.order
        if (
            candidate is None
            or candidate.formulation is None
            or not candidate.formulation.renal.get("dose_table")
        ):
            return suggestion, proposal, "", None
        others = self._others(proposal.replaces) + (candidate,)
        ctx = self.context(candidate, others)
        label = renal_label_dose(ctx)
        if label is None:
            renal = candidate.formulation.renal
            waived = self.facts.setting.name == "hypercalcemia-of-malignancy" and (
                renal.get("hypercalcemia_withhold_creatinine_mg_dl") is not None
            )
            if ctx.current_renal.function is None and not waived and not on_dialysis(self.facts):
                note = (
                    f"{full_dose_text(renal['dose_table'])}: check it against a current creatinine"
                    " before it is given."
                )
                return (
                    with_description_note(suggestion, note),
                    proposal,
                    f"No renal function: {note}",
                    ctx,
                )
            return suggestion, proposal, "", ctx
        over = exceeded(candidate, label)
        if not over:
            return suggestion, proposal, "", ctx
        resource = at_band(proposal.resource, candidate, label)
        dose = label.dose_for(candidate)
        edges = band_edges(label.bands)
        shown = "on dialysis" if label.function is None else f"for {label.shown(edges)}"
        note = f"Written at {band_text(label.band, label.per_day)}, the label dose {shown}"
        note += f" (by the {label.basis})."
        renamed = redosed(suggestion, proposal.resource, resource, candidate.dose_mg, dose)
        if "interval" in over and label.every is not None:
            renamed = dataclasses.replace(
                renamed, label=f"{renamed.label}, {every_words(label.every)}"
            )
        return renamed, Proposal(resource, proposal.replaces, self._read(resource)), note, None

    def _with_administration_text(
        self, suggestion: Suggestion, candidate: BoneAgentOrder
    ) -> Suggestion:
        """An oral bisphosphonate order carries how to take it (patientInstruction), from the
        knowledge."""
        if (
            not candidate.is_oral
            or self.knowledge.ingredient_class.get(candidate.ingredient) != "bisphosphonate"
        ):
            return suggestion
        text = administration_text(self.knowledge, candidate)
        if text is None:
            return suggestion
        actions = []
        for action in suggestion.actions:
            resource = action.resource
            if resource is not None and resource.get("resourceType") == "MedicationRequest":
                resource = json_copy(resource)
                dosages = resource.setdefault("dosageInstruction", [{}])
                if dosages and isinstance(dosages[0], dict):
                    dosages[0]["patientInstruction"] = text
                action = dataclasses.replace(action, resource=resource)
            actions.append(action)
        return dataclasses.replace(suggestion, actions=tuple(actions))

    def _already_drafted(self, suggestion: Suggestion) -> bool:
        """A create suggestion whose order is already drafted in this request (same code) is not
        offered twice."""
        creates = [
            a.resource for a in suggestion.actions if a.type == "create" and a.resource is not None
        ]
        if not creates or len(creates) != len(suggestion.actions) or not self.companions:
            return False
        drafted = {
            (system, code)
            for r in self.companions
            for key in ("code", "medicationCodeableConcept")
            for system, code, _ in codings(r.get(key))
            if code
        }
        return all(
            any(
                (system, code) in drafted
                for key in ("code", "medicationCodeableConcept")
                for system, code, _ in codings(r.get(key))
                if code
            )
            for r in creates
        )

    def _title(self, finding: Finding) -> str:
        rules = self.knowledge.raw["rules"]
        title = rules[finding.rule_id]["title"] if finding.rule_id in rules else finding.summary
        return title[:1].lower() + title[1:]


def evaluate_orders(
    orders: Iterable[BoneAgentOrder],
    facts: PatientFacts,
    knowledge: Knowledge,
    rules: Iterable[tuple[str, Check]],
    patient_reference: str,
    user_reference: str | None,
    now: datetime,
    *,
    all_orders: Iterable[BoneAgentOrder] | None = None,
    tolerant: bool = False,
    companions: Iterable[dict] = (),
    medications: dict[str, dict] | None = None,
) -> list[Finding]:
    """Each order against each rule in scope for it, suggestions gated.

    `all_orders` are the bone-agent drafts of the whole order set (order-select checks only the
    selected ones, but sees the rest).
    """
    orders = tuple(orders)
    drafts = tuple(all_orders) if all_orders is not None else orders
    evaluator = OrderEvaluator(
        facts,
        knowledge,
        rules,
        patient_reference,
        user_reference,
        now,
        drafts=drafts,
        companions=companions,
        medications=medications,
        tolerant=tolerant,
    )
    return evaluator.evaluate(orders)


def medications_by_id(resources: Iterable[dict]) -> dict[str, dict]:
    """Medication resources of the record and the request, by id (a draft may name its drug by
    reference)."""
    return {
        r["id"]: r
        for r in resources
        if r.get("resourceType") == "Medication" and isinstance(r.get("id"), str)
    }


def _with_recognition_note(finding: Finding, order: BoneAgentOrder) -> Finding:
    """A drug recognised only by its name may be misread; the clinician should know the check rests
    on that, and which code the order carried that the knowledge does not list (never that it
    carries no code when it carries one)."""
    what = order.product_description or order.ingredient_display
    codes = order.unlisted_codes
    listed, verb = ", ".join(codes), "is" if len(codes) == 1 else "are"
    if order.recognised_by != "name":
        if not codes or order.product is None or order.product.status != "name":
            return finding
        note = (
            f"\n\n*{listed} {verb} not in the knowledge; recognised by its {order.recognised_by},"
            f" the product read from its name ({what}).*"
        )
    elif codes:
        note = f"\n\n*{listed} {verb} not in the knowledge; recognised by its name ({what}).*"
    else:
        note = (
            f"\n\n*The drug was recognised by its name only ({what}): the order carries no"
            " medication code.*"
        )
    return dataclasses.replace(finding, detail=finding.detail + note)
