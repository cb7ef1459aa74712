"""The `bonecds` command: serve the CDS service under gunicorn, and load the scenario fixtures into
a FHIR server."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Any

from service import evaluate
from service.jsonlog import configure_logging


def cmd_serve(args: argparse.Namespace) -> int:
    from gunicorn.app.base import BaseApplication

    from service import create_app, reload_trusted_clients
    from service.config import Settings
    from service.startup import check_configuration

    settings = Settings.from_env()
    configure_logging(settings.log_level)
    check_configuration(
        settings
    )  # every setting, knowledge and trusted client, before the server listens
    apps: list[Any] = []

    def on_reload(_server: Any) -> None:
        """SIGHUP: the trusted-clients file is read again in the master; the new workers fork with
        it."""
        if apps:
            reload_trusted_clients(apps[0])

    class BonecdsServer(BaseApplication):
        def load_config(self) -> None:
            options = {
                "bind": f"{args.host}:{args.port}",
                "workers": args.workers,
                "worker_class": "gthread",
                "threads": args.threads,
                "preload_app": True,  # build knowledge, schemas and models once, before forking
                "timeout": 30,
                "keepalive": 5,
                "accesslog": None,
                "loglevel": settings.log_level.lower(),
                "on_reload": on_reload,
            }
            for key, value in options.items():
                self.cfg.set(key, value)

        def load(self) -> Any:
            apps[:] = [create_app(settings)]
            return apps[0]

    logging.getLogger("bonecds").info(
        "serving on http://%s:%d with %d workers", args.host, args.port, args.workers
    )
    BonecdsServer().run()
    return 0


def cmd_check_config(args: argparse.Namespace) -> int:
    """Run every start-up check without serving: one line per part, or the one-line problem and exit
    status 2."""
    from service.config import Settings
    from service.startup import check_configuration

    for line in check_configuration(Settings.from_env(), connect_database=not args.no_database):
        print(line)
    print("configuration OK")
    return 0


def cmd_load_fixtures(args: argparse.Namespace) -> int:
    from fixtures.load import main as load_main

    return load_main(args.rest, prog="bonecds load-fixtures")


def cmd_mint_token(args: argparse.Namespace) -> int:
    """Print a CDS client JWT signed with the development key (BONECDS_AUTH=dev trusts it), for
    curl."""
    from service.config import Settings
    from service.dev_keys import DEV_ISSUER, load_or_create_dev_key, mint_token

    settings = Settings.from_env()
    key = load_or_create_dev_key(args.key_file or settings.dev_key_path)
    base = (
        args.base_url
        or settings.public_base_url
        or f"http://127.0.0.1:{os.environ.get('BONECDS_PORT', '8099')}"
    ).rstrip("/")
    audience = args.aud or f"{base}/cds-services" + (f"/{args.service}" if args.service else "")
    print(mint_token(key.private_jwk, DEV_ISSUER, audience, lifetime_seconds=args.lifetime))
    return 0


def cmd_feedback_report(args: argparse.Namespace) -> int:
    """Override and acceptance rates per rule and per override reason, from the feedback store
    DATABASE_URL names."""
    from service.config import Settings
    from service.report import run

    return run(
        Settings.from_env(),
        as_json=args.json,
        chart=args.chart,
        since=args.since or "",
        out=sys.stdout,
        err=sys.stderr,
    )


def main(argv: list[str] | None = None) -> int:
    from service.config import ConfigError

    try:
        return _run(argv)
    except (
        ConfigError
    ) as error:  # one line naming the variable or file and the problem; no traceback
        print(f"bonecds: configuration error: {error}", file=sys.stderr)
        return 2


def _run(argv: list[str] | None) -> int:
    arguments = sys.argv[1:] if argv is None else argv
    if arguments[:1] == ["load-fixtures"]:
        # its options belong to the loader's own parser (argparse's REMAINDER cannot start with an
        # option, which made every `bonecds load-fixtures --fhir-base ...` exit 2)
        from fixtures.load import main as load_main

        return load_main(arguments[1:], prog="bonecds load-fixtures")
    parser = argparse.ArgumentParser(
        prog="bonecds", description="Bone-modifying agent CDS Hooks service"
    )
    parser.add_argument(
        "--version", action=VersionAction, help="print the software and knowledge versions"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the service under gunicorn")
    serve.add_argument("--host", default=os.environ.get("BONECDS_HOST", "127.0.0.1"))
    serve.add_argument("--port", type=int, default=_env_int("BONECDS_PORT", 8099))
    serve.add_argument("--workers", type=int, default=_env_int("BONECDS_WORKERS", 2))
    serve.add_argument("--threads", type=int, default=_env_int("BONECDS_THREADS", 8))
    serve.set_defaults(func=cmd_serve)
    check = sub.add_parser(
        "check-config",
        help=(
            "check every setting, the knowledge file, the trusted clients and the "
            "database, without serving (exit 2 on a problem)"
        ),
    )
    check.add_argument(
        "--no-database", action="store_true", help="do not try to connect to the database"
    )
    check.set_defaults(func=cmd_check_config)
    load = sub.add_parser(
        "load-fixtures",
        help="load the scenario patients into a FHIR server (see --help)",
        add_help=False,
    )
    load.add_argument("rest", nargs=argparse.REMAINDER)
    load.set_defaults(func=cmd_load_fixtures)
    evaluate.add_parser(sub)
    mint = sub.add_parser(
        "mint-token",
        aliases=["token"],
        help="print a development JWT for curl (the service must run with BONECDS_AUTH=dev)",
    )
    mint.add_argument(
        "--service", help="service id, e.g. bonecds-order-sign (default: the discovery endpoint)"
    )
    mint.add_argument("--aud", help="exact audience URL (overrides --base-url and --service)")
    mint.add_argument(
        "--base-url",
        help=(
            "the service's public base URL (default BONECDS_PUBLIC_BASE_URL or"
            " http://127.0.0.1:8099)"
        ),
    )
    mint.add_argument(
        "--lifetime", type=int, default=300, help="seconds until the token expires (default 300)"
    )
    mint.add_argument(
        "--key-file",
        help="development key file (default BONECDS_DEV_KEY_FILE or var/dev-client-key.json)",
    )
    mint.set_defaults(func=cmd_mint_token)
    from service.report import parse_since

    report = sub.add_parser(
        "feedback-report", help="override and acceptance rates per rule and override reason"
    )
    report.add_argument(
        "--json", action="store_true", help="print the report as JSON instead of a table"
    )
    report.add_argument(
        "--chart", metavar="PATH", help="also write an SVG bar chart of the rates to PATH"
    )
    report.add_argument(
        "--since",
        type=parse_since,
        metavar="ISO-DATE",
        help="only cards issued and feedback received at or after this UTC date or time",
    )
    report.set_defaults(func=cmd_feedback_report)
    args = parser.parse_args(argv)
    return args.func(args)


class VersionAction(argparse.Action):
    """--version: the knowledge file is loaded only when the version is asked for, not on every
    command."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: object) -> None:
        super().__init__(option_strings, dest, nargs=0, help=str(kwargs.get("help", "")))

    def __call__(self, parser: argparse.ArgumentParser, *_args: object) -> None:
        from hooks.knowledge import load_knowledge
        from service.version import software_version

        print(f"bonecds {software_version()} (knowledge {load_knowledge().version})")
        parser.exit()


def _env_int(name: str, default: int) -> int:
    from service.config import ConfigError

    raw = os.environ.get(name)
    if not raw:
        return default
    if not raw.isdigit() or int(raw) == 0:
        raise ConfigError(f"{name} must be a positive whole number, not {raw!r}")
    return int(raw)


if __name__ == "__main__":
    sys.exit(main())
