"""The order-sign CDS service: which data it asks for, which orders it checks, and which rules it runs."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hooks.cards import Finding
from hooks.engine import evaluate_orders
from hooks.facts import build_facts
from hooks.knowledge import Knowledge
from hooks.orders import BoneAgentOrder, find_bone_agent_orders
from hooks.rules import ORDER_SAFETY_RULES


@dataclass(frozen=True)
class PrefetchKey:
    """One prefetch template and the groups of facts it supplies (so a failed fetch marks exactly those as unknown)."""
    key: str
    template: str
    provides: tuple[str, ...]


def _codes(knowledge: Knowledge, *kinds: str) -> str:
    loinc = knowledge.systems["loinc"]
    return ",".join(f"{loinc}|{code}" for kind in kinds for code in knowledge.loinc_codes(kind))


def order_prefetch_keys(knowledge: Knowledge) -> tuple[PrefetchKey, ...]:
    """Prefetch templates legal in CDS Hooks 2.0: top-level context tokens only, narrowed by code, _sort and _count."""
    patient = "{{context.patientId}}"
    return (
        PrefetchKey("patient", f"Patient/{patient}", ("patient",)),
        PrefetchKey("renal", f"Observation?patient={patient}&code={_codes(knowledge, 'creatinine', 'egfr')}&_sort=-date&_count=100",
                    ("creatinine", "egfr")),
        PrefetchKey("weight", f"Observation?patient={patient}&code={_codes(knowledge, 'body_weight')}&_sort=-date&_count=20",
                    ("body_weight",)),
        PrefetchKey("calcium", f"Observation?patient={patient}&code="
                    f"{_codes(knowledge, 'calcium_total', 'calcium_corrected', 'calcium_ionized', 'albumin')}&_sort=-date&_count=20",
                    ("calcium",)),
        PrefetchKey("medications", f"MedicationRequest?patient={patient}&_sort=-authoredon&_count=100", ("medications",)),
        PrefetchKey("conditions", f"Condition?patient={patient}&_count=100", ("conditions",)),
    )


class OrderSignService:
    """Checks every bone-modifying-agent order in draftOrders when the clinician signs."""

    id = "bonecds-order-sign"
    hook = "order-sign"
    title = "Bone-modifying agent order safety check"
    description = ("Checks orders for zoledronic acid, pamidronate, ibandronate, alendronate, risedronate, clodronate "
                   "and denosumab against renal function and the product labels before they are signed.")
    context_schema = "order-sign-context"

    def __init__(self, knowledge: Knowledge) -> None:
        self.knowledge = knowledge
        self.prefetch_keys = order_prefetch_keys(knowledge)
        self.rules = ORDER_SAFETY_RULES

    def discovery_entry(self) -> dict[str, Any]:
        return {
            "hook": self.hook,
            "id": self.id,
            "title": self.title,
            "description": self.description,
            "prefetch": {p.key: p.template for p in self.prefetch_keys},
            "usageRequirements": ("Send draft MedicationRequests in context.draftOrders. Without prefetch the service "
                                  "reads Patient, Observation, MedicationRequest and Condition from fhirServer "
                                  "with the token in fhirAuthorization."),
        }

    def relevant_orders(self, context: dict[str, Any]) -> list[BoneAgentOrder]:
        return find_bone_agent_orders(context.get("draftOrders"), self.knowledge)

    def evaluate(self, context: dict[str, Any], orders: list[BoneAgentOrder], patient: dict | None,
                 resources: list[dict], unavailable: dict[str, str], now: datetime) -> list[Finding]:
        draft_ids = frozenset(o.resource_id for o in orders if o.resource_id)
        facts = build_facts(patient, resources, unavailable, self.knowledge, now, draft_ids)
        patient_reference = f"Patient/{context['patientId']}"
        return evaluate_orders(orders, facts, self.knowledge, self.rules, patient_reference, context.get("userId"), now)


def build_services(knowledge: Knowledge) -> list:
    return [OrderSignService(knowledge)]
