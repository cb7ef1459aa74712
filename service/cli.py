"""The `bonecds` command: serve the CDS service under gunicorn, and load the scenario fixtures into
a FHIR server."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from typing import Any


def configure_logging(level: str, log_format: str | None = None) -> None:
    """Text lines, or one JSON object per line when `log_format` (default: BONECDS_LOG_FORMAT) is
    "json"."""
    logging.basicConfig(
        level=getattr(logging, level, logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    if (log_format or os.environ.get("BONECDS_LOG_FORMAT", "text")).strip().lower() == "json":
        from service.jsonlog import JsonFormatter

        for handler in logging.getLogger().handlers:
            handler.setFormatter(JsonFormatter())
    # httpx logs full request URLs, which carry patient ids: keep it quiet.
    logging.getLogger("httpx").setLevel(logging.WARNING)


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
    from service.auth import DEV_ISSUER, load_or_create_dev_key, mint_token
    from service.config import Settings

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


def cmd_evaluate(args: argparse.Namespace) -> int:
    """The same path as an HTTP call (validation, prefetch or fhirServer, rules, cards), in-process,
    without a server."""
    import dataclasses
    import json

    from service import create_app
    from service.config import Settings

    if args.fhir_base:
        raw = json.dumps(request_from_fhir_server(args))
    elif args.request:
        raw = (
            sys.stdin.read() if args.request == "-" else open(args.request, encoding="utf-8").read()
        )
    else:
        print(
            "give a request file, or --fhir-base with --patient (and --draft for order hooks)",
            file=sys.stderr,
        )
        return 2
    try:
        hook = json.loads(raw).get("hook")
    except (ValueError, AttributeError):
        hook = None
    # Local evaluation trusts the file it is given; the FHIR allowlist and every other setting still
    # apply, and a FHIR
    # server named on the command line is allowed because the operator chose it.
    settings = Settings.from_env()
    settings = dataclasses.replace(
        settings,
        auth="off",
        fhir_allowlist=settings.fhir_allowlist
        + ((args.fhir_base.rstrip("/"),) if args.fhir_base else ()),
    )
    configure_logging("WARNING")
    app = create_app(settings)
    services = app.extensions["bonecds"].services
    service_id = args.service or next((s.id for s in services.values() if s.hook == hook), None)
    if service_id is None:
        print(
            f"no service answers the hook {hook!r}; use --service with one of:"
            f" {', '.join(services)}",
            file=sys.stderr,
        )
        return 2
    status, answer = evaluate_request(app.extensions["bonecds"], services[service_id], raw)
    if args.json:
        print(json.dumps(answer, indent=2, ensure_ascii=False))
    else:
        print(render_cards_text(status, answer))
    return 0 if status == 200 else 1


def evaluate_request(runtime: Any, service: Any, raw: str) -> tuple[int, Any]:
    """The service's answer to a request text, through the same use case as HTTP
    (service.calls.handle_call), without a server or a test client; the issued-card ledger is left
    untouched (a local evaluation is not a clinical use)."""
    import json

    from service.calls import handle_call
    from service.outcomes import ApiError, operation_outcome
    from service.record.ssrf import fhir_server_refusal

    settings = runtime.settings
    try:
        body = json.loads(raw)
    except ValueError:
        return 400, operation_outcome(400, "Request body is not valid JSON.")
    try:
        result = handle_call(
            runtime,
            service,
            body,
            lambda url: fhir_server_refusal(url, settings.fhir_allowlist, settings.auth == "dev"),
            remember=False,
        )
    except ApiError as error:
        return error.status, operation_outcome(error.status, error.diagnostics, error.expression)
    return 200, result.answer


def request_from_fhir_server(args: argparse.Namespace) -> dict[str, Any]:
    """A hook request without prefetch for a patient on a FHIR server: the service reads the record
    itself."""
    import uuid

    context: dict[str, Any] = {"userId": args.user, "patientId": args.patient}
    if args.hook in ("order-sign", "order-select"):
        if not args.draft:
            raise SystemExit(
                f"--draft (a MedicationRequest or Bundle JSON file) is needed for {args.hook}"
            )
        draft = json.loads(open(args.draft, encoding="utf-8").read())
        bundle: dict[str, Any]
        bundle = (
            draft
            if draft.get("resourceType") == "Bundle"
            else {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": draft}]}
        )
        context["draftOrders"] = bundle
        if args.hook == "order-select":
            context["selections"] = [
                f"MedicationRequest/{e['resource']['id']}"
                for e in bundle.get("entry", [])
                if e.get("resource", {}).get("resourceType") == "MedicationRequest"
            ]
    body: dict[str, Any] = {
        "hook": args.hook,
        "hookInstance": str(uuid.uuid4()),
        "context": context,
        "fhirServer": args.fhir_base,
    }
    if args.token:
        body["fhirAuthorization"] = {
            "access_token": args.token,
            "token_type": "Bearer",
            "expires_in": 300,
            "scope": "patient/*.read",
            "subject": "bonecds-cli",
        }
    print(f"reading patient {args.patient} from {args.fhir_base} ...", file=sys.stderr, flush=True)
    return body


def render_cards_text(status: int, answer: Any) -> str:
    """Cards as a clinician would read them, in plain text: indicator, summary, detail,
    suggestions."""
    if status != 200:
        issue = (answer or {}).get("issue", [{}])[0]
        return f"HTTP {status}: {issue.get('diagnostics', 'error')}"
    cards = answer.get("cards", [])
    if not cards:
        return "No cards: nothing to say about this order."
    blocks = []
    for number, card in enumerate(cards, 1):
        lines = [
            f"[{card['indicator'].upper()}] {card['summary']}  ({card['source']['topic']['code']})",
            "",
        ]
        lines += [f"    {line}" if line else "" for line in card.get("detail", "").splitlines()]
        for suggestion in card.get("suggestions", []):
            marker = " (recommended)" if suggestion.get("isRecommended") else ""
            lines.append(f"  -> {suggestion['label']}{marker}")
        blocks.append(f"{number}. " + "\n".join(lines))
    return "\n\n".join(blocks)


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
    parser = argparse.ArgumentParser(
        prog="bonecds", description="Bone-modifying agent CDS Hooks service"
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
    evaluate = sub.add_parser(
        "evaluate", help="run the CDS logic on a CDS Hooks request file and print the cards"
    )
    evaluate.add_argument(
        "request", nargs="?", help="a CDS Hooks request (JSON file, or - for standard input)"
    )
    evaluate.add_argument(
        "--fhir-base", help="instead of a request file: read the patient from this FHIR server"
    )
    evaluate.add_argument("--patient", help="with --fhir-base: the patient id")
    evaluate.add_argument(
        "--draft", help="with --fhir-base: the draft order (MedicationRequest or Bundle JSON file)"
    )
    evaluate.add_argument(
        "--hook",
        default="order-sign",
        choices=["order-sign", "order-select", "patient-view"],
        help="with --fhir-base: the hook to call (default order-sign)",
    )
    evaluate.add_argument("--token", help="with --fhir-base: bearer token for the FHIR server")
    evaluate.add_argument(
        "--user", default="Practitioner/bonecds-cli", help="with --fhir-base: context.userId"
    )
    evaluate.add_argument(
        "--service", help="service id (default: the one whose hook the request names)"
    )
    evaluate.add_argument(
        "--json", action="store_true", help="print the service's JSON answer instead of text"
    )
    evaluate.set_defaults(func=cmd_evaluate)
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
