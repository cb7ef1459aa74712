"""`bonecds evaluate`: the CDS logic on one CDS Hooks request (a file, a scenario, or a patient on a
FHIR server), in-process and without a server, with the cards printed as text or JSON; read-only
unless `--record`."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from service.jsonlog import configure_logging

if TYPE_CHECKING:
    from service.store.base import FeedbackReceipt, IssuedCard


def add_parser(sub: Any) -> None:
    """The `evaluate` subcommand and its options, on the `bonecds` subcommand parsers."""
    evaluate = sub.add_parser(
        "evaluate", help="run the CDS logic on a CDS Hooks request file and print the cards"
    )
    evaluate.add_argument(
        "request", nargs="?", help="a CDS Hooks request (JSON file, or - for standard input)"
    )
    evaluate.add_argument(
        "--scenario",
        metavar="NAME",
        help="instead of a request file: a scenario's request, dated for the clock's day"
        " (as `bonecds example NAME` prints it)",
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
    evaluate.add_argument(
        "--record",
        action="store_true",
        help=(
            "also write the issued cards into the feedback store DATABASE_URL names (by default"
            " nothing is written: a local evaluation is not a clinical use)"
        ),
    )
    evaluate.set_defaults(func=cmd_evaluate)


def cmd_evaluate(args: argparse.Namespace) -> int:
    """The same path as an HTTP call (validation, prefetch or fhirServer, rules, cards), in-process,
    without a server."""
    from service.config import Settings

    settings = Settings.from_env()
    if args.scenario:
        from service.dev.scenario_requests import UnknownScenario, clock_day, scenario_request

        try:
            _, body = scenario_request(args.scenario, clock_day(settings.frozen_now))
        except UnknownScenario as error:
            print(f"bonecds evaluate: {error}", file=sys.stderr)
            return 2
        raw = json.dumps(body)
    elif args.fhir_base:
        raw = json.dumps(request_from_fhir_server(args))
    elif args.request:
        raw = (
            sys.stdin.read() if args.request == "-" else open(args.request, encoding="utf-8").read()
        )
    else:
        print(
            "give a request file (- for standard input), --scenario NAME, or --fhir-base with"
            " --patient (and --draft for order hooks)",
            file=sys.stderr,
        )
        return 2
    try:
        hook = json.loads(raw).get("hook")
    except (ValueError, AttributeError):
        hook = None
    # Local evaluation trusts the request it is given, with authentication off; the FHIR allowlist
    # and every other setting still apply, and a FHIR server named on the command line is allowed
    # because the operator chose it.
    settings = dataclasses.replace(
        settings,
        auth="off",
        fhir_allowlist=settings.fhir_allowlist
        + ((args.fhir_base.rstrip("/"),) if args.fhir_base else ()),
    )
    app = _offline_app(settings, record=args.record)
    services = app.extensions["bonecds"].services
    service_id = args.service or next((s.id for s in services.values() if s.hook == hook), None)
    if service_id is None:
        print(
            f"no service answers the hook {hook!r}; use --service with one of:"
            f" {', '.join(services)}",
            file=sys.stderr,
        )
        return 2
    runtime = app.extensions["bonecds"]
    status, answer = evaluate_request(runtime, services[service_id], raw, record=args.record)
    if args.record and not runtime.store.flush():
        print(
            "bonecds evaluate: the issued cards could not be written to the store", file=sys.stderr
        )
    if args.json:
        print(json.dumps(answer, indent=2, ensure_ascii=False))
    else:
        print(render_cards_text(status, answer))
    return 0 if status == 200 else 1


def _offline_app(settings: Any, *, record: bool) -> Any:
    """The app for one local evaluation: no store unless record, and none of the server's start-up
    warnings (authentication off, the preview page), which say nothing about a local run."""
    import logging

    from service import create_app

    configure_logging("ERROR")
    try:
        app = create_app(settings, store=None if record else _NoStore())
    finally:
        configure_logging("WARNING")  # FHIR read problems of the evaluation itself still show
    if settings.frozen_now:
        logging.getLogger("bonecds").warning(
            "clock frozen at %s (BONECDS_NOW)", settings.frozen_now.isoformat()
        )
    return app


class _NoStore:
    """A feedback store that keeps nothing: `bonecds evaluate` without --record neither opens nor
    writes the database."""

    def claim_jti(self, issuer: str, jti: str, expires_at: float, now: float | None = None) -> bool:
        return True

    def record_cards(
        self, service_id: str, hook_instance: str, cards: Iterable[IssuedCard], issued_at: datetime
    ) -> None:
        raise AssertionError("a local evaluation records no cards without --record")

    def record_feedback(
        self, service_id: str, items: list[dict[str, Any]], received_at: datetime
    ) -> FeedbackReceipt:
        raise AssertionError("a local evaluation takes no feedback")

    def outcomes_by_rule(self) -> list[dict[str, Any]]:
        return []

    def feedback_rows(self) -> list[dict[str, Any]]:
        return []

    def issued_by_rule(self, since: str = "") -> dict[str, int]:
        return {}

    def check_ready(self) -> None:
        return None


def evaluate_request(
    runtime: Any, service: Any, raw: str, *, record: bool = False
) -> tuple[int, Any]:
    """The service's answer to a request text, through the same use case as HTTP
    (service.calls.handle_call), without a server or a test client; the issued-card ledger is left
    untouched unless record (a local evaluation is not a clinical use)."""
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
            # a loopback FHIR server is the operator's own (e.g. `make fhir`), as in dev mode
            lambda url: fhir_server_refusal(url, settings.fhir_allowlist, allow_loopback=True),
            remember=record,
        )
    except ApiError as error:
        return error.status, operation_outcome(error.status, error.diagnostics, error.expression)
    return 200, result.answer


def request_from_fhir_server(args: argparse.Namespace) -> dict[str, Any]:
    """A hook request without prefetch for a patient on a FHIR server: the service reads the record
    itself."""
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
