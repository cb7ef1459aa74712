"""Renal dose tables as data: the band a renal function falls into, what an order gives beyond it,
and the order rewritten to it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hooks.assessments.renal import RenalFunction
from hooks.fhir_read import DAYS_PER_UNIT, json_copy
from hooks.orders import BoneAgentOrder
from hooks.quick_frozen import quick_frozen
from hooks.rules.context import below
from hooks.suggestions import every_words, note_change, set_dose

BOUNDS = ("crcl_above", "crcl_at_least", "crcl_from", "crcl_through", "crcl_below")


def band_edges(bands) -> tuple[float, ...]:
    return tuple(band[key] for band in bands for key in BOUNDS if key in band)


def band_indexes(bands: list[dict], function: RenalFunction) -> set[int | None]:
    """The bands every value a (possibly censored) renal function allows falls into: one when the
    band is decided, several when a bound spans a band edge (None: below the table)."""
    if not function.censored:
        return {table_band(bands, function.value)}
    step = 1e-6
    edges = sorted(set(band_edges(bands)))
    bound, comparator = function.value, function.comparator
    if comparator in (">", ">="):
        start = bound if comparator == ">=" else bound + step
        points = [start, 1e6] + [
            p for edge in edges for p in (edge - step, edge, edge + step) if p >= start
        ]
    else:
        end = bound if comparator == "<=" else bound - step
        points = [step, end] + [
            p for edge in edges for p in (edge - step, edge, edge + step) if step <= p <= end
        ]
    return {table_band(bands, point) for point in points}


def table_band(bands: list[dict], clearance: float) -> int | None:
    """The index of the band a clearance falls into, from bands written as above / at least /
    from-through / from-below (bounds as the label states); None below the table."""
    for index, band in enumerate(bands):
        if "crcl_above" in band and clearance > band["crcl_above"] + 1e-9:
            return index
        if "crcl_at_least" in band and not below(clearance, band["crcl_at_least"]):
            return index
        low = band.get("crcl_from")
        if low is None or below(clearance, low):
            continue
        if "crcl_through" in band and clearance <= band["crcl_through"] + 1e-9:
            return index
        if "crcl_below" in band and below(clearance, band["crcl_below"]):
            return index
    return None


def band_text(band: dict, per_day: bool = False) -> str:
    """'3.3 mg', '1200 mg/day', '50 mg every 2 days', '4 mg over at least 60 minutes'."""
    text = f"{band['dose_mg']:g} mg" + ("/day" if per_day else "")
    if "every" in band:
        text += f" {every_words(band['every'])}"
    if "min_infusion_minutes" in band:
        text += f" over at least {band['min_infusion_minutes']:g} minutes"
    return text


def describe_bands(bands: list[dict], per_day: bool = False) -> str:
    """'above 60 mL/min: 4 mg; 50 to 60: 3.5 mg; 40 to under 50: 3.3 mg; ...' from the knowledge
    file's bands."""
    parts = []
    for band in bands:
        if "crcl_above" in band:
            where = f"above {band['crcl_above']:g} mL/min"
        elif "crcl_at_least" in band:
            where = f"{band['crcl_at_least']:g} mL/min or more"
        elif "crcl_through" in band:
            where = f"{band['crcl_from']:g} to {band['crcl_through']:g}"
        elif band["crcl_from"] == 0:
            where = f"under {band['crcl_below']:g}"
        else:
            where = f"{band['crcl_from']:g} to under {band['crcl_below']:g}"
        parts.append(f"{where}: {band_text(band, per_day)}")
    return "; ".join(parts)


def full_dose_text(table: dict[str, Any]) -> str:
    """'the dose of 4 mg is the label dose for CrCl above 60 mL/min' (the table's first band)."""
    band, per_day = table["bands"][0], table.get("dose_per") == "day"
    where = describe_bands([band]).split(":")[0]
    return f"the dose of {band_text(band, per_day)} is the label dose for CrCl {where}"


def doses_per_day(order: BoneAgentOrder) -> float:
    """How many doses the order gives per day (once daily when it states no interval)."""
    return 1 / order.interval.days if order.interval else 1.0


@quick_frozen
@dataclass(frozen=True)
class LabelDose:
    """The band of a product's renal table for this order, and the renal function it rests on
    (None on dialysis, which takes the lowest band)."""

    band: dict[str, Any]
    index: int
    function: RenalFunction | None
    basis: str
    bands: tuple[dict, ...]
    source: str | None
    per_day: bool
    dialysis: tuple[str, ...] = ()
    baseline: bool = False  # the band follows the baseline clearance of a course (zoledronic acid)

    @property
    def reduced(self) -> bool:
        """A renal reduction: any band below the table's first (full-dose) band."""
        return self.index > 0

    @property
    def every(self) -> tuple[float, str] | None:
        if "every" not in self.band:
            return None
        period, unit = self.band["every"]
        return float(period), str(unit)

    def dose_for(self, order: BoneAgentOrder) -> float:
        """The dose per administration for this order: the band's dose, or its daily dose shared
        over the order's doses per day."""
        dose = float(self.band["dose_mg"])
        return round(dose / doses_per_day(order), 1) if self.per_day else dose

    def shown(self, limits=()) -> str:
        """'on dialysis', or the renal function never rounded onto one of the table's edges."""
        if self.function is None:
            return "on dialysis"
        return self.function.shown(limits or band_edges(self.bands))

    def at(self, word: str = "at") -> str:
        """'on dialysis', or 'at CrCl 45.0 mL/min' (with the preposition asked for)."""
        return self.shown() if self.function is None else f"{word} {self.shown()}"


def exceeded(order: BoneAgentOrder, label: LabelDose) -> list[str]:
    """What the order gives beyond its band: 'dose', 'interval' (more often than the band)."""
    found = []
    if "every" not in label.band or label.per_day:
        if order.dose_mg is None or order.dose_mg > label.dose_for(order) + 1e-9:
            found.append("dose")
    elif order.dose_mg is not None and order.dose_mg > label.band["dose_mg"] + 1e-9:
        found.append("dose")
    every = label.every
    if every is not None and order.interval is not None:
        if order.interval.days < every[0] * DAYS_PER_UNIT[every[1]] - 1e-9:
            found.append("interval")
    return found


def at_band(resource: dict[str, Any], order: BoneAgentOrder, label: LabelDose) -> dict[str, Any]:
    """A copy of an order resource at its band (see `apply_band`)."""
    changed = json_copy(resource)
    dosages = changed.setdefault("dosageInstruction", [{}])
    if not dosages or not isinstance(dosages[0], dict):
        dosages[:1] = [{}]
    apply_band(dosages[0], order, label)
    return changed


def apply_band(dosage: dict[str, Any], order: BoneAgentOrder, label: LabelDose) -> None:
    """The dosage instruction at its band, in place: the dose, the interval and the infusion time
    the band gives, each only where the order gives more (or faster); the sig text says what
    changed, and only that."""
    changes: list[str] = []
    over = exceeded(order, label)
    if "dose" in over:
        dose = label.dose_for(order)
        set_dose(dosage, dose)
        changes.append(f"{dose:g} mg")
    timing: dict[str, Any] = dosage["timing"] if isinstance(dosage.get("timing"), dict) else {}
    repeat: dict[str, Any] = timing["repeat"] if isinstance(timing.get("repeat"), dict) else {}
    if "interval" in over and label.every is not None:
        repeat.update(frequency=1, period=label.every[0], periodUnit=label.every[1])
        changes.append(every_words(label.every))
    minimum = label.band.get("min_infusion_minutes")
    if minimum is not None and label.reduced:
        stated = order.infusion_minutes
        if stated is None or stated < minimum - 1e-9:
            repeat.update(duration=minimum, durationUnit="min")
            changes.append(f"infused over at least {minimum:g} minutes")
    if repeat:
        dosage["timing"] = {**timing, "repeat": repeat}
    if changes:
        note_change(dosage, f"changed to {', '.join(changes)} by the renal table")
