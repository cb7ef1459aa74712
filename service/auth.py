"""CDS client authentication (CDS Hooks 2.0 "Trusting CDS Clients"): signed JWTs from trusted clients, no replays."""
from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import httpx
import jwt
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

log = logging.getLogger(__name__)

# Asymmetric algorithms recommended by the spec; `none` and every HMAC algorithm are refused.
ALLOWED_ALGORITHMS = ("ES384", "RS384")
KEY_TYPE_FOR_ALGORITHM = {"ES384": "EC", "RS384": "RSA"}
UNKNOWN_KID_REFETCH_SECONDS = 30
MAX_JWKS_BYTES = 256 * 1024
DEV_ISSUER = "bonecds-dev"
DEV_KID = "bonecds-dev-1"


class AuthError(Exception):
    """Why a token was refused; logged (without the token), never sent to the client."""


@dataclass(frozen=True)
class TrustedClient:
    """One CDS client (EHR) the operator trusts: its issuer, where its keys are, and which FHIR servers it may name."""
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


def load_clients(path: str) -> dict[str, TrustedClient]:
    """The trusted-clients file: {"clients": [{"iss", "jku": [...], "jwks": {...}, "fhir_servers": [...], "tenant"}]}."""
    raw = json.loads(Path(path).read_text())
    clients: dict[str, TrustedClient] = {}
    for entry in raw.get("clients", []):
        if not isinstance(entry.get("iss"), str) or not (entry.get("jku") or entry.get("jwks")):
            raise ValueError(f"{path}: every client needs an iss and a jku list or a pinned jwks")
        jwks = entry.get("jwks")
        if jwks is not None and not isinstance(jwks.get("keys"), list):
            raise ValueError(f"{path}: the jwks of {entry['iss']} has no keys list")
        clients[entry["iss"]] = TrustedClient(
            iss=entry["iss"], jku=tuple(entry.get("jku", [])), jwks=jwks,
            fhir_servers=tuple(u.rstrip("/") for u in entry.get("fhir_servers", [])), tenant=entry.get("tenant"))
    return clients


class JwksCache:
    """JWK Sets fetched from allowed jku URLs: cached for a while, fetched again (at most every 30 s) for an unknown kid."""

    def __init__(self, timeout_seconds: float, cache_seconds: float, transport: httpx.BaseTransport | None = None,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
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
            with httpx.Client(transport=self._transport, timeout=self.timeout_seconds, follow_redirects=False) as http:
                response = http.get(url, headers={"Accept": "application/json"})
        except httpx.HTTPError as error:
            raise AuthError(f"JWKS could not be fetched ({type(error).__name__})") from None
        if response.status_code != 200 or len(response.content) > MAX_JWKS_BYTES:
            raise AuthError(f"JWKS could not be fetched (HTTP {response.status_code})")
        try:
            document = response.json()
        except ValueError:
            raise AuthError("JWKS is not JSON") from None
        if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
            raise AuthError("JWKS has no keys list")
        return document


def _find_key(jwks: dict[str, Any], kid: str) -> dict[str, Any] | None:
    return next((k for k in jwks.get("keys", []) if isinstance(k, dict) and k.get("kid") == kid), None)


class Authenticator:
    """Verifies the bearer JWT of one request against the trusted clients; `claim_jti` refuses a replayed jti."""

    def __init__(self, clients: dict[str, TrustedClient], jwks: JwksCache, claim_jti: Callable[[str, str, float], bool],
                 leeway_seconds: int, now: Callable[[], float] = time.time) -> None:
        self.clients = clients
        self.jwks = jwks
        self.claim_jti = claim_jti
        self.leeway = leeway_seconds
        self.now = now

    def authenticate(self, authorization: str | None, audience: str) -> AuthenticatedClient:
        if not authorization or not authorization.startswith("Bearer "):
            raise AuthError("no bearer token")
        token = authorization[len("Bearer "):].strip()
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise AuthError("malformed token") from None
        algorithm = header.get("alg")
        if algorithm not in ALLOWED_ALGORITHMS:
            raise AuthError(f"algorithm {algorithm!r} not accepted")
        if header.get("typ") not in (None, "JWT", "jwt"):
            raise AuthError("typ is not JWT")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise AuthError("no kid")
        client = self.clients.get(unverified.get("iss")) if isinstance(unverified.get("iss"), str) else None
        if client is None:
            raise AuthError("issuer not trusted")
        jwk = self._key(client, header, kid)
        if jwk.get("alg") not in (None, algorithm) or jwk.get("kty") != KEY_TYPE_FOR_ALGORITHM[algorithm]:
            raise AuthError("key does not match the algorithm")
        key = (ECAlgorithm if algorithm.startswith("ES") else RSAAlgorithm).from_jwk(json.dumps(jwk))
        try:
            claims = jwt.decode(token, key, algorithms=[algorithm], audience=audience, issuer=client.iss,
                                leeway=self.leeway, options={"require": ["iss", "aud", "exp", "iat", "jti"]})
        except jwt.PyJWTError as error:
            raise AuthError(f"token refused ({type(error).__name__})") from None
        if not isinstance(claims["iat"], (int, float)) or claims["iat"] > self.now() + self.leeway:
            raise AuthError("iat in the future")
        if client.tenant is not None and claims.get("tenant") != client.tenant:
            raise AuthError("tenant not trusted")
        if not isinstance(claims["jti"], str) or not claims["jti"]:
            raise AuthError("no jti")
        if not self.claim_jti(client.iss, claims["jti"], float(claims["exp"]) + self.leeway):
            raise AuthError("jti replayed")
        return AuthenticatedClient(client.iss, claims.get("tenant"), client.fhir_servers, client.allow_loopback_fhir)

    def _key(self, client: TrustedClient, header: dict[str, Any], kid: str) -> dict[str, Any]:
        jku = header.get("jku")
        if jku is not None:
            if jku not in client.jku:
                raise AuthError("jku not allowed for this issuer")
            key = self.jwks.keys(jku, kid)
        elif client.jwks is not None:
            key = _find_key(client.jwks, kid)
        elif len(client.jku) == 1:
            key = self.jwks.keys(client.jku[0], kid)  # the client's one registered JWKS URL
        else:
            raise AuthError("no jku and no pinned keys")
        if key is None:
            raise AuthError("unknown kid")
        return key


# --- development mode: a locally generated key the service trusts, and tokens for curl ---------------------------

@dataclass
class DevKey:
    private_jwk: dict[str, Any]
    public_jwk: dict[str, Any] = field(init=False)

    def __post_init__(self) -> None:
        self.public_jwk = {k: v for k, v in self.private_jwk.items() if k != "d"}


def load_or_create_dev_key(path: str) -> DevKey:
    """The development client's ES384 key, generated on first use and kept (mode 600) so tokens survive restarts."""
    file = Path(path)
    if file.exists():
        return DevKey(json.loads(file.read_text()))
    from cryptography.hazmat.primitives.asymmetric import ec
    private = ec.generate_private_key(ec.SECP384R1())
    jwk = json.loads(ECAlgorithm.to_jwk(private))
    jwk.update(kid=DEV_KID, alg="ES384", use="sig")
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text(json.dumps(jwk))
    file.chmod(0o600)
    return DevKey(jwk)


def dev_client(key: DevKey) -> TrustedClient:
    return TrustedClient(iss=DEV_ISSUER, jwks={"keys": [key.public_jwk]}, allow_loopback_fhir=True)


def mint_token(private_jwk: dict[str, Any], issuer: str, audience: str, lifetime_seconds: int = 300,
               extra_claims: dict[str, Any] | None = None, headers: dict[str, Any] | None = None,
               now: float | None = None) -> str:
    """A CDS client JWT signed with the given private JWK (ES384 or RS384 by key type)."""
    import uuid
    issued = int(now if now is not None else time.time())
    algorithm = "ES384" if private_jwk["kty"] == "EC" else "RS384"
    key = (ECAlgorithm if algorithm == "ES384" else RSAAlgorithm).from_jwk(json.dumps(private_jwk))
    claims = {"iss": issuer, "aud": audience, "iat": issued, "exp": issued + lifetime_seconds, "jti": str(uuid.uuid4())}
    claims.update(extra_claims or {})
    return jwt.encode(claims, key, algorithm=algorithm,
                      headers={"kid": private_jwk["kid"], "typ": "JWT", **(headers or {})})
