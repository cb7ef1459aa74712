"""Instructions per answered request, counted by valgrind: a figure that does not move with the
machine's load, for comparing two versions of the code where timings vary by 20-30 %.

    .venv/bin/python scripts/count_instructions.py                     # typical, with-card, heavy
    .venv/bin/python scripts/count_instructions.py typical --requests 100
    .venv/bin/python scripts/count_instructions.py with-card --without suggestion-gate

Each body of `make bench` goes through the whole Flask app (test client, served logging and
metrics, the preloaded app frozen out of the garbage collector and its threshold as `bonecds serve`
sets them) in two runs under `valgrind --tool=cachegrind`: one of W warm-up requests, one of W + N;
the difference over N is the count per request. The floor endpoint (decode only) is counted the same
way. Needs valgrind (apt-get install valgrind); about 10 s per run, a heavy body about 30 s.

`--without PART[,PART...]` counts the service with parts of a call switched off (a measurement of
what each costs, never a way to run it): the call's log line, metrics, the request's JSON schemas,
the card ledger, the suggestion gate (each finding's suggestions kept as its rule wrote them, none
tried) and the FHIR validation of suggested resources.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SIGN = "/cds-services/bonecds-order-sign"
FLOOR = "/bench/floor"
REFS = re.compile(r"I\s+refs:\s+([\d,]+)")


def _without_call_log(app: Any) -> None:
    logging.getLogger("bonecds.calls").setLevel(logging.WARNING)


def _without_metrics(app: Any) -> None:
    app.extensions["bonecds"].metrics = None


def _without_request_schemas(app: Any) -> None:
    import service.calls

    service.calls.validate_against = lambda *args, **kwargs: None


def _without_card_ledger(app: Any) -> None:
    import service.calls

    service.calls._remember_cards = lambda *args, **kwargs: None


def _without_suggestion_gate(app: Any) -> None:
    from hooks.engine import OrderEvaluator

    OrderEvaluator.gate = lambda self, finding, order: finding  # type: ignore[method-assign]


def _without_suggestion_validation(app: Any) -> None:
    app.extensions["bonecds"].renderer.validator.validate = lambda resource: resource


# Parts of a call that --without switches off in the measured child (after the app is built).
PARTS: dict[str, Callable[[Any], None]] = {
    "call-log": _without_call_log,
    "metrics": _without_metrics,
    "request-schemas": _without_request_schemas,
    "card-ledger": _without_card_ledger,
    "suggestion-gate": _without_suggestion_gate,
    "suggestion-validation": _without_suggestion_validation,
}


def serve_requests(body: Path, path: str, count: int, without: list[str]) -> None:
    """The measured child: build the app as `bonecds serve` does, switch off the parts named in
    `without`, then answer `count` requests."""
    sys.path.insert(0, str(ROOT))
    os.environ.update(
        BONECDS_AUTH="off",
        BONECDS_BENCH_FLOOR="1",
        BONECDS_NOW="2026-10-15T10:00:00Z",
        DATABASE_URL=f"sqlite:///{tempfile.mkdtemp()}/count.sqlite3",
        PROMETHEUS_MULTIPROC_DIR=tempfile.mkdtemp(),
    )
    sys.stderr = open(os.devnull, "w")  # the child's log lines are not wanted
    from service import create_app
    from service.cli import settle_for_calls
    from service.jsonlog import configure_logging

    configure_logging("INFO")
    app = create_app()
    for part in without:
        PARTS[part](app)
    settle_for_calls()
    client = app.test_client()
    data = body.read_bytes()
    for _ in range(count):
        answer = client.post(path, data=data, headers={"Content-Type": "application/json"})
        if answer.status_code != 200:
            print(f"{path} answered {answer.status_code}", file=sys.__stderr__)
            raise SystemExit(1)


def _parts(given: list[str]) -> list[str]:
    """The --without list, each name checked against PARTS."""
    names = [name for text in given for name in text.split(",") if name]
    unknown = [name for name in names if name not in PARTS]
    if unknown:
        raise ValueError(f"unknown part {unknown[0]!r}; the parts are {', '.join(PARTS)}")
    return names


def instructions(body: Path, path: str, count: int, without: list[str]) -> int:
    """Instructions of one child process answering `count` requests, start-up included."""
    run = subprocess.run(  # noqa: S603 (fixed arguments: valgrind, this interpreter, this script)
        [
            "valgrind",
            "--tool=cachegrind",
            "--cache-sim=no",
            "--cachegrind-out-file=/dev/null",
            sys.executable,
            str(Path(__file__).resolve()),
            "--child",
            str(body),
            path,
            str(count),
            ",".join(without),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    found = REFS.search(run.stderr)
    if found is None:
        raise SystemExit("valgrind printed no instruction count")
    return int(found.group(1).replace(",", ""))


def per_request(body: Path, path: str, warm_up: int, requests: int, without: list[str]) -> int:
    total = instructions(body, path, warm_up + requests, without)
    return (total - instructions(body, path, warm_up, without)) // requests


def main(argv: list[str]) -> int:
    if argv[:1] == ["--child"]:
        serve_requests(Path(argv[1]), argv[2], int(argv[3]), _parts(argv[4:5]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bodies", nargs="?", default="typical,with-card,heavy")
    parser.add_argument("--requests", type=int, default=200, help="N (a tenth for heavy)")
    parser.add_argument(
        "--without",
        default="",
        help=f"parts of a call switched off in the service's count: {', '.join(PARTS)}",
    )
    args = parser.parse_args(argv)
    try:
        without = _parts([args.without])
    except ValueError as error:
        parser.error(str(error))
    if shutil.which("valgrind") is None:
        print("valgrind is not installed (apt-get install valgrind)", file=sys.stderr)
        return 2
    sys.path.insert(0, str(ROOT / "scripts"))
    sys.path.insert(0, str(ROOT))
    import bench

    bodies = bench.build_bodies(Path(tempfile.mkdtemp()))
    if without:
        print(f"service without: {', '.join(without)}")
    print(f"{'body':12s} {'floor':>14s} {'service':>14s} {'floor/service':>14s}")
    for name in args.bodies.split(","):
        heavy = name == "heavy"
        requests = max(1, args.requests // 10) if heavy else args.requests
        warm_up = 5 if heavy else 20
        body = bodies[name]["path"]
        floor = per_request(body, FLOOR, warm_up, requests, [])
        service = per_request(body, SIGN, warm_up, requests, without)
        print(f"{name:12s} {floor:14,d} {service:14,d} {floor / service:14.2f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
