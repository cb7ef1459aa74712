"""Which FHIR servers the service may call: only base URLs allowed for the client, compared strictly
(no SSRF tricks)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class BaseUrl:
    scheme: str
    host: str
    port: int
    path: str

    def contains(self, other: BaseUrl) -> bool:
        """Same origin, and the other path is this path or below it (segment-wise: /fhir does not
        allow /fhir-evil)."""
        if (self.scheme, self.host, self.port) != (other.scheme, other.host, other.port):
            return False
        return other.path == self.path or other.path.startswith(self.path.rstrip("/") + "/")


def parse_base_url(url: str) -> BaseUrl | None:
    """An http(s) URL without credentials, query or fragment, normalised; None for anything else
    (file:, gopher:, ...)."""
    if "\\" in url or any(ord(c) < 33 or ord(c) == 127 for c in url):
        # whitespace, control characters and backslashes are parsed differently by different clients
        return None
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    if (
        parts.scheme.lower() not in DEFAULT_PORTS
        or not parts.hostname
        or parts.username
        or parts.password
    ):
        return None
    if parts.query or parts.fragment:
        return None
    scheme = parts.scheme.lower()
    return BaseUrl(
        scheme,
        parts.hostname.lower().rstrip("."),
        port or DEFAULT_PORTS[scheme],
        parts.path.rstrip("/") or "/",
    )


def is_loopback_host(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def fhir_server_refusal(
    fhir_server: str, allowed: tuple[str, ...], allow_loopback: bool
) -> str | None:
    """None when the service may call this fhirServer, else the reason (for the cards and the log;
    never the URL)."""
    target = parse_base_url(fhir_server)
    if target is None:
        return "the fhirServer URL is not a plain http(s) base URL"
    if allow_loopback and is_loopback_host(target.host):
        return None
    for entry in allowed:
        base = parse_base_url(entry)
        if base is not None and base.contains(target):
            return None
    return "the fhirServer is not on the allowlist for this client"
