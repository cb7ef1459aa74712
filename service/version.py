"""The software version (from the installed package metadata), shown by --version, logs, health and
metrics next to the knowledge version."""

from __future__ import annotations

from functools import cache
from importlib import metadata


@cache  # read from the installed package's metadata once per process (/readyz shows it)
def software_version() -> str:
    try:
        return metadata.version("bonecds")
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "0+unknown"
