"""The software version (from the installed package metadata), shown by --version, logs, health and
metrics next to the knowledge version."""

from __future__ import annotations

from importlib import metadata


def software_version() -> str:
    try:
        return metadata.version("bonecds")
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "0+unknown"
