"""Suggestion labels that name the change, as the button a clinician reads: 'Reduce to 3.5 mg'."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from hooks.orders import UNIT_WORDS

ONCE_EVERY = {"d": "once daily", "wk": "once weekly", "mo": "once monthly", "a": "once yearly"}


def every_words(every: tuple[float, str] | list) -> str:
    """A repeat interval in a sentence: 'every week', 'every 12 weeks'."""
    period, unit = every
    word = UNIT_WORDS[unit]
    return f"every {word}" if period == 1 else f"every {period:g} {word}s"


def interval_words(every: tuple[float, str] | list) -> str:
    """A repeat interval as a button names it: 'once weekly', 'every 12 weeks'."""
    period, unit = every
    return ONCE_EVERY[unit] if period == 1 and unit in ONCE_EVERY else every_words(every)


def dose_label(
    ordered_mg: float | None, dose_mg: float, every: tuple[float, str] | None = None
) -> str:
    """'Reduce to 3.5 mg', 'Increase to 90 mg', 'Change dose to 60 mg' (the ordered dose unknown or
    the same); with a new interval 'Reduce to 3 mg every 4 weeks', 'Change to 50 mg once weekly'."""
    when = f" {interval_words(every)}" if every else ""
    if ordered_mg is not None and dose_mg < ordered_mg - 1e-9:
        return f"Reduce to {dose_mg:g} mg{when}"
    if ordered_mg is not None and dose_mg > ordered_mg + 1e-9:
        return f"Increase to {dose_mg:g} mg{when}"
    return f"Change to {dose_mg:g} mg{when}" if every else f"Change dose to {dose_mg:g} mg"


def timing_label(
    every: tuple[float, str] | None, not_before: datetime | None, single_dose: bool
) -> str:
    """'Change to once weekly', 'Change to every 12 weeks from 2026-10-22', 'Change to a single
    dose', 'Start on or after 2026-10-22'."""
    parts = (["a single dose"] if single_dose else []) + ([interval_words(every)] if every else [])
    start = not_before.date().isoformat() if not_before else ""
    if not parts:
        return f"Start on or after {start}" if start else "Change the timing"
    return f"Change to {', '.join(parts)}" + (f" from {start}" if start else "")


def orderable_name(entry: dict[str, Any]) -> str:
    """What a clinician calls an orderable: its knowledge 'label', else its display without the
    LOINC axes ('Creatinine [Mass/volume] in Serum or Plasma' -> 'serum creatinine')."""
    if entry.get("label"):
        return str(entry["label"])
    display = str(entry["display"])
    name = display.split(" [")[0].lower()
    return f"serum {name}" if display.endswith("in Serum or Plasma") else name
