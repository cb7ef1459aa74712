"""The order-sign and order-select CDS services: which data they ask for, which orders they check, which rules they run."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hooks.cards import Finding
from hooks.engine import evaluate_orders, medications_by_id
from hooks.facts import build_facts
from hooks.fhir_read import bundle_resources
from hooks.knowledge import Knowledge
from hooks.orders import BoneAgentOrder, find_bone_agent_orders
from hooks.rules import ORDER_RULES


@dataclass(frozen=True)
class PrefetchKey:
    """One prefetch template and the groups of facts it supplies (so a failed fetch marks exactly those as unknown)."""
    key: str
    template: str
    provides: tuple[str, ...]


def loinc_tokens(knowledge: Knowledge, *kinds: str) -> str:
    loinc = knowledge.systems["loinc"]
    return ",".join(f"{loinc}|{code}" for kind in kinds for code in knowledge.loinc_codes(kind))


def _tokens(knowledge: Knowledge, pairs) -> str:
    """'system|code,...' for the knowledge file's [system key, code] pairs."""
    return ",".join(f"{knowledge.systems[key]}|{code}" for key, code in pairs)


def order_prefetch_keys(knowledge: Knowledge) -> tuple[PrefetchKey, ...]:
    """Prefetch templates legal in CDS Hooks 2.0: top-level context tokens only, narrowed by code, _sort and _count."""
    patient = "{{context.patientId}}"
    pregnancy = knowledge.raw["pregnancy_status"]
    dental = knowledge.raw["dental_examination"]
    dental_set = dental["encounter_condition_set"]
    return (
        PrefetchKey("patient", f"Patient/{patient}", ("patient",)),
        PrefetchKey("renal", f"Observation?patient={patient}&code={loinc_tokens(knowledge, 'creatinine', 'egfr')}&_sort=-date&_count=100",
                    ("creatinine", "egfr")),
        PrefetchKey("weight", f"Observation?patient={patient}&code={loinc_tokens(knowledge, 'body_weight')}&_sort=-date&_count=20",
                    ("body_weight",)),
        PrefetchKey("calcium", f"Observation?patient={patient}&code="
                    f"{loinc_tokens(knowledge, 'calcium_total', 'calcium_corrected', 'calcium_ionized', 'albumin')}&_sort=-date&_count=40",
                    ("calcium",)),
        PrefetchKey("vitaminD", f"Observation?patient={patient}&code={loinc_tokens(knowledge, 'vitamin_d')}&_sort=-date&_count=5",
                    ("vitamin_d",)),
        PrefetchKey("pregnancyStatus", f"Observation?patient={patient}&value-concept="
                    f"{_tokens(knowledge, [p for answers in ('pregnant', 'not_pregnant', 'unknown') for p in pregnancy[answers]])}"
                    f"&_sort=-date&_count=5", ("pregnancy_status",)),
        PrefetchKey("medications", f"MedicationRequest?patient={patient}&_sort=-authoredon&_count=100"
                    "&_include=MedicationRequest:medication", ("medications",)),
        PrefetchKey("administrations", f"MedicationAdministration?patient={patient}&_sort=-effective-time&_count=100"
                    "&_include=MedicationAdministration:medication",
                    ("administrations",)),
        PrefetchKey("conditions", f"Condition?patient={patient}&_count=100", ("conditions",)),
        PrefetchKey("allergies", f"AllergyIntolerance?patient={patient}&_count=50", ("allergies",)),
        PrefetchKey("dentalProcedures", f"Procedure?patient={patient}&code={_tokens(knowledge, dental['procedure_codes'])}"
                    f"&_sort=-date&_count=5", ("dental_exams",)),
        PrefetchKey("dentalEncounters", f"Encounter?patient={patient}&reason-code={_icd_tokens(knowledge, dental_set)}"
                    f"&_sort=-date&_count=5", ("dental_exams",)),
        PrefetchKey("dialysisProcedures", f"Procedure?patient={patient}&code="
                    f"{_tokens(knowledge, knowledge.threshold('dialysis_procedures')['procedure_codes'])}"
                    f"&_sort=-date&_count=5", ("dialysis_procedures",)),
        PrefetchKey("cancerStage", f"Observation?patient={patient}&code={_stage_tokens(knowledge)}&_sort=-date&_count=20",
                    ("cancer_stage",)),
        *eligibility_prefetch_keys(knowledge),
    )


def _stage_tokens(knowledge: Knowledge) -> str:
    """The TNM distant-metastasis and stage-group Observation codes (LOINC, and the SNOMED observables mCODE prefers)."""
    snomed = knowledge.systems["snomed"]
    kinds = ("distant_metastasis_stage", "stage_group")
    codes = [f"{snomed}|{code}" for kind in kinds for code in knowledge.raw["observations"][kind].get("snomed", [])]
    return ",".join([loinc_tokens(knowledge, *kinds), *codes])


def eligibility_prefetch_keys(knowledge: Knowledge) -> tuple[PrefetchKey, ...]:
    """What menopausal status and the bone-loss indication read: DXA, BMI, height, smoking, status, oophorectomy."""
    patient = "{{context.patientId}}"
    menopause = knowledge.raw["menopause"]
    return (
        PrefetchKey("boneDensity", f"Observation?patient={patient}&code="
                    f"{loinc_tokens(knowledge, 'dxa_t_score', 'bmi', 'body_height', 'smoking_status')}&_sort=-date&_count=50",
                    ("bone_density",)),
        PrefetchKey("menopauseStatus", f"Observation?patient={patient}&code={_tokens(knowledge, menopause['status_observation'])}"
                    f"&_sort=-date&_count=5", ("menopause",)),
        PrefetchKey("oophorectomy", f"Procedure?patient={patient}&code={_tokens(knowledge, menopause['bilateral_oophorectomy'])}"
                    f"&_count=5", ("procedures",)),
    )


def _icd_tokens(knowledge: Knowledge, value_set: str) -> str:
    codes = knowledge.raw["conditions"][value_set]["icd10cm"]
    return ",".join(f"{knowledge.systems['icd10cm']}|{code}" for code in codes)


class OrderSignService:
    """Checks every bone-modifying-agent order in draftOrders when the clinician signs."""

    id = "bonecds-order-sign"
    hook = "order-sign"
    title = "Bone-modifying agent order safety check"
    description = ("Checks orders for zoledronic acid, pamidronate, ibandronate, alendronate, risedronate, clodronate "
                   "and denosumab before they are signed: renal function, calcium, vitamin D, supplements, dental "
                   "check, osteonecrosis of the jaw, schedule and dose, duplicates, pregnancy, allergies and "
                   "contraindications from the product labels, and adjuvant eligibility (menopausal status, "
                   "chemotherapy, bone loss) from the AGO guideline and the EBCTCG meta-analysis.")
    context_schema = "order-sign-context"
    tolerant = False

    def __init__(self, knowledge: Knowledge) -> None:
        self.knowledge = knowledge
        self.prefetch_keys = order_prefetch_keys(knowledge)
        self.rules = ORDER_RULES

    def discovery_entry(self) -> dict[str, Any]:
        return {
            "hook": self.hook,
            "id": self.id,
            "title": self.title,
            "description": self.description,
            "prefetch": {p.key: p.template for p in self.prefetch_keys},
            "usageRequirements": ("Send draft MedicationRequests in context.draftOrders. Without prefetch the service "
                                  "reads Patient, Observation, MedicationRequest, MedicationAdministration, Condition, "
                                  "AllergyIntolerance, Procedure and Encounter from fhirServer with the token in "
                                  "fhirAuthorization."),
        }

    def triage(self, context: dict[str, Any]) -> list[BoneAgentOrder]:
        """The orders to check; none means an empty answer without reading the record."""
        return find_bone_agent_orders(context.get("draftOrders"), self.knowledge)

    def evaluate(self, context: dict[str, Any], orders: list[BoneAgentOrder], patient: dict | None,
                 resources: list[dict], unavailable: dict[str, str], now: datetime) -> list[Finding]:
        all_orders = find_bone_agent_orders(context.get("draftOrders"), self.knowledge)
        draft_ids = frozenset(o.resource_id for o in all_orders if o.resource_id)
        companions = [r for r in bundle_resources(context.get("draftOrders"))
                      if not (isinstance(r.get("id"), str) and r["id"] in draft_ids)]
        facts = build_facts(patient, resources, unavailable, self.knowledge, now, draft_ids, companions)
        patient_reference = f"Patient/{context['patientId']}"
        medications = medications_by_id([*resources, *bundle_resources(context.get("draftOrders"))])
        return evaluate_orders(orders, facts, self.knowledge, self.rules, patient_reference, context.get("userId"), now,
                               all_orders=all_orders, tolerant=self.tolerant, companions=companions,
                               medications=medications)


class OrderSelectService(OrderSignService):
    """The same checks when a bone agent is selected, before dose and timing are complete: what it does not say yet is
    skipped; the other drafts of the order set are seen for duplicates."""

    id = "bonecds-order-select"
    hook = "order-select"
    title = "Bone-modifying agent selection check"
    description = ("Runs the order-sign checks as soon as a bone-modifying agent is selected, skipping what the order "
                   "does not state yet (dose, interval), so problems show before the order is completed.")
    context_schema = "order-select-context"
    tolerant = True

    def triage(self, context: dict[str, Any]) -> list[BoneAgentOrder]:
        selected = {s for s in context.get("selections", []) if isinstance(s, str)}
        return [o for o in find_bone_agent_orders(context.get("draftOrders"), self.knowledge) if o.reference in selected]


def build_services(knowledge: Knowledge) -> list:
    from hooks.patient_view import PatientViewService
    return [OrderSignService(knowledge), OrderSelectService(knowledge), PatientViewService(knowledge)]
