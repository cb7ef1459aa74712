"""The fact groups: parts of the record fetched as a whole, with the names cards give them when
unavailable."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FactGroup:
    key: str  # as the knowledge file's rule `needs` and the prefetch keys name it
    name: str  # as a card names it: "Creatinine results could not be retrieved"
    # Why the bone-health review reads it, in its card's words ("" when the name says it); None: the
    # review does not.
    review_note: str | None = None

    @property
    def review_name(self) -> str:
        return f"{self.name} ({self.review_note})" if self.review_note else self.name


GROUPS = (
    FactGroup("creatinine", "Creatinine results"),
    FactGroup("egfr", "eGFR results"),
    FactGroup("body_weight", "Body weight", review_note="for the BMI"),
    FactGroup("calcium", "Calcium results"),
    FactGroup("vitamin_d", "Vitamin D results"),
    FactGroup("pregnancy_status", "Pregnancy status"),
    FactGroup("medications", "Medication orders", review_note=""),
    FactGroup("administrations", "Medication administrations", review_note=""),
    FactGroup("conditions", "Problem list (conditions)", review_note=""),
    FactGroup("allergies", "Allergies", review_note="cautions for the suggested drugs"),
    FactGroup("dental_exams", "Dental examinations"),
    FactGroup("bone_density", "Bone density, BMI and smoking results", review_note=""),
    FactGroup("menopause", "Menopausal status observations", review_note=""),
    FactGroup("procedures", "Oophorectomy procedures", review_note=""),
    FactGroup("dialysis_procedures", "Dialysis procedures", review_note="for the suggested drugs"),
    FactGroup("cancer_stage", "Cancer stage observations (TNM, stage group)", review_note=""),
    FactGroup("magnesium", "Magnesium results"),
    FactGroup("dental_work", "Planned and recent dental procedures (orders and procedures)"),
)
GROUP_BY_KEY = {group.key: group for group in GROUPS}
FACT_GROUPS = frozenset(GROUP_BY_KEY)  # the keys: what a rule's `needs` may name
REVIEWED_GROUPS = {group.key: group for group in GROUPS if group.review_note is not None}


def group_name(key: str) -> str:
    """The card name of a fact group ('Medication orders'); an unknown key is shown as it is."""
    group = GROUP_BY_KEY.get(key)
    return group.name if group else key
