"""`bonecds example NAME`: print a scenario's CDS Hooks request as a CDS client would POST it, dated
for today (or `--at` a day); `--list` names the scenarios."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date
from typing import Any


def add_parser(sub: Any) -> None:
    """The `example` subcommand and its options, on the `bonecds` subcommand parsers."""
    example = sub.add_parser(
        "example",
        help="print a scenario's CDS Hooks request (JSON, dates moved to today); --list names them",
        description=(
            "Print the CDS Hooks request (hook, hookInstance, context, prefetch) a CDS client would"
            " POST for a scenario patient, with every date moved so the fixtures' anchor day is"
            " today (the day of BONECDS_NOW when set). Pipe it into `bonecds evaluate -`, or POST"
            " it to /cds-services/<service> (the service id goes to standard error)."
        ),
    )
    example.add_argument("name", nargs="?", metavar="NAME", help="scenario name (see --list)")
    example.add_argument(
        "--list", action="store_true", help="list the scenario names with one-line descriptions"
    )
    example.add_argument(
        "--at",
        type=_day,
        metavar="YYYY-MM-DD",
        help="date the request for this day instead (the service's clock must read that day)",
    )
    example.add_argument(
        "--service-id",
        action="store_true",
        help="print only the id of the service the request is for, e.g. bonecds-order-sign",
    )
    example.add_argument(
        "--fhir-server",
        metavar="URL",
        help=(
            "no prefetch: name this FHIR server (holding the patients, e.g. `make fhir`'s"
            " http://127.0.0.1:8090/fhir) for the service to read the record from"
        ),
    )
    example.add_argument(
        "--fhir-token",
        metavar="TOKEN",
        help="with --fhir-server: the bearer token sent as fhirAuthorization",
    )
    example.set_defaults(func=cmd_example)


def cmd_example(args: argparse.Namespace) -> int:
    from service.config import Settings
    from service.dev.scenario_requests import (
        UnknownScenario,
        clock_day,
        find,
        scenario_request,
        scenarios,
    )

    if args.list:
        for name, scenario in scenarios().items():
            print(f"{name:<48} {scenario.hook:<13} {scenario.description}")
        return 0
    if not args.name:
        print("give a scenario name, or --list to see them", file=sys.stderr)
        return 2
    if args.service_id:
        try:
            print(find(args.name).service_id)
        except UnknownScenario as error:
            print(f"bonecds example: {error}", file=sys.stderr)
            return 2
        return 0
    day = args.at or clock_day(Settings.from_env().frozen_now)
    try:
        service_id, body = scenario_request(
            args.name, day, fhir_server=args.fhir_server, fhir_token=args.fhir_token
        )
    except UnknownScenario as error:
        print(f"bonecds example: {error}", file=sys.stderr)
        return 2
    print(f"service {service_id}, dated {day.isoformat()}", file=sys.stderr)
    print(json.dumps(body, indent=2, ensure_ascii=False))
    return 0


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a YYYY-MM-DD date: {text!r}") from None
