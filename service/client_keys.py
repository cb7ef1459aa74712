"""`bonecds keygen` and `bonecds mint-token`: a key pair, JWKS and trusted-clients entry for one's
own EHR, and tokens signed as that EHR or as the development client, for the address the service
really listens on."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

# Written by `bonecds serve` next to the development key: where the service listens, so a token
# minted afterwards names the right audience (`make run PORT=8140`, then `bonecds token`).
SERVING_FILE = "dev-service.json"


def add_parsers(sub: Any) -> None:
    keygen = sub.add_parser(
        "keygen",
        help="a signing key pair for your EHR: private JWK, public JWKS, trusted-clients entry",
        description=(
            "Writes PREFIX-private.json (mode 600; keep it with the EHR), PREFIX-jwks.json"
            " (publish it, or pin it) and PREFIX-client.json (a trusted-clients file naming the"
            " issuer and the pinned public key: set BONECDS_CLIENTS_FILE to it, or merge its entry"
            " into yours)."
        ),
    )
    keygen.add_argument("--iss", required=True, help="your EHR's issuer, exactly as in its tokens")
    keygen.add_argument("--alg", choices=("ES384", "RS384"), default="ES384")
    keygen.add_argument("--kid", default="ehr-key-1", help="key id (default ehr-key-1)")
    keygen.add_argument(
        "--fhir-server",
        action="append",
        default=[],
        metavar="URL",
        help="a FHIR base URL this EHR may name as fhirServer (repeatable)",
    )
    keygen.add_argument(
        "--out", default="ehr-key", metavar="PREFIX", help="file name prefix (default ehr-key)"
    )
    keygen.set_defaults(func=cmd_keygen)

    mint = sub.add_parser(
        "mint-token",
        aliases=["token"],
        help="print a CDS client JWT for curl (development key, or your own with --iss --key-file)",
    )
    mint.add_argument(
        "--service", help="service id, e.g. bonecds-order-sign (default: the discovery endpoint)"
    )
    mint.add_argument("--aud", help="exact audience URL (overrides --base-url and --service)")
    mint.add_argument(
        "--base-url",
        help=(
            "the service's public base URL (default: BONECDS_PUBLIC_BASE_URL, else the address the"
            " local `bonecds serve` listens on, else http://127.0.0.1:$BONECDS_PORT or :8099)"
        ),
    )
    mint.add_argument(
        "--lifetime", type=int, default=300, help="seconds until the token expires (default 300)"
    )
    mint.add_argument(
        "--key-file",
        help=(
            "private JWK to sign with (default: the development key, BONECDS_DEV_KEY_FILE or"
            " var/dev-client-key.json)"
        ),
    )
    mint.add_argument(
        "--iss", help="issuer claim (default: the development issuer; with your own --key-file)"
    )
    mint.add_argument("--tenant", help="tenant claim, when the trusted-clients entry names one")
    mint.set_defaults(func=cmd_mint_token)


def cmd_keygen(args: argparse.Namespace) -> int:
    private_jwk = new_private_jwk(args.alg, args.kid)
    public_jwk = {k: v for k, v in private_jwk.items() if k not in PRIVATE_PARTS}
    prefix = Path(args.out)
    private_path = prefix.with_name(prefix.name + "-private.json")
    jwks_path = prefix.with_name(prefix.name + "-jwks.json")
    client_path = prefix.with_name(prefix.name + "-client.json")
    for path in (private_path, jwks_path, client_path):
        if path.exists():
            print(f"bonecds keygen: {path} exists; not overwritten", file=sys.stderr)
            return 2
    private_path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        json.dump(private_jwk, handle)
    jwks_path.write_text(json.dumps({"keys": [public_jwk]}, indent=2) + "\n")
    entry: dict[str, Any] = {"iss": args.iss, "jwks": {"keys": [public_jwk]}}
    if args.fhir_server:
        entry["fhir_servers"] = args.fhir_server
    client_path.write_text(json.dumps({"clients": [entry]}, indent=2) + "\n")
    print(f"private key (keep secret, mode 600): {private_path}")
    print(f"public JWKS (publish at your jku URL, or keep pinned): {jwks_path}")
    print(f"trusted-clients file: {client_path}")
    print(
        "next: BONECDS_AUTH=on BONECDS_CLIENTS_FILE="
        f"{client_path} bonecds serve; then bonecds mint-token --iss {args.iss}"
        f" --key-file {private_path} --service bonecds-order-sign"
    )
    return 0


PRIVATE_PARTS = frozenset({"d", "p", "q", "dp", "dq", "qi"})


def new_private_jwk(algorithm: str, kid: str) -> dict[str, Any]:
    if algorithm == "ES384":
        jwk = json.loads(ECAlgorithm.to_jwk(ec.generate_private_key(ec.SECP384R1())))
    else:
        key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
        jwk = json.loads(RSAAlgorithm.to_jwk(key))
    jwk.update(kid=kid, alg=algorithm, use="sig")
    return jwk


def cmd_mint_token(args: argparse.Namespace) -> int:
    from service.config import Settings
    from service.dev_keys import DEV_ISSUER, load_or_create_dev_key, mint_token

    settings = Settings.from_env()
    if args.iss and not args.key_file:
        print("bonecds mint-token: --iss needs the issuer's own --key-file", file=sys.stderr)
        return 2
    if args.key_file and args.iss:
        try:
            private_jwk = json.loads(Path(args.key_file).read_text())
        except (OSError, ValueError) as error:
            print(f"bonecds mint-token: {args.key_file}: {error}", file=sys.stderr)
            return 2
        if "d" not in private_jwk or "kid" not in private_jwk:
            print(
                f"bonecds mint-token: {args.key_file} is not a private JWK with a kid",
                file=sys.stderr,
            )
            return 2
        issuer = args.iss
    else:
        private_jwk = load_or_create_dev_key(args.key_file or settings.dev_key_path).private_jwk
        issuer = DEV_ISSUER
    base, where = service_base_url(args.base_url, settings)
    audience = args.aud or f"{base}/cds-services" + (f"/{args.service}" if args.service else "")
    if not args.aud:
        print(f"bonecds mint-token: audience {audience} ({where})", file=sys.stderr)
    extra = {"tenant": args.tenant} if args.tenant else None
    print(mint_token(private_jwk, issuer, audience, args.lifetime, extra_claims=extra))
    return 0


def service_base_url(explicit: str | None, settings: Any) -> tuple[str, str]:
    """The base URL tokens are minted for, and where it came from (said on stderr)."""
    if explicit:
        return explicit.rstrip("/"), "--base-url"
    if settings.public_base_url:
        return settings.public_base_url.rstrip("/"), "BONECDS_PUBLIC_BASE_URL"
    serving = Path(settings.dev_key_path).with_name(SERVING_FILE)
    try:
        recorded = json.loads(serving.read_text())["base_url"]
        return str(recorded).rstrip("/"), f"where the local service listens, from {serving}"
    except (OSError, ValueError, KeyError, TypeError):
        pass
    port = os.environ.get("BONECDS_PORT", "8099")
    return f"http://127.0.0.1:{port}", "default address; pass --base-url if it listens elsewhere"


def record_serving_address(settings: Any, host: str, port: int) -> None:
    """Remember where the development service listens (next to its key) for `bonecds token`."""
    if settings.auth != "dev":
        return
    shown = "127.0.0.1" if host in ("0.0.0.0", "", "::") else host  # noqa: S104 (a comparison)
    path = Path(settings.dev_key_path).with_name(SERVING_FILE)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"base_url": f"http://{shown}:{port}"}) + "\n")
    except OSError:
        pass  # a read-only key directory: `bonecds token` falls back to its default and says so
