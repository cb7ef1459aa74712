"""Rule registry: the rule functions each hook runs, in the order their cards should appear."""
from __future__ import annotations

from hooks.rules.renal import renal_contraindicated, renal_data_missing, renal_deterioration, renal_dose_adjust

ORDER_SAFETY_RULES = (
    ("renal-contraindicated", renal_contraindicated),
    ("renal-deterioration", renal_deterioration),
    ("renal-dose-adjust", renal_dose_adjust),
    ("renal-data-missing", renal_data_missing),
)
