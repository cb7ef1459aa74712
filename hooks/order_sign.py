"""The order-sign and order-select CDS services: which data they ask for, which orders they check,
which rules they run."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from hooks.cards import Finding
from hooks.engine import evaluate_orders, medications_by_id
from hooks.facts.build import build_facts
from hooks.fhir_read import bundle_resources
from hooks.knowledge import Knowledge
from hooks.orders import BoneAgentOrder, find_bone_agent_orders
from hooks.rules.registry import ORDER_RULES


class OrderSignService:
    """Checks every bone-modifying-agent order in draftOrders when the clinician signs."""

    id = "bonecds-order-sign"
    hook = "order-sign"
    title = "Bone-modifying agent order safety check"
    description = (
        "Checks orders for zoledronic acid, pamidronate, ibandronate, alendronate, risedronate,"
        " clodronate and denosumab before they are signed: renal function, calcium, vitamin D,"
        " supplements, dental check, osteonecrosis of the jaw, schedule and dose, duplicates,"
        " pregnancy, allergies and contraindications from the product labels, and adjuvant"
        " eligibility (menopausal status, chemotherapy, bone loss) from the AGO guideline and the"
        " EBCTCG meta-analysis."
    )
    context_schema = "order-sign-context"
    tolerant = False

    def __init__(self, knowledge: Knowledge) -> None:
        self.knowledge = knowledge
        self.rules = ORDER_RULES

    def discovery_entry(self, prefetch: dict[str, str]) -> dict[str, Any]:
        """This service's discovery entry, with the prefetch templates of the record layer."""
        return {
            "hook": self.hook,
            "id": self.id,
            "title": self.title,
            "description": self.description,
            "prefetch": prefetch,
            "usageRequirements": (
                "Send draft MedicationRequests in context.draftOrders. Without prefetch the service"
                " reads Patient, Observation, MedicationRequest, MedicationAdministration,"
                " Condition, AllergyIntolerance, Procedure, ServiceRequest and Encounter from"
                " fhirServer with the token in fhirAuthorization."
            ),
        }

    def triage(self, context: dict[str, Any]) -> list[BoneAgentOrder]:
        """The orders to check; none means an empty answer without reading the record."""
        return find_bone_agent_orders(context.get("draftOrders"), self.knowledge)

    def all_orders(
        self, context: dict[str, Any], orders: list[BoneAgentOrder]
    ) -> list[BoneAgentOrder]:
        """Every bone-agent draft of the request: what triage found, for order-sign."""
        return orders

    def evaluate(
        self,
        context: dict[str, Any],
        orders: list[BoneAgentOrder],
        patient: dict | None,
        resources: list[dict],
        unavailable: dict[str, str],
        now: datetime,
    ) -> list[Finding]:
        all_orders = self.all_orders(context, orders)
        draft_ids = frozenset(o.resource_id for o in all_orders if o.resource_id)
        drafted = bundle_resources(context.get("draftOrders"))
        companions = [
            r for r in drafted if not (isinstance(r.get("id"), str) and r["id"] in draft_ids)
        ]
        facts = build_facts(
            patient, resources, unavailable, self.knowledge, now, draft_ids, companions
        )
        patient_reference = f"Patient/{context['patientId']}"
        medications = medications_by_id([*resources, *drafted])
        return evaluate_orders(
            orders,
            facts,
            self.knowledge,
            self.rules,
            patient_reference,
            context.get("userId"),
            now,
            all_orders=all_orders,
            tolerant=self.tolerant,
            companions=companions,
            medications=medications,
        )


class OrderSelectService(OrderSignService):
    """The same checks when a bone agent is selected, before dose and timing are complete: what it
    does not say yet is skipped; the other drafts of the order set are seen for duplicates."""

    id = "bonecds-order-select"
    hook = "order-select"
    title = "Bone-modifying agent selection check"
    description = (
        "Runs the order-sign checks as soon as a bone-modifying agent is selected, skipping what"
        " the order does not state yet (dose, interval), so problems show before the order is"
        " completed."
    )
    context_schema = "order-select-context"
    tolerant = True

    def all_orders(
        self, context: dict[str, Any], orders: list[BoneAgentOrder]
    ) -> list[BoneAgentOrder]:
        """Triage kept the selected orders only; the others of the order set count too."""
        return find_bone_agent_orders(context.get("draftOrders"), self.knowledge)

    def triage(self, context: dict[str, Any]) -> list[BoneAgentOrder]:
        selected = {s for s in context.get("selections", []) if isinstance(s, str)}
        return [
            o
            for o in find_bone_agent_orders(context.get("draftOrders"), self.knowledge)
            if o.reference in selected
        ]
