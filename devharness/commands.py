"""What each harness command does: serve, invoke, import, migrate; and the servers they run against."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import functions_framework

from devkit.servers import Servers, resolve_kind, start_servers
from devkit.servers.external import configured_urls
from shared import catalogue, schema
from shared.config import load_settings, mask_url
from shared.postgres import connect, is_connection_lost

from . import cloudrun_mode
from .app import build_app
from .dashboard import DashboardSetup
from .routes import discover
from .server import HarnessServer, harness_shape

ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("FACTS_DATA_DIR", ROOT / ".facts-data"))


@contextmanager
def running_servers(kind: str, quiet: bool = False, step_timeout_s: float = 10.0) -> Iterator[Servers]:
    """Servers of `kind`, with the functions' environment pointing at them and the schema current
    (each step of the migration within `step_timeout_s`)."""
    kind = resolve_kind(kind, urls_set=configured_urls() is not None)
    if not quiet:
        print(f"starting servers: {kind} ...", file=sys.stderr, flush=True)
    with start_servers(kind, DATA_DIR / kind, durable=True) as servers:
        os.environ.update(servers.environ())
        settings = load_settings()
        # Migrate here once, before any worker starts, so no request pays for it.
        applied = schema.migrate_database(settings.postgres, timeout_s=step_timeout_s)
        if not quiet:
            print(f"  {servers.description}", file=sys.stderr)
            print(f"  DATABASE_URL={mask_url(servers.database_url)}", file=sys.stderr)
            print(f"  REDIS_URL={mask_url(servers.redis_url)}", file=sys.stderr)
            if applied:
                print(f"  applied migrations: {', '.join(applied)}", file=sys.stderr)
        yield servers


def serve(args: argparse.Namespace) -> int:
    if args.like == "cloud-run":
        if args.workers is not None:
            raise SystemExit("--workers does not apply to --like cloud-run: the deploy's WORKERS is used")
        with running_servers(args.servers) as provided:
            return cloudrun_mode.serve(args, provided)
    # --reload restarts one worker; otherwise one unless --workers or WORKERS asks for more.
    shape = harness_shape(1 if args.reload else args.workers)
    # gunicorn's arbiter handles SIGINT/SIGTERM once it runs; before that, turn SIGTERM into a
    # clean exit too, so the servers started below are stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with running_servers(args.servers) as servers:
        os.environ.setdefault("FACTS_LOG_FORMAT", "text" if sys.stderr.isatty() else "json")
        base = f"http://{args.host}:{args.port}"
        print(f"serving on {base}  (Ctrl-C stops the harness and the servers it started)", file=sys.stderr)
        for route in discover():
            print(f"  {base}{route.path:<10} -> {route.target} (functions/{route.source.name})", file=sys.stderr)
        print(f"  {base}{'/healthz':<10} -> Postgres and Redis status", file=sys.stderr)
        print(f"  dashboard: open {base}/ in a browser (JSON clients get the route table there)", file=sys.stderr)
        print(f"  {shape.workers} worker(s) x {shape.threads} threads", file=sys.stderr)
        sys.stderr.flush()
        dashboard = DashboardSetup(
            kind=servers.kind,
            description=servers.description,
            bind_host=args.host,
            reload=args.reload,
            workers=shape.workers,
            max_streams=max(1, shape.threads // 2),
        )
        HarnessServer(lambda: build_app(dashboard), f"{args.host}:{args.port}", reload=args.reload, shape=shape).run()
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
    found = discover()
    routes = {r.path.strip("/"): r for r in found} | {r.target: r for r in found}
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
    path = Path(args.file)
    if not path.exists():
        raise SystemExit(f"no such file: {path}")
    with running_servers(args.servers, quiet=True, step_timeout_s=args.timeout):
        with connect(load_settings().postgres, args.timeout, statement_timeout_ms=None) as con:
            try:
                added = catalogue.import_facts(con, catalogue.read_facts(path, args.language, args.source))
            except ValueError as exc:
                raise SystemExit(f"import failed: {exc}") from None
            except Exception as exc:
                if not is_connection_lost(exc):
                    raise
                raise SystemExit(
                    f"import failed: Postgres did not answer within --timeout {args.timeout:g} s, or the connection"
                    " was lost; nothing was imported"
                ) from None
    print(f"imported {added} new facts from {path}")
    return 0


def migrate(args: argparse.Namespace) -> int:
    """The deployment's migration step against DATABASE_URL (Redis is not needed); without one,
    against the servers `--servers` starts, which migrate as they start."""
    if os.environ.get("DATABASE_URL") and args.servers in ("auto", "external"):
        return schema.main(["--timeout", str(args.timeout)])
    if args.servers == "external":
        raise SystemExit("migrate --servers external needs DATABASE_URL")
    with running_servers(args.servers):
        pass
    return 0
