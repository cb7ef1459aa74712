"""The patient-view CDS service: a bone-health review of who should be on a bone-modifying agent and
is not."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hooks.cards import Finding
from hooks.engine import OrderEvaluator, medications_by_id
from hooks.facts.build import build_facts
from hooks.knowledge import Knowledge
from hooks.rules.registry import ORDER_RULES, REVIEW_RULES
from hooks.rules.review_context import ReviewContext
from hooks.rules.rule import run_rules


@dataclass(frozen=True)
class PatientReview:
    """The one piece of work a patient-view call asks for."""

    patient_id: str


def prescriber(user_id: str | None) -> str | None:
    """The suggested drafts name the user as requester only when a practitioner opened the chart; a
    patient or related person viewing it is not the prescriber (the EHR fills the requester in when
    a clinician takes the draft)."""
    if isinstance(user_id, str) and user_id.startswith(("Practitioner/", "PractitionerRole/")):
        return user_id
    return None


class PatientViewService:
    """Reviews a breast-cancer patient's chart for a missing bone-modifying agent when the chart is
    opened."""

    id = "bonecds-patient-view"
    hook = "patient-view"
    title = "Bone-health review"
    description = (
        "When a chart is opened: bone metastases without a bone-modifying agent, postmenopausal"
        " early breast cancer without an adjuvant bisphosphonate, a bone-loss indication without"
        " treatment, and denosumab stopped without a bisphosphonate to follow; each with a draft"
        " order on the guideline regimen."
    )
    context_schema = "patient-view-context"

    def __init__(self, knowledge: Knowledge) -> None:
        self.knowledge = knowledge
        self.rules = REVIEW_RULES

    def discovery_entry(self, prefetch: dict[str, str]) -> dict[str, Any]:
        """This service's discovery entry; it asks for the same record as order-sign, since every
        draft order it suggests passes the same safety rules."""
        return {
            "hook": self.hook,
            "id": self.id,
            "title": self.title,
            "description": self.description,
            "prefetch": prefetch,
            "usageRequirements": (
                "Without prefetch the service reads Patient, Observation, MedicationRequest, "
                "MedicationAdministration, Condition, AllergyIntolerance and Procedure from "
                "fhirServer with the token in fhirAuthorization."
            ),
        }

    def triage(self, context: dict[str, Any]) -> list[PatientReview]:
        return [PatientReview(context["patientId"])]

    def evaluate(
        self,
        context: dict[str, Any],
        work: list[PatientReview],
        patient: dict | None,
        resources: list[dict],
        unavailable: dict[str, str],
        now: datetime,
    ) -> list[Finding]:
        facts = build_facts(patient, resources, unavailable, self.knowledge, now)
        patient_reference, requester = (
            f"Patient/{context['patientId']}",
            prescriber(context.get("userId")),
        )
        ctx = ReviewContext(facts, self.knowledge, patient_reference, requester, now)
        gate = OrderEvaluator(
            facts,
            self.knowledge,
            ORDER_RULES,
            patient_reference,
            requester,
            now,
            medications=medications_by_id(resources),
        )
        return [gate.gate(found, None) for found in run_rules(self.rules, ctx)]
