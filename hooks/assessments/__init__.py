"""Clinical judgments worked out from the facts: renal function, calcium, menopausal status, bone
health, setting."""
