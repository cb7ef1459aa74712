"""The prefetch templates every service asks EHRs for (CDS Hooks 2.0: top-level context tokens only,
narrowed by code, _sort and _count), each with the fact groups it supplies, and their filling from
the request context."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from hooks.knowledge import Knowledge

CONTEXT_TOKEN = re.compile(r"\{\{\s*context\.([A-Za-z]+)\s*\}\}")
USER_TOKENS = {
    "userPractitionerId": "Practitioner",
    "userPractitionerRoleId": "PractitionerRole",
    "userPatientId": "Patient",
    "userRelatedPersonId": "RelatedPerson",
}


@dataclass(frozen=True)
class PrefetchKey:
    """One prefetch template and the groups of facts it supplies (so a failed fetch marks exactly
    those as unknown)."""

    key: str
    template: str
    provides: tuple[str, ...]


def loinc_tokens(knowledge: Knowledge, *kinds: str) -> str:
    loinc = knowledge.systems["loinc"]
    return ",".join(f"{loinc}|{code}" for kind in kinds for code in knowledge.loinc_codes(kind))


def _tokens(knowledge: Knowledge, pairs) -> str:
    """'system|code,...' for the knowledge file's [system key, code] pairs."""
    return ",".join(f"{knowledge.systems[key]}|{code}" for key, code in pairs)


def record_prefetch_keys(knowledge: Knowledge) -> tuple[PrefetchKey, ...]:
    """Prefetch templates legal in CDS Hooks 2.0: top-level context tokens only, narrowed by code,
    _sort and _count."""
    patient = "{{context.patientId}}"
    pregnancy = knowledge.raw["pregnancy_status"]
    dental = knowledge.raw["dental_examination"]
    dental_set = dental["encounter_condition_set"]
    return (
        PrefetchKey("patient", f"Patient/{patient}", ("patient",)),
        PrefetchKey(
            "renal",
            f"Observation?patient={patient}&code={loinc_tokens(knowledge, 'creatinine', 'egfr')}"
            "&_sort=-date&_count=100",
            ("creatinine", "egfr"),
        ),
        PrefetchKey(
            "weight",
            f"Observation?patient={patient}&code={loinc_tokens(knowledge, 'body_weight')}"
            "&_sort=-date&_count=20",
            ("body_weight",),
        ),
        PrefetchKey(
            "calcium",
            f"Observation?patient={patient}&code="
            + loinc_tokens(
                knowledge,
                "calcium_total",
                "calcium_corrected",
                "calcium_ionized",
                "albumin",
                "phosphate",  # the denosumab CKD-MBD work-up reads these with calcium
                "pth",
            )
            + "&_sort=-date&_count=40",
            ("calcium",),
        ),
        PrefetchKey(
            "vitaminD",
            f"Observation?patient={patient}&code={loinc_tokens(knowledge, 'vitamin_d')}"
            "&_sort=-date&_count=5",
            ("vitamin_d",),
        ),
        PrefetchKey(
            "pregnancyStatus",
            f"Observation?patient={patient}&value-concept="
            + _tokens(
                knowledge,
                [
                    p
                    for answers in ("pregnant", "not_pregnant", "unknown")
                    for p in pregnancy[answers]
                ],
            )
            + "&_sort=-date&_count=5",
            ("pregnancy_status",),
        ),
        PrefetchKey(
            "medications",
            f"MedicationRequest?patient={patient}&_sort=-authoredon&_count=100"
            "&_include=MedicationRequest:medication",
            ("medications",),
        ),
        PrefetchKey(
            "administrations",
            f"MedicationAdministration?patient={patient}&_sort=-effective-time&_count=100"
            "&_include=MedicationAdministration:medication",
            ("administrations",),
        ),
        PrefetchKey("conditions", f"Condition?patient={patient}&_count=100", ("conditions",)),
        PrefetchKey("allergies", f"AllergyIntolerance?patient={patient}&_count=50", ("allergies",)),
        PrefetchKey(
            "dentalProcedures",
            f"Procedure?patient={patient}&code={_tokens(knowledge, dental['procedure_codes'])}"
            "&_sort=-date&_count=5",
            ("dental_exams",),
        ),
        PrefetchKey(
            "dentalEncounters",
            f"Encounter?patient={patient}&reason-code={_icd_tokens(knowledge, dental_set)}"
            "&_sort=-date&_count=5",
            ("dental_exams",),
        ),
        PrefetchKey(
            "dialysisProcedures",
            f"Procedure?patient={patient}&code="
            f"{_tokens(knowledge, knowledge.threshold('dialysis_procedures')['procedure_codes'])}"
            "&_sort=-date&_count=5",
            ("dialysis_procedures",),
        ),
        PrefetchKey(
            "cancerStage",
            f"Observation?patient={patient}&code={_stage_tokens(knowledge)}&_sort=-date&_count=20",
            ("cancer_stage",),
        ),
        *eligibility_prefetch_keys(knowledge),
        *interaction_prefetch_keys(knowledge),
    )


def _stage_tokens(knowledge: Knowledge) -> str:
    """The TNM distant-metastasis and stage-group Observation codes (LOINC, and the SNOMED
    observables mCODE prefers)."""
    snomed = knowledge.systems["snomed"]
    kinds = ("distant_metastasis_stage", "stage_group")
    codes = [
        f"{snomed}|{code}"
        for kind in kinds
        for code in knowledge.raw["observations"][kind].get("snomed", [])
    ]
    return ",".join([loinc_tokens(knowledge, *kinds), *codes])


def eligibility_prefetch_keys(knowledge: Knowledge) -> tuple[PrefetchKey, ...]:
    """What menopausal status and the bone-loss indication read: DXA, BMI, height, smoking, status,
    oophorectomy."""
    patient = "{{context.patientId}}"
    menopause = knowledge.raw["menopause"]
    return (
        PrefetchKey(
            "boneDensity",
            f"Observation?patient={patient}&code="
            + loinc_tokens(knowledge, "dxa_t_score", "bmi", "body_height", "smoking_status")
            + "&_sort=-date&_count=50",
            ("bone_density",),
        ),
        PrefetchKey(
            "menopauseStatus",
            f"Observation?patient={patient}&code="
            + _tokens(knowledge, menopause["status_observation"])
            + "&_sort=-date&_count=5",
            ("menopause",),
        ),
        PrefetchKey(
            "oophorectomy",
            f"Procedure?patient={patient}&code="
            + _tokens(knowledge, menopause["bilateral_oophorectomy"])
            + "&_count=5",
            ("procedures",),
        ),
    )


def interaction_prefetch_keys(knowledge: Knowledge) -> tuple[PrefetchKey, ...]:
    """Magnesium (nephrotoxic co-medication) and invasive dental work: ServiceRequests still planned
    and Procedures, narrowed to the CDT system (any code: the rule reads code ranges) and the
    knowledge's SNOMED CT codes."""
    patient = "{{context.patientId}}"
    spec = knowledge.threshold("invasive_dental_work")
    codes = ",".join([f"{knowledge.systems['cdt']}|", _tokens(knowledge, spec["procedure_codes"])])
    return (
        PrefetchKey(
            "magnesium",
            f"Observation?patient={patient}&code={loinc_tokens(knowledge, 'magnesium')}"
            "&_sort=-date&_count=5",
            ("magnesium",),
        ),
        PrefetchKey(
            "dentalWorkRequests",
            f"ServiceRequest?patient={patient}&status=draft,active,on-hold&code={codes}"
            "&_sort=-authored&_count=20",
            ("dental_work",),
        ),
        PrefetchKey(
            "dentalWorkProcedures",
            f"Procedure?patient={patient}&code={codes}&_sort=-date&_count=50",
            ("dental_work",),
        ),
    )


def _icd_tokens(knowledge: Knowledge, value_set: str) -> str:
    codes = knowledge.raw["conditions"][value_set]["icd10cm"]
    return ",".join(f"{knowledge.systems['icd10cm']}|{code}" for code in codes)


def fill_template(template: str, context: dict[str, Any]) -> str:
    """Replace 2.0 prefetch tokens with URL-encoded context values; a token without a value is an
    error."""

    def context_value(match: re.Match) -> str:
        value = context.get(match.group(1))
        if not isinstance(value, str):
            raise KeyError(match.group(1))
        return quote(value, safe="/")

    filled = CONTEXT_TOKEN.sub(context_value, template)
    user_id = context.get("userId")
    user = user_id if isinstance(user_id, str) else ""
    for token, resource_type in USER_TOKENS.items():
        if "{{" + token + "}}" in filled:
            if not user.startswith(resource_type + "/"):
                raise KeyError(token)
            filled = filled.replace("{{" + token + "}}", quote(user.split("/", 1)[1], safe=""))
    return filled
