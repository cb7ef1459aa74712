"""The `bonecds` command: serve the CDS service under gunicorn, and load the scenario fixtures into
a FHIR server."""

from __future__ import annotations

import argparse
import gc
import logging
import os
import sys
from typing import Any

from service import client_keys, evaluate
from service.dev import example
from service.jsonlog import configure_logging

YOUNG_COLLECTION_THRESHOLD = 10_000  # allocations before a young garbage collection


def settle_for_calls() -> None:
    """The garbage collector as the workers answer calls, once the app is built.

    What the preloading master built lives as long as the workers: kept out of the collector's
    scans, so a collection in a worker neither walks it nor touches (copies) its pages. A call
    allocates a few thousand short-lived objects that reference counting frees when it ends; at the
    default threshold (700) a young collection ran about once a call and walked them while they
    were still alive. At YOUNG_COLLECTION_THRESHOLD a typical call ends before a collection starts
    (3 % fewer instructions a call; cyclic garbage waits a little longer).
    """
    gc.freeze()
    gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, 10, 10)


def cmd_serve(args: argparse.Namespace) -> int:
    from gunicorn.app.base import BaseApplication

    from service import create_app, reload_trusted_clients
    from service.config import Settings
    from service.serving import (
        ConnectionControl,
        ListeningWorkers,
        flush_store,
        gunicorn_logger_class,
        prepare_metrics_dir,
        worker_exited,
    )
    from service.startup import check_configuration

    settings = Settings.from_env()
    configure_logging(settings.log_level)
    # every setting, knowledge and trusted client, before the server listens
    check_configuration(settings)
    metrics_dir = prepare_metrics_dir(os.environ)
    client_keys.record_serving_address(settings, args.host, args.port)
    apps: list[Any] = []
    listening = ListeningWorkers(args.workers)
    connections = ConnectionControl(args.requests_per_connection)

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
                # each worker listens on its own SO_REUSEPORT socket: the kernel spreads new
                # connections over the workers, so keep-alive clients do not all stay on the one
                # worker that happened to accept first
                "reuse_port": True,
                # ... and a keep-alive connection is let go after so many requests, or when its
                # call was shed, so connections bunched on one worker do not stay there
                "pre_request": connections.pre_request,
                "post_request": connections.post_request,
                "accesslog": None,
                "loglevel": settings.log_level.lower(),
                "on_reload": on_reload,
                "post_worker_init": lambda _worker: listening.add(),
                "child_exit": lambda _server, worker: worker_exited(listening, worker),
                "worker_exit": lambda _server, _worker: flush_store(apps),
                "logger_class": gunicorn_logger_class(),
            }
            for key, value in options.items():
                self.cfg.set(key, value)

        def load(self) -> Any:
            apps[:] = [create_app(settings)]
            apps[0].extensions["bonecds"].workers = listening
            apps[0].extensions["bonecds"].close_client_connection = connections.close_after_answer
            apps[0].extensions["bonecds"].fetcher.prepare()
            settle_for_calls()
            return apps[0]

    logging.getLogger("bonecds").info(
        "serving on http://%s:%d with %d workers (metrics of all workers in %s)",
        args.host,
        args.port,
        args.workers,
        metrics_dir,
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
        status = _run(argv)
        sys.stdout.flush()  # here, not at exit, so a closed pipe is caught below
        return status
    except (
        ConfigError
    ) as error:  # one line naming the variable or file and the problem; no traceback
        print(f"bonecds: configuration error: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader went away (`bonecds token | head -c 10`): stop quietly, as cat does. Standard
        # output points at /dev/null so the interpreter's last flush does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


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
    serve = sub.add_parser(
        "serve",
        help="run the service under gunicorn",
        description=(
            "Run the CDS Hooks service under gunicorn. Every other setting comes from BONECDS_*"
            " variables and DATABASE_URL (README, Configuration); the configuration is checked"
            " before the server listens."
        ),
    )
    serve.add_argument(
        "--host",
        default=os.environ.get("BONECDS_HOST", "127.0.0.1"),
        help="address to listen on (BONECDS_HOST, default 127.0.0.1; 0.0.0.0 in a container)",
    )
    serve.add_argument(
        "--port",
        type=int,
        default=_env_int("BONECDS_PORT", 8099),
        help="port (BONECDS_PORT, default 8099)",
    )
    serve.add_argument(
        "--workers",
        type=_positive_int,
        default=_env_int("BONECDS_WORKERS", 2),
        help="worker processes, about one per core (BONECDS_WORKERS, default 2)",
    )
    serve.add_argument(
        "--threads",
        type=_positive_int,
        default=_env_int("BONECDS_THREADS", 8),
        help="threads per worker (BONECDS_THREADS, default 8)",
    )
    serve.add_argument(
        "--requests-per-connection",
        type=_positive_int,
        default=_env_int("BONECDS_REQUESTS_PER_CONNECTION", 1000),
        help=(
            "requests on one keep-alive connection before it is closed and the client reconnects"
            " (BONECDS_REQUESTS_PER_CONNECTION, default 1000)"
        ),
    )
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
    example.add_parser(sub)
    client_keys.add_parsers(sub)  # keygen, mint-token (token)
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


def _positive_int(raw: str) -> int:
    """A command-line count: a positive whole number (argparse says which flag is wrong)."""
    if not raw.isdigit() or int(raw) == 0:
        raise argparse.ArgumentTypeError(f"a positive whole number, not {raw!r}")
    return int(raw)


def _env_int(name: str, default: int) -> int:
    """The flag's default from the environment, held to the same rule as the flag itself."""
    from service.config import ConfigError

    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        return _positive_int(raw)
    except argparse.ArgumentTypeError:
        raise ConfigError(f"{name} must be a positive whole number, not {raw!r}") from None


if __name__ == "__main__":
    sys.exit(main())
