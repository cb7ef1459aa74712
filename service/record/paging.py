"""Reading FHIR search result pages: the next-page link, matches versus _include'd resources, and
the _count a query asks for."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

from hooks.fhir_read import as_list, bundle_resources


def next_link(bundle: dict[str, Any]) -> str | None:
    for link in bundle.get("link") or []:
        if (
            isinstance(link, dict)
            and link.get("relation") == "next"
            and isinstance(link.get("url"), str)
        ):
            return link["url"]
    return None


def matches_and_included(bundle: dict[str, Any]) -> tuple[list[dict], list[dict]]:
    """A searchset's resources: the matches, and those added by _include (search.mode "include")."""
    matches: list[dict] = []
    included: list[dict] = []
    for entry in as_list(bundle.get("entry")):
        resources = bundle_resources({"entry": [entry]})  # the same leniency as everywhere else
        search = entry.get("search") if isinstance(entry, dict) else None
        mode = search.get("mode") if isinstance(search, dict) else None
        (included if mode == "include" else matches).extend(resources)
    return matches, included


def count_of(query: str) -> int | None:
    """The _count a query asks for (None when it asks for none, or asks nonsense)."""
    values = parse_qs(urlsplit(query).query).get("_count") or [""]
    return int(values[0]) if values[0].isdigit() and int(values[0]) > 0 else None
