"""The scenario patients as CDS Hooks requests a CDS client would POST, dated for a chosen day: for
`bonecds example`, `bonecds evaluate --scenario` and the preview page."""

from __future__ import annotations

import difflib
from datetime import UTC, date, datetime
from functools import lru_cache
from typing import Any

from fixtures.dates import FIXTURE_ANCHOR_DATE, days_between, shift_dates

# What the bundled FHIR test server (`make fhir`) requires; fixtures are loaded with it too.


class UnknownScenario(LookupError):
    """No scenario of that name; the message suggests the closest names."""


@lru_cache(maxsize=1)
def scenarios() -> dict[str, Any]:
    """Every scenario of the suite by name (built once: building them all takes a moment)."""
    from fixtures.scenarios import all_scenarios

    return {s.name: s for s in all_scenarios()}


def find(name: str) -> Any:
    """The scenario called name, or UnknownScenario naming the closest ones."""
    found = scenarios().get(name)
    if found is None:
        close = difflib.get_close_matches(name, list(scenarios()), n=5, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise UnknownScenario(f"no scenario {name!r}{hint} (`bonecds example --list` lists them)")
    return found


def clock_day(frozen_now: datetime | None) -> date:
    """The service clock's calendar day (UTC): BONECDS_NOW's day when the clock is frozen, else
    today."""
    return (frozen_now or datetime.now(UTC)).astimezone(UTC).date()


def scenario_request(
    name: str,
    day: date,
    *,
    fhir_server: str | None = None,
    fhir_token: str | None = None,
) -> tuple[str, dict[str, Any]]:
    """(service id, request) for a scenario with every date moved so the fixtures' anchor day is
    `day`.

    Without fhir_server the request carries the full prefetch, as built from the scenario's record;
    with it there is no prefetch and the service reads the patient from that server (loaded with
    `bonecds load-fixtures --rebase-dates`, or `make fhir`).
    """
    from fixtures.prefetch import scenario_request as build_request
    from fixtures.prefetch import transaction_resources

    found = find(name)
    hooks = _HookOf(found.hook)
    if fhir_server:
        body = build_request(
            hooks, found, resources=[], prefetch_keys=[], fhir_server=fhir_server, token=fhir_token
        )
    else:
        body = build_request(
            hooks, found, resources=transaction_resources(found.patient.transaction())
        )
    shift = days_between(FIXTURE_ANCHOR_DATE, day)
    return found.service_id, (shift_dates(body, shift) if shift else body)


class _HookOf:
    """What the request builder needs of a service: its hook (the scenario says which)."""

    def __init__(self, hook: str) -> None:
        self.hook = hook
