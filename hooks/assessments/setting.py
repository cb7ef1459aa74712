"""The clinical setting (hypercalcemia of malignancy, bone-metastatic, metastatic-other, early,
none) from facts."""

from __future__ import annotations

from hooks.assessments.calcium import current_hypercalcemia_of_malignancy
from hooks.facts.model import PatientFacts, Setting
from hooks.knowledge import Knowledge


def derive_setting(facts: PatientFacts, knowledge: Knowledge) -> Setting:
    """Clinical setting by the catalog's precedence: hypercalcemia of malignancy (only while
    current), bone metastases, metastasis elsewhere, early breast cancer, no breast cancer."""
    current = current_hypercalcemia_of_malignancy(facts, knowledge)
    if current:
        return Setting("hypercalcemia-of-malignancy", current)
    if facts.has_condition("bone-metastasis"):
        return Setting("bone-metastatic", "active bone metastasis on the problem list")
    if facts.has_condition("breast-cancer"):
        if facts.has_condition("distant-metastasis"):
            return Setting("metastatic-other", "breast cancer with distant metastasis outside bone")
        if facts.stage_findings:
            return Setting(
                "metastatic-other",
                "breast cancer with distant metastasis on a stage observation "
                f"({facts.stage_findings[0].dated()}), no bone site on record",
            )
        return Setting(
            "early",
            "breast cancer without distant metastasis on record (conditions and stage"
            " observations)",
        )
    return Setting("no-breast-cancer", "no active breast cancer diagnosis on record")
