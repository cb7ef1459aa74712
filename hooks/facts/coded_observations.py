"""Reads coded Observations into facts: TNM stage and stage group, menopausal status, smoking
status and pregnancy status."""

from __future__ import annotations

import re
from datetime import datetime

from hooks.facts.model import CodedFinding, PatientFacts, PregnancyStatus
from hooks.fhir_read import codings, concept_label, concept_texts, effective_datetime
from hooks.knowledge import Knowledge


def read_stage(
    facts: PatientFacts, observation: dict, kind: str, when: datetime | None, knowledge: Knowledge
) -> None:
    """A TNM distant-metastasis (M) or stage-group Observation whose value shows distant metastasis
    (M1, cM1, pM1, M1a-M1c; stage IV, IVA, IVB, 4), by SNOMED code or by text.

    Any other value (M0, stage III...) is not metastasis.
    """
    spec = knowledge.raw["observations"][kind]
    snomed, loinc = knowledge.systems["snomed"], knowledge.systems["loinc"]
    value = observation.get("valueCodeableConcept")
    texts = list(concept_texts(value))
    if isinstance(observation.get("valueString"), str):
        texts.append(observation["valueString"])
    coded = [(system, code) for system, code, _ in codings(value) if code]
    # AJCC-style codes: 'cM1', 'IV'
    texts += [code for system, code in coded if system not in (snomed, loinc)]
    pattern = re.compile(spec["value_text_pattern"])
    if any(
        system == snomed and code in spec.get("value_snomed", []) for system, code in coded
    ) or any(pattern.search(text) for text in texts):
        shown = next(iter(texts), "distant metastasis")
        what = "distant metastases (M)" if kind == "distant_metastasis_stage" else "stage group"
        facts.stage_findings.append(CodedFinding(kind, when, f"{what} {shown}"))


def read_menopause_observation(
    facts: PatientFacts, observation: dict, knowledge: Knowledge
) -> None:
    """A menopausal-status observation (SNOMED observable 161712005) answered before/after
    menopause."""
    spec = knowledge.raw["menopause"]
    if not any(
        knowledge.coding_in(spec["status_observation"], system, code)
        for system, code, _ in codings(observation.get("code"))
    ):
        return
    answer = observation.get("valueCodeableConcept")
    for system, code, _ in codings(answer):
        for value_set, status in spec["status_answers"].items():
            if knowledge.condition_sets[value_set].matches(system, code, knowledge.systems):
                facts.menopause_observations.append(
                    CodedFinding(
                        status,
                        effective_datetime(observation),
                        f"menopausal status observation: {concept_label(answer)}",
                    )
                )
                return


def read_smoking_status(
    facts: PatientFacts, observation: dict, when: datetime | None, knowledge: Knowledge
) -> None:
    answer = observation.get("valueCodeableConcept")
    current = any(
        knowledge.coding_in(knowledge.raw["smoking"]["current_smoker_answers"], system, code)
        for system, code, _ in codings(answer)
    )
    facts.smoking_statuses.append(
        CodedFinding(
            "current" if current else "not-current",
            when,
            f"smoking status: {concept_label(answer, 'coded answer')}",
        )
    )


def read_pregnancy_status(facts: PatientFacts, observation: dict, knowledge: Knowledge) -> None:
    """Pregnancy status is recognised by its answer (the question's LOINC code is unverified)."""
    answers = knowledge.raw["pregnancy_status"]
    for system, code, _ in codings(observation.get("valueCodeableConcept")):
        answer = next(
            (
                name
                for name in ("pregnant", "not_pregnant", "unknown")
                if knowledge.coding_in(answers[name], system, code)
            ),
            None,
        )
        when = effective_datetime(observation)
        if answer and when:
            facts.pregnancy_statuses.append(
                PregnancyStatus(
                    answer, when, concept_label(observation.get("valueCodeableConcept"))
                )
            )
            return
