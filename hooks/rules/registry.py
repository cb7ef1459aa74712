"""The rule registry: the rules each hook runs, in card order, and its start-up check against the
knowledge."""

from __future__ import annotations

from hooks.knowledge import Knowledge, KnowledgeError
from hooks.rules.calcium import (
    calcium_data_missing,
    calcium_low,
    denosumab_renal_hypocalcemia,
)
from hooks.rules.completeness import record_incomplete
from hooks.rules.denosumab import denosumab_follow_on_late, denosumab_strength_schedule
from hooks.rules.dental_work import invasive_dental_work
from hooks.rules.duplicates import duplicate_bone_agent
from hooks.rules.eligibility import (
    adjuvant_denosumab_not_recommended,
    adjuvant_no_benefit_premenopausal,
    adjuvant_premenopausal_chemotherapy,
    dxa_missing,
    menopausal_status_unknown,
)
from hooks.rules.history import (
    age_under_18,
    atypical_femur_fracture_history,
    dental_check_missing,
    hypersensitivity,
    onj_history,
    onj_risk_antiangiogenic,
    oral_bp_esophageal,
    pregnancy_or_lactation,
)
from hooks.rules.interactions import nephrotoxic_comedication
from hooks.rules.intervals import interval_too_short
from hooks.rules.regimen import (
    adjuvant_duration_exceeded,
    dose_above_maximum,
    infusion_too_fast,
    metastatic_schedule_inappropriate,
    oral_bp_regimen,
    pamidronate_hcm_dose,
)
from hooks.rules.renal import (
    renal_contraindicated,
    renal_data_missing,
    renal_deterioration,
)
from hooks.rules.renal_dose import renal_dose_adjust
from hooks.rules.review import (
    review_adjuvant_candidate,
    review_bone_loss_untreated,
    review_bone_metastases_untreated,
    review_denosumab_stopped,
    review_incomplete,
)
from hooks.rules.rule import Rule
from hooks.rules.supplements import supplements_missing, vitamin_d_low

ORDER_SAFETY_RULES: tuple[Rule, ...] = (
    pregnancy_or_lactation,
    hypersensitivity,
    onj_history,
    duplicate_bone_agent,
    calcium_low,
    renal_contraindicated,
    renal_deterioration,
    oral_bp_esophageal,
    renal_dose_adjust,
    dose_above_maximum,
    pamidronate_hcm_dose,
    infusion_too_fast,
    denosumab_strength_schedule,
    interval_too_short,
    oral_bp_regimen,
    metastatic_schedule_inappropriate,
    adjuvant_duration_exceeded,
    denosumab_follow_on_late,
    denosumab_renal_hypocalcemia,
    onj_risk_antiangiogenic,
    invasive_dental_work,
    nephrotoxic_comedication,
    atypical_femur_fracture_history,
    age_under_18,
    renal_data_missing,
    calcium_data_missing,
    dental_check_missing,
    vitamin_d_low,
    supplements_missing,
)
ORDER_ELIGIBILITY_RULES: tuple[Rule, ...] = (
    adjuvant_premenopausal_chemotherapy,
    adjuvant_denosumab_not_recommended,
    adjuvant_no_benefit_premenopausal,
    menopausal_status_unknown,
    dxa_missing,
)
# Safety first, then eligibility; the completeness card runs after all of them (wherever it is
# listed), so it knows
# what the others already said.
ORDER_RULES: tuple[Rule, ...] = ORDER_SAFETY_RULES + ORDER_ELIGIBILITY_RULES + (record_incomplete,)
REVIEW_RULES: tuple[Rule, ...] = (
    review_bone_metastases_untreated,
    review_denosumab_stopped,
    review_adjuvant_candidate,
    review_bone_loss_untreated,
    review_incomplete,
)
# Entries of the knowledge file's `rules` that no rule registers: cards the service writes itself.
NOT_RULES = {"rule-error": "the card of a rule that could not be completed"}


def check_registry(
    knowledge: Knowledge, rules: tuple[Rule, ...] = ORDER_RULES + REVIEW_RULES
) -> None:
    """Refuse to start, in one line (KnowledgeError naming the knowledge file), when a registered
    rule has no entry in the knowledge file's `rules` (its scope and sources would be missing mid-
    request) or an entry there is run by no registered rule (a rule the knowledge describes but the
    service never checks)."""
    known, where = knowledge.raw["rules"], knowledge.origin
    registered = {entry.rule_id: entry for entry in rules}
    for rule_id, entry in registered.items():
        if rule_id not in known:
            raise KnowledgeError(
                where,
                f"at rules: rule {rule_id!r} ({entry.check.__module__}.{entry.check.__name__}) "
                "is registered but has no entry in the knowledge file's rules",
            )
    for rule_id in known:
        if rule_id not in registered and rule_id not in NOT_RULES:
            raise KnowledgeError(
                where,
                f"at rules.{rule_id}: no registered rule runs it (add the rule to "
                "hooks/rules/registry.py, or remove the entry)",
            )
