"""CDS client authentication (CDS Hooks 2.0 "Trusting CDS Clients"): signed JWTs from trusted
clients, no replays."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePrivateKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from service.config import ConfigError

log = logging.getLogger(__name__)

# Asymmetric algorithms recommended by the spec; `none` and every HMAC algorithm are refused.
ALLOWED_ALGORITHMS = ("ES384", "RS384")
KEY_TYPE_FOR_ALGORITHM = {"ES384": "EC", "RS384": "RSA"}
UNKNOWN_KID_REFETCH_SECONDS = 30
MAX_JWKS_BYTES = 256 * 1024


class AuthError(Exception):
    """Why a token was refused; logged (without the token), never sent to the client.

    `reason` is a short fixed word for the metric label; `seen` holds what the operator needs to
    match the EHR's configuration (audience expected and received, issuer, kid, algorithm): none
    of it is secret, and the token itself never is part of it.
    """

    def __init__(self, message: str, reason: str = "invalid", **seen: Any) -> None:
        super().__init__(message)
        self.reason = reason
        self.seen = {key: value for key, value in seen.items() if value is not None}

    def describe(self) -> str:
        """The message and what was seen, e.g. `audience mismatch: aud expected '...' received
        '...'; iss '...'; kid '...'`."""
        parts = [f"{key} {_shown(value)}" for key, value in self.seen.items()]
        return "; ".join([str(self), *parts])


def _shown(value: Any) -> str:
    """A claim value for the log: short, one line, quoted (a hostile token cannot forge lines)."""
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    text = text.replace("\n", " ").replace("\r", " ")
    return repr(text[:200] + ("..." if len(text) > 200 else ""))


@dataclass(frozen=True)
class TrustedClient:
    """One CDS client (EHR) the operator trusts: its issuer, where its keys are, and which FHIR
    servers it may name."""

    iss: str
    jku: tuple[str, ...] = ()
    jwks: dict[str, Any] | None = None
    fhir_servers: tuple[str, ...] = ()
    tenant: str | None = None
    allow_loopback_fhir: bool = False


@dataclass(frozen=True)
class AuthenticatedClient:
    iss: str
    tenant: str | None
    fhir_servers: tuple[str, ...]
    allow_loopback_fhir: bool = False


# PyJWT's refusals, by the label the refusal metric counts them under
PYJWT_REASONS = {
    "InvalidAudienceError": "audience",
    "InvalidIssuerError": "issuer",
    "ExpiredSignatureError": "expired",
    "ImmatureSignatureError": "time",
    "InvalidIssuedAtError": "time",
    "InvalidSignatureError": "signature",
    "MissingRequiredClaimError": "claims",
    "DecodeError": "malformed",
}
CLIENT_KEYS = frozenset({"iss", "jku", "jwks", "fhir_servers", "tenant"})
KEY_TYPES: dict[str, type[ECAlgorithm] | type[RSAAlgorithm]] = {
    "EC": ECAlgorithm,
    "RSA": RSAAlgorithm,
}
LOOPBACK_HTTP = (
    "http://127.0.0.1:",
    "http://127.0.0.1/",
    "http://localhost:",
    "http://localhost/",
    "http://[::1]:",
)


def load_clients(path: str) -> dict[str, TrustedClient]:
    """The trusted-clients file:
    {"clients": [{"iss", "jku": [...], "jwks": {...}, "fhir_servers": [...], "tenant"}]}.
    Every entry and every pinned key is checked here, at start-up, so a bad file never reaches a
    request.
    """
    where = f"BONECDS_CLIENTS_FILE {path}"
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        raise ConfigError(f"{where}: no such file") from None
    except OSError as error:
        raise ConfigError(
            f"{where}: cannot be read ({error.strerror or type(error).__name__})"
        ) from None
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as error:
        raise ConfigError(
            f"{where}: not valid JSON (line {error.lineno}, column {error.colno}: {error.msg})"
        ) from None
    if not isinstance(raw, dict) or not isinstance(raw.get("clients"), list):
        found = type(raw).__name__ if not isinstance(raw, dict) else f"keys {sorted(raw)}"
        raise ConfigError(
            f'{where}: expected an object {{"clients": [...]}} at the top level, found {found}'
        )
    clients: dict[str, TrustedClient] = {}
    for index, entry in enumerate(raw["clients"]):
        client = _client_entry(where, index, entry)
        if client.iss in clients:
            raise ConfigError(f"{where}: client {client.iss!r} is listed twice")
        clients[client.iss] = client
    return clients


def _client_entry(where: str, index: int, entry: Any) -> TrustedClient:
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: clients[{index}] is not an object")
    iss = entry.get("iss")
    if not isinstance(iss, str) or not iss:
        raise ConfigError(f"{where}: clients[{index}] has no iss")
    name = f"{where}: client {iss!r}"
    unknown = sorted(set(entry) - CLIENT_KEYS)
    if unknown:
        raise ConfigError(
            f"{name}: unknown field(s) {', '.join(unknown)} (allowed:"
            f" {', '.join(sorted(CLIENT_KEYS))})"
        )
    jku = entry.get("jku", [])
    if not isinstance(jku, list) or not all(
        isinstance(u, str) and u.startswith(("https://", *LOOPBACK_HTTP)) for u in jku
    ):
        raise ConfigError(f"{name}: jku must be a list of https:// URLs (http:// only on loopback)")
    jwks = entry.get("jwks")
    if not jku and jwks is None:
        raise ConfigError(f"{name}: needs a jku list or a pinned jwks")
    if jwks is not None:
        if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list) or not jwks["keys"]:
            raise ConfigError(f"{name}: the pinned jwks has no keys list")
        for position, key in enumerate(jwks["keys"]):
            _check_public_key(f"{name}: jwks key {position}", key)
    servers = entry.get("fhir_servers", [])
    if not isinstance(servers, list) or not all(
        isinstance(u, str) and u.startswith(("https://", "http://")) for u in servers
    ):
        raise ConfigError(f"{name}: fhir_servers must be a list of http(s) base URLs")
    tenant = entry.get("tenant")
    if tenant is not None and not isinstance(tenant, str):
        raise ConfigError(f"{name}: tenant must be a string")
    return TrustedClient(
        iss=iss,
        jku=tuple(jku),
        jwks=jwks,
        fhir_servers=tuple(u.rstrip("/") for u in servers),
        tenant=tenant,
    )


def _check_public_key(name: str, key: Any) -> None:
    """A pinned key must be a usable public JWK of an accepted type, with a kid (tokens name their
    key by kid)."""
    if not isinstance(key, dict):
        raise ConfigError(f"{name} is not an object")
    kid = key.get("kid")
    if not isinstance(kid, str) or not kid:
        raise ConfigError(f"{name} has no kid")
    name = f"{name} (kid {kid!r})"
    if key.get("kty") not in KEY_TYPES:
        raise ConfigError(f"{name}: kty must be EC or RSA, not {key.get('kty')!r}")
    if key.get("alg") not in (None, *ALLOWED_ALGORITHMS):
        raise ConfigError(
            f"{name}: alg must be one of {', '.join(ALLOWED_ALGORITHMS)}, not {key.get('alg')!r}"
        )
    if "d" in key:
        raise ConfigError(f"{name} holds private key material (d): pin the public key only")
    try:
        KEY_TYPES[key["kty"]].from_jwk(json.dumps(key))
    except (jwt.PyJWTError, ValueError, KeyError, TypeError) as error:
        raise ConfigError(
            f"{name} is not a valid {key['kty']} public key ({type(error).__name__}: "
            f"{str(error).splitlines()[0] if str(error) else 'missing or malformed parameters'})"
        ) from None


class JwksCache:
    """JWK Sets fetched from allowed jku URLs: cached for a while, fetched again (at most every 30
    s) for an unknown kid."""

    def __init__(
        self,
        timeout_seconds: float,
        cache_seconds: float,
        transport: httpx.BaseTransport | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.timeout_seconds = timeout_seconds
        self.cache_seconds = cache_seconds
        self._transport = transport
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[float, dict[str, Any]]] = {}

    def keys(self, url: str, kid: str) -> dict[str, Any] | None:
        """The JWK with this kid from the set at url, or None."""
        now = self._monotonic()
        with self._lock:
            cached = self._cache.get(url)
        if cached and now - cached[0] < self.cache_seconds:
            key = _find_key(cached[1], kid)
            if key is not None or now - cached[0] < UNKNOWN_KID_REFETCH_SECONDS:
                return key
        fetched = self._fetch(url)
        with self._lock:
            self._cache[url] = (now, fetched)
        return _find_key(fetched, kid)

    def _fetch(self, url: str) -> dict[str, Any]:
        try:
            with httpx.Client(
                transport=self._transport, timeout=self.timeout_seconds, follow_redirects=False
            ) as http:
                response = http.get(url, headers={"Accept": "application/json"})
        except httpx.HTTPError as error:
            raise AuthError(
                f"JWKS could not be fetched ({type(error).__name__})", "jwks", jku=url
            ) from None
        if response.status_code != 200 or len(response.content) > MAX_JWKS_BYTES:
            raise AuthError(
                f"JWKS could not be fetched (HTTP {response.status_code})", "jwks", jku=url
            )
        try:
            document = response.json()
        except ValueError:
            raise AuthError("JWKS is not JSON", "jwks", jku=url) from None
        if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
            raise AuthError("JWKS has no keys list", "jwks", jku=url)
        return document


def _find_key(jwks: dict[str, Any], kid: str) -> dict[str, Any] | None:
    return next(
        (k for k in jwks.get("keys", []) if isinstance(k, dict) and k.get("kid") == kid), None
    )


class Authenticator:
    """Verifies the bearer JWT of one request against the trusted clients; `claim_jti` refuses a
    replayed jti."""

    def __init__(
        self,
        clients: dict[str, TrustedClient],
        jwks: JwksCache,
        claim_jti: Callable[[str, str, float], bool],
        leeway_seconds: int,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.clients = clients
        self.jwks = jwks
        self.claim_jti = claim_jti
        self.leeway = leeway_seconds
        self.now = now

    def authenticate(self, authorization: str | None, audience: str) -> AuthenticatedClient:
        if not authorization or not authorization.startswith("Bearer "):
            raise AuthError("no bearer token", "no-token")
        token = authorization[len("Bearer ") :].strip()
        try:
            # header and claims from one reading of the token (the verified decode is the other)
            parts = jwt.decode_complete(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise AuthError("malformed token", "malformed") from None
        header, unverified = parts["header"], parts["payload"]
        algorithm = header.get("alg")
        kid = header.get("kid")
        issuer = unverified.get("iss")
        seen = {"iss": issuer, "kid": kid}
        try:
            return self._verify(token, header, unverified, audience)
        except AuthError as refused:
            refused.seen = {**seen, "alg": algorithm, **refused.seen}
            if refused.reason == "audience":
                refused.seen = {
                    "aud expected": audience,
                    "received": unverified.get("aud"),
                    **refused.seen,
                }
            raise

    def _verify(
        self, token: str, header: dict[str, Any], unverified: dict[str, Any], audience: str
    ) -> AuthenticatedClient:
        algorithm = header.get("alg")
        if algorithm not in ALLOWED_ALGORITHMS:
            raise AuthError("algorithm not accepted", "algorithm")
        if header.get("typ") not in (None, "JWT", "jwt"):
            raise AuthError("typ is not JWT", "malformed", typ=header.get("typ"))
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise AuthError("no kid", "no-kid")
        issuer = unverified.get("iss")
        client = self.clients.get(issuer) if isinstance(issuer, str) else None
        if client is None:
            raise AuthError("issuer not trusted", "issuer")
        jwk = self._key(client, header, kid)
        if (
            jwk.get("alg") not in (None, algorithm)
            or jwk.get("kty") != KEY_TYPE_FOR_ALGORITHM[algorithm]
        ):
            raise AuthError("key does not match the algorithm", "key")
        key = (ECAlgorithm if algorithm.startswith("ES") else RSAAlgorithm).from_jwk(
            json.dumps(jwk)
        )
        if isinstance(key, (EllipticCurvePrivateKey, RSAPrivateKey)):
            # A JWK with "d" (pinned keys never have one; a fetched JWKS might): verify with its
            # public half, as PyJWT does itself for an EC private key.
            key = key.public_key()
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                audience=audience,
                issuer=client.iss,
                leeway=self.leeway,
                options={"require": ["iss", "aud", "exp", "iat", "jti"]},
            )
        except jwt.PyJWTError as error:
            reason = PYJWT_REASONS.get(type(error).__name__, "invalid")
            raise AuthError(f"token refused ({type(error).__name__})", reason) from None
        if not isinstance(claims["iat"], (int, float)) or claims["iat"] > self.now() + self.leeway:
            raise AuthError("iat in the future", "time")
        if client.tenant is not None and claims.get("tenant") != client.tenant:
            raise AuthError(
                "tenant not trusted", "tenant", tenant=claims.get("tenant"), expected=client.tenant
            )
        if not isinstance(claims["jti"], str) or not claims["jti"]:
            raise AuthError("no jti", "claims")
        if not self.claim_jti(client.iss, claims["jti"], float(claims["exp"]) + self.leeway):
            raise AuthError("jti replayed", "replay")
        return AuthenticatedClient(
            client.iss, claims.get("tenant"), client.fhir_servers, client.allow_loopback_fhir
        )

    def _key(self, client: TrustedClient, header: dict[str, Any], kid: str) -> dict[str, Any]:
        """A pinned key with this kid wins, with or without a jku header, and nothing is fetched; a
        jku is fetched only when it is allowed for the issuer and the kid is not pinned."""
        pinned = _find_key(client.jwks, kid) if client.jwks is not None else None
        if pinned is not None:
            return pinned
        jku = header.get("jku")
        if jku is not None:
            if jku not in client.jku:
                raise AuthError(
                    "jku not allowed for this issuer"
                    if client.jku or client.jwks is None
                    else "unknown kid (not in the pinned keys; jku not allowed for this issuer)",
                    "jku" if client.jku or client.jwks is None else "unknown-kid",
                    jku=jku,
                )
            key = self.jwks.keys(jku, kid)
        elif len(client.jku) == 1:
            key = self.jwks.keys(client.jku[0], kid)  # the client's one registered JWKS URL
        elif client.jwks is not None:
            key = None
        else:
            raise AuthError("no jku and no pinned keys", "key")
        if key is None:
            raise AuthError("unknown kid", "unknown-kid")
        return key

    def replace_clients(self, clients: dict[str, TrustedClient]) -> None:
        """Trust a new set of clients (a reloaded trusted-clients file); requests in flight keep the
        old set."""
        self.clients = clients
