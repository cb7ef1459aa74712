"""Small lenient readers for plain-JSON FHIR resources (prefetch and draft orders are never model-
parsed)."""

from __future__ import annotations

import calendar
import copy
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import orjson

# Days per UCUM unit of time, as FHIR Timing and the knowledge's intervals write them.
DAYS_PER_UNIT = {
    "s": 1 / 86400,
    "min": 1 / 1440,
    "h": 1 / 24,
    "d": 1.0,
    "wk": 7.0,
    "mo": 365.25 / 12,
    "a": 365.25,
}


def as_list(value: Any) -> list:
    """FHIR arrays sometimes arrive as a single object (the CDS Hooks Sandbox does this with
    category)."""
    if value is None:
        return []
    if isinstance(value, list):
        return value
    return [value]


def json_copy(document: Any) -> Any:
    """A deep copy of parsed JSON (what requests and records are), through orjson: several times
    faster than copy.deepcopy, which matters for the draft copied into every update suggestion;
    anything JSON cannot hold is copied the slow way."""
    try:
        return orjson.loads(orjson.dumps(document))
    except (TypeError, orjson.JSONEncodeError):
        return copy.deepcopy(document)


def codings(concept: Any) -> Iterator[tuple[str | None, str | None, str | None]]:
    """Yield (system, code, display) from a CodeableConcept, tolerating a bare Coding or junk."""
    for item in as_list(concept):
        if not isinstance(item, dict):
            continue
        if "coding" in item:
            for coding in as_list(item.get("coding")):
                if isinstance(coding, dict):
                    yield (
                        _str(coding.get("system")),
                        _str(coding.get("code")),
                        _str(coding.get("display")),
                    )
        elif "code" in item:
            yield _str(item.get("system")), _str(item.get("code")), _str(item.get("display"))


def object_at(resource: dict, key: str) -> dict[str, Any]:
    """resource[key] when it is a JSON object (the same dict, not a copy), else a new empty one."""
    value = resource.get(key)
    return value if isinstance(value, dict) else {}


def concept_texts(concept: Any) -> Iterator[str]:
    """Every human-readable string of a CodeableConcept: its text and each coding's display."""
    for item in as_list(concept):
        if isinstance(item, dict):
            text = _str(item.get("text"))
            if text:
                yield text
    for _system, _code, display in codings(concept):
        if display:
            yield display


def concept_label(concept: Any, fallback: str = "unnamed") -> str:
    return next(iter(concept_texts(concept)), fallback)


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def parse_datetime(value: Any) -> datetime | None:
    """Parse a FHIR date, dateTime or instant to an aware UTC datetime; partial dates go to their
    first day."""
    if not isinstance(value, str) or len(value) < 4:
        return None
    text = value.strip()
    size = len(text)
    try:
        if size <= 10:  # a date, year-month or year; an instant or dateTime below
            if size == 10:
                return datetime.fromisoformat(text).replace(tzinfo=UTC)
            if size == 7:
                return datetime(int(text[:4]), int(text[5:7]), 1, tzinfo=UTC)
            if size == 4:
                return datetime(int(text), 1, 1, tzinfo=UTC)
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00:00+14:00 lies before year 1 in UTC
        return None


def parse_date(value: Any) -> date | None:
    parsed = parse_datetime(value)
    return parsed.date() if parsed else None


def shift_months(moment: datetime, months: int) -> datetime:
    """The same day `months` calendar months later (or earlier), clamped to the month's last day."""
    index = moment.year * 12 + moment.month - 1 + months
    year, month = divmod(index, 12)
    return moment.replace(
        year=year, month=month + 1, day=min(moment.day, calendar.monthrange(year, month + 1)[1])
    )


def days_between(earlier: datetime, later: datetime) -> int:
    """Whole calendar days between two instants, by their UTC dates: a result from yesterday is 1
    day old."""
    return (later.astimezone(UTC).date() - earlier.astimezone(UTC).date()).days


def reference_id(reference: Any) -> str | None:
    """'Patient/123' or an absolute URL ending in Patient/123 -> '123'."""
    if isinstance(reference, dict):
        reference = reference.get("reference")
    if not isinstance(reference, str) or "/" not in reference:
        return None
    parts = [p for p in reference.split("/") if p]
    if len(parts) >= 4 and parts[-2] == "_history":
        parts = parts[:-2]
    return parts[-1] if parts else None


def referenced_patient(reference: Any) -> str | None:
    """The Patient id a reference names ('Patient/123', an absolute URL ending in Patient/123,
    either with /_history/n); None when it names no Patient (a Group, nothing, junk)."""
    if isinstance(reference, dict):
        reference = reference.get("reference")
    if not isinstance(reference, str):
        return None
    parts = [p for p in reference.split("/") if p]
    if len(parts) >= 4 and parts[-2] == "_history":
        parts = parts[:-2]
    return parts[-1] if len(parts) >= 2 and parts[-2] == "Patient" else None


@dataclass(frozen=True)
class Quantity:
    value: float
    unit: str | None


def quantity(value: Any) -> Quantity | None:
    """A Quantity with a numeric value; the unit is the UCUM code when given, else the display
    unit."""
    if not isinstance(value, dict):
        return None
    number = value.get("value")
    if isinstance(number, bool) or not isinstance(number, (int, float)):
        return None
    unit = _str(value.get("code")) or _str(value.get("unit"))
    return Quantity(float(number), unit)


def effective_datetime(resource: dict) -> datetime | None:
    """When an observation or event happened: effective[x], else issued."""
    for key in ("effectiveDateTime", "effectiveInstant", "occurrenceDateTime", "performedDateTime"):
        parsed = parse_datetime(resource.get(key))
        if parsed:
            return parsed
    for key in ("effectivePeriod", "performedPeriod", "occurrencePeriod"):
        period = resource.get(key)
        if isinstance(period, dict):
            parsed = parse_datetime(period.get("start")) or parse_datetime(period.get("end"))
            if parsed:
                return parsed
    return parse_datetime(resource.get("issued"))


def bundle_resources(bundle: Any) -> list[dict]:
    """Resources of a Bundle (searchset, collection or anything else), skipping search outcome
    entries."""
    if not isinstance(bundle, dict):
        return []
    resources = []
    # `x.__class__ is dict` first: what orjson decodes, decided without a call (a long record has
    # thousands of entries); isinstance still takes a subclass of dict
    for entry in as_list(bundle.get("entry")):
        if entry.__class__ is not dict and not isinstance(entry, dict):
            continue
        resource = entry.get("resource")
        if resource.__class__ is not dict and not isinstance(resource, dict):
            continue
        if not isinstance(resource.get("resourceType"), str):
            continue
        search = entry.get("search")
        if search is not None and isinstance(search, dict) and search.get("mode") == "outcome":
            continue
        resources.append(resource)
    return resources


def format_number(value: float, digits: int = 1) -> str:
    """Show a clinical number without trailing zeros: 3.0 -> '3', 1.25 -> '1.3' (display only, never
    compared)."""
    text = f"{value:.{digits}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def status_of(resource: dict) -> str | None:
    """A resource's status code, None when absent or not a string (a list or object there must not
    break a lookup)."""
    value = resource.get("status")
    return value if isinstance(value, str) else None


def id_of(resource: dict) -> str | None:
    """The resource's id when it is a string (a hostile record may carry an object or a number
    there)."""
    value = resource.get("id")
    return value if isinstance(value, str) else None
