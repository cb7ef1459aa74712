"""The time budget of one hook call, shared by every FHIR read the call makes."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from contextvars import ContextVar

# The deadline (time.monotonic()) of the hook call being answered: every FHIR read of one call (a
# draft's Medication, the record, the Medications the record refers to) shares one budget instead of
# each taking a full one.
_CALL_DEADLINE: ContextVar[float | None] = ContextVar("bonecds_fhir_call_deadline", default=None)


@contextlib.contextmanager
def call_budget(seconds: float) -> Iterator[None]:
    """Within this block, FhirFetcher.fetch_all stops at `seconds` from now in total, however often
    it is called."""
    token = _CALL_DEADLINE.set(time.monotonic() + seconds)
    try:
        yield
    finally:
        _CALL_DEADLINE.reset(token)


def call_deadline() -> float | None:
    """The deadline (time.monotonic()) of the call_budget block this runs in; None outside one."""
    return _CALL_DEADLINE.get()
