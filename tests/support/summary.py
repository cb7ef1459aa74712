"""Lines that test modules add to pytest's terminal summary (counts the closing notes quote:
examples, cases, 5xx)."""

from __future__ import annotations

from collections.abc import Callable

SUMMARY_LINES: dict[str, Callable[[], str]] = {}


def add_summary_line(name: str, line: Callable[[], str]) -> None:
    SUMMARY_LINES[name] = line
