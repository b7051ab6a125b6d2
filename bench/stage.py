"""What every benchmark command that loads the app does first, written once: signals that unwind,
wrk, the machine's state; a scratch folder; embedded Postgres and Redis (durable), migrated and
seeded as `harness.py serve` leaves them; and the app processes beside them, all stopped on exit.

    def measure(wrk: str, folder: Path) -> dict:
        with stage.staged(folder) as on:
            harness = on.start_harness("harness")
            ...

    info, result = stage.measured("facts-bench-", measure)
"""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from bench.app_processes import AppProcess, AppProcesses, harness_argv, reference_argv
from bench.wrkload import ensure_wrk
from devkit.servers import Servers
from devkit.servers.embedded import embedded_servers
from devkit.servers.ports import free_port
from shared.config import ServerShape, server_shape

ROOT = Path(__file__).resolve().parents[1]
T = TypeVar("T")


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def begin() -> tuple[str, dict[str, Any]]:
    """Signals that unwind, wrk, and the machine's state."""
    # SIGTERM unwinds like Ctrl-C, so every finally stops what it started. SIGINT is set explicitly
    # because a shell starts background jobs with it ignored, and `kill -INT` must work.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGINT, signal.default_int_handler)
    wrk = ensure_wrk()
    info = machine_info()
    log(f"{info['cpu_count']} CPUs, load average {info['loadavg_at_start']} (other jobs on this machine add noise)")
    return wrk, info


def app_shape() -> ServerShape:
    """The benchmark's harness and reference servers: one worker per CPU (WORKERS and THREADS
    override), as the deployment runs, not the harness's own default of one worker."""
    return server_shape(os.environ, os.cpu_count())


def machine_info() -> dict[str, Any]:
    def command(*argv: str) -> str:
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=10, cwd=ROOT)
            return (done.stdout or done.stderr).strip().splitlines()[0]
        except (OSError, subprocess.SubprocessError, IndexError):
            return ""

    from importlib.metadata import version

    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
        "git_commit": command("git", "rev-parse", "--short", "HEAD"),
        "gunicorn_workers": app_shape().workers,
        "gunicorn_threads": app_shape().threads,
        "gunicorn": version("gunicorn"),
        "functions_framework": version("functions-framework"),
        "pg8000": version("pg8000"),
        "redis_py": version("redis"),
        "wrk": command(shutil.which("wrk") or "wrk", "--version"),
    }


def measured(prefix: str, measure: Callable[[str, Path], T]) -> tuple[dict[str, Any], T]:
    """begin(), then `measure(wrk, folder)` in a scratch folder (workdir): the machine's state and
    what it measured. Stopped by Ctrl-C or SIGTERM, it exits (130, 143) once all it started is stopped."""
    wrk, info = begin()
    try:
        with workdir(prefix) as folder:
            return info, measure(wrk, folder)
    except (KeyboardInterrupt, SystemExit) as stop:
        log("interrupted: every server started here is stopped")
        raise SystemExit(130 if isinstance(stop, KeyboardInterrupt) else int(stop.code or 143)) from None


@contextlib.contextmanager
def workdir(prefix: str) -> Iterator[Path]:
    """A scratch folder for the servers' data and the logs, removed on exit; after a failure its
    logs/ are copied out first for the post-mortem (the data never: it is large)."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield folder
    except Exception:
        if (folder / "logs").exists():
            kept = Path(tempfile.mkdtemp(prefix=f"{prefix}logs-"))
            shutil.copytree(folder / "logs", kept, dirs_exist_ok=True)
            log(f"failed; server logs kept in {kept}")
        raise
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def prepare_database(database_url: str) -> None:
    """Migrate and seed, as `harness.py serve` does before its workers start."""
    from shared import schema
    from shared.config import parse_database_url
    from shared.postgres import connect

    with connect(parse_database_url(database_url), 30.0, statement_timeout_ms=None) as con:
        schema.migrate(con)


@dataclass
class Stage:
    """The benchmark's servers and the app processes started against them."""

    servers: Servers
    apps: AppProcesses
    env: dict[str, str]  # the app processes' environment: the servers' URLs, JSON logs to a file
    log_dir: Path

    def start_harness(self, name: str, **env: str) -> AppProcess:
        """`harness.py serve` on the stage's servers (`env`: more variables, e.g. WORKERS)."""
        port = free_port()
        shaped = {**self.env, "WORKERS": str(app_shape().workers), **env}
        return self.apps.start(name, harness_argv(port), port, shaped, ready_path="/healthz")

    def start_function(self, name: str, target: str, source: Path) -> AppProcess:
        """One function or reference alone in its own functions-framework app, under gunicorn."""
        port = free_port()
        shaped = {**self.env, "WORKERS": str(app_shape().workers)}
        return self.apps.start(name, reference_argv(target, source, port), port, shaped)

    def cpu_roots(self) -> dict[str, int]:
        """The process of every app by name, and of "postgres" and "redis": the trees whose CPU counts."""
        assert self.servers.postgres is not None and self.servers.redis is not None  # embedded: ours
        roots = {app.name: app.process.pid for app in self.apps.started}
        roots.update(postgres=self.servers.postgres.process.pid, redis=self.servers.redis.process.pid)  # type: ignore[attr-defined]
        return roots


@contextlib.contextmanager
def staged(folder: Path, **env: str) -> Iterator[Stage]:
    """Embedded Postgres and Redis (durable: commits wait for the disk) in `folder`, migrated and
    seeded; apps started on the stage get `env` on top of the servers' variables."""
    log_dir = folder / "logs"
    log_dir.mkdir()
    log("starting embedded Postgres and Redis (durable) ...")
    with embedded_servers(folder / "servers", durable=True) as servers, AppProcesses(log_dir) as apps:
        prepare_database(servers.database_url)
        # As the harness's subprocess sees it; the functions log JSON to stdout, i.e. to a log file.
        app_env = {**os.environ, **servers.environ(), "FACTS_LOG_FORMAT": "json", **env}
        yield Stage(servers, apps, app_env, log_dir)
