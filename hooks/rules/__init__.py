"""Rule registry: the rule functions each hook runs, most serious kinds first; the completeness check runs last."""
from __future__ import annotations

from hooks.rules.calcium import (
    calcium_data_missing, calcium_low, denosumab_renal_hypocalcemia, supplements_missing, vitamin_d_low,
)
from hooks.rules.completeness import record_incomplete
from hooks.rules.eligibility import (
    adjuvant_denosumab_not_recommended, adjuvant_no_benefit_premenopausal, adjuvant_premenopausal_chemotherapy,
    dxa_missing, menopausal_status_unknown,
)
from hooks.rules.history import (
    atypical_femur_fracture_history, dental_check_missing, hypersensitivity, onj_history, onj_risk_antiangiogenic,
    oral_bp_esophageal, pregnancy_or_lactation,
)
from hooks.rules.regimen import (
    adjuvant_duration_exceeded, dose_above_maximum, duplicate_bone_agent, infusion_too_fast, interval_too_short,
    metastatic_schedule_inappropriate, oral_bp_regimen, pamidronate_hcm_dose,
)
from hooks.rules.renal import renal_contraindicated, renal_data_missing, renal_deterioration, renal_dose_adjust

ORDER_SAFETY_RULES = (
    ("pregnancy-or-lactation", pregnancy_or_lactation),
    ("hypersensitivity", hypersensitivity),
    ("onj-history", onj_history),
    ("duplicate-bone-agent", duplicate_bone_agent),
    ("calcium-low", calcium_low),
    ("renal-contraindicated", renal_contraindicated),
    ("renal-deterioration", renal_deterioration),
    ("oral-bp-esophageal", oral_bp_esophageal),
    ("renal-dose-adjust", renal_dose_adjust),
    ("dose-above-maximum", dose_above_maximum),
    ("pamidronate-hcm-dose", pamidronate_hcm_dose),
    ("infusion-too-fast", infusion_too_fast),
    ("interval-too-short", interval_too_short),
    ("oral-bp-regimen", oral_bp_regimen),
    ("metastatic-schedule-inappropriate", metastatic_schedule_inappropriate),
    ("adjuvant-duration-exceeded", adjuvant_duration_exceeded),
    ("denosumab-renal-hypocalcemia", denosumab_renal_hypocalcemia),
    ("onj-risk-antiangiogenic", onj_risk_antiangiogenic),
    ("atypical-femur-fracture-history", atypical_femur_fracture_history),
    ("renal-data-missing", renal_data_missing),
    ("calcium-data-missing", calcium_data_missing),
    ("dental-check-missing", dental_check_missing),
    ("vitamin-d-low", vitamin_d_low),
    ("supplements-missing", supplements_missing),
)
ORDER_ELIGIBILITY_RULES = (
    ("adjuvant-premenopausal-chemotherapy", adjuvant_premenopausal_chemotherapy),
    ("adjuvant-denosumab-not-recommended", adjuvant_denosumab_not_recommended),
    ("adjuvant-no-benefit-premenopausal", adjuvant_no_benefit_premenopausal),
    ("menopausal-status-unknown", menopausal_status_unknown),
    ("dxa-missing", dxa_missing),
)
# Safety first, then eligibility; the completeness card runs last so it knows what the others already said.
ORDER_RULES = ORDER_SAFETY_RULES + ORDER_ELIGIBILITY_RULES + (("record-incomplete", record_incomplete),)
