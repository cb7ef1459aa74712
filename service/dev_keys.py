"""Development mode: a locally generated client key the service trusts (BONECDS_AUTH=dev), and
CDS client tokens signed with a given key, for curl, the preview page and tests."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePrivateKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from service.auth import TrustedClient

DEV_ISSUER = "bonecds-dev"
DEV_KID = "bonecds-dev-1"


@dataclass
class DevKey:
    private_jwk: dict[str, Any]
    public_jwk: dict[str, Any] = field(init=False)

    def __post_init__(self) -> None:
        self.public_jwk = {k: v for k, v in self.private_jwk.items() if k != "d"}


def load_or_create_dev_key(path: str) -> DevKey:
    """The development client's ES384 key, generated on first use and kept (mode 600) so tokens
    survive restarts."""
    file = Path(path)
    if file.exists():
        return DevKey(json.loads(file.read_text()))
    private = ec.generate_private_key(ec.SECP384R1())
    jwk = json.loads(ECAlgorithm.to_jwk(private))
    jwk.update(kid=DEV_KID, alg="ES384", use="sig")
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text(json.dumps(jwk))
    file.chmod(0o600)
    return DevKey(jwk)


def dev_client(key: DevKey) -> TrustedClient:
    return TrustedClient(iss=DEV_ISSUER, jwks={"keys": [key.public_jwk]}, allow_loopback_fhir=True)


def mint_token(
    private_jwk: dict[str, Any],
    issuer: str,
    audience: str,
    lifetime_seconds: int = 300,
    extra_claims: dict[str, Any] | None = None,
    headers: dict[str, Any] | None = None,
    now: float | None = None,
) -> str:
    """A CDS client JWT signed with the given private JWK (ES384 or RS384 by key type)."""
    issued = int(now if now is not None else time.time())
    algorithm = "ES384" if private_jwk["kty"] == "EC" else "RS384"
    key = (ECAlgorithm if algorithm == "ES384" else RSAAlgorithm).from_jwk(json.dumps(private_jwk))
    if not isinstance(key, (EllipticCurvePrivateKey, RSAPrivateKey)):
        raise ValueError("mint_token needs a private JWK (with d)")
    claims = {
        "iss": issuer,
        "aud": audience,
        "iat": issued,
        "exp": issued + lifetime_seconds,
        "jti": str(uuid.uuid4()),
    }
    claims.update(extra_claims or {})
    return jwt.encode(
        claims,
        key,
        algorithm=algorithm,
        headers={"kid": private_jwk["kid"], "typ": "JWT", **(headers or {})},
    )
