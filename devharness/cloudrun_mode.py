"""`serve --like cloud-run`: every function as Cloud Run runs it after deploy/cloud-functions.sh.

Each function is a service of instances started from the upload set by the functions-framework
CLI with the deploy's environment and limits (devkit.cloudrun), behind one front port; the
harness's own app (dashboard, /healthz, the route table) answers the front's other paths from a
port of its own on loopback. With --reload a change to functions/ or shared/ deploys a new
revision. Everything the dashboard shows of the platform is read from the `Platform` here.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from werkzeug.serving import make_server

from devkit.cloudrun.autoscale import CloudRunFront
from devkit.cloudrun.cold_start import PROFILE_IMPORTS_ENV
from devkit.cloudrun.deployed import deployed_service
from devkit.cloudrun.instances import FUNCTIONS, Instance, start_instance
from devkit.cloudrun.service import Launch, Limits
from devkit.cloudrun.upload_copy import ROOT, deploy_venv, deployed_copy
from devkit.servers import Servers
from devkit.servers.ports import free_port
from shared import logs

from . import livelog
from .app import build_app
from .dashboard import DashboardSetup

log = logging.getLogger("facts.harness")
WATCHED = ("functions", "shared")
WATCH_EVERY_S = 0.5
SERVER_ACTIONS = ("freeze", "thaw", "stop", "start")
# A signal that lands just before the main thread blocks in its wait is handled when the wait ends
# (CPython runs handlers between bytecodes): short waits bound how late Ctrl-C or SIGTERM can be.
SIGNAL_LATENCY_S = 1.0


def source_stamp(root: Path = ROOT) -> tuple[tuple[str, int], ...]:
    """What --reload compares: each watched .py/.toml file and its modification time."""
    found = []
    for folder in WATCHED:
        for path in sorted((root / folder).rglob("*")):
            if path.suffix in (".py", ".toml") and "__pycache__" not in path.parts:
                found.append((str(path), path.stat().st_mtime_ns))
    return tuple(found)


class Platform:
    """The services, their revisions and the backing servers' faults: the harness's Cloud Run state."""

    def __init__(self, env: dict[str, str], limits: Limits, logs: Path, servers: Servers | None,
                 source_root: Path | None = None, venv: Path | None = None) -> None:  # fmt: skip
        self.env, self.limits, self.logs, self.servers = env, limits, logs, servers
        self.venv = venv or deploy_venv()
        self.revision = 1
        self._source_root = source_root
        self.server_states = {"postgres": "running", "redis": "running"}
        self._fault_lock = threading.Lock()
        self.front: CloudRunFront | None = None

    def launcher(self, revision: int) -> Launch:
        """Start instances of `revision` from its own copy of the upload set (made now)."""
        source = self._source_root or deployed_copy(self.logs / f"upload-{revision:05d}")

        def launch(route: str, index: int, rev: int) -> Instance:
            return start_instance(route, index, source, self.venv, self.env, self.logs, rev, PROFILE_IMPORTS_ENV)

        return launch

    def front_for(self, host: str, port: int | None, fallback_port: int | None) -> CloudRunFront:
        routes = {route: target for route, (_, target, _) in FUNCTIONS.items()}
        self.front = CloudRunFront(routes, self.limits, self.launcher(1), self.event, self.request_seen,
                                   port, host, fallback_port)  # fmt: skip
        return self.front

    # --- what the live log shows -----------------------------------------------------------
    def event(self, kind: str, text: str) -> None:
        """A platform event as a line of the live log (function "cloud-run"), and on the terminal."""
        logs.log_request("cloud-run", kind.upper(), text, 0, time.perf_counter(), logger=log)

    def request_seen(
        self, target: str, method: str, path: str, status: int, seconds: float, instance: str | None
    ) -> None:
        with livelog.annotated(**({"instance": instance} if instance else {})):
            logs.log_request(target, method, path[:200], status, time.perf_counter() - seconds, logger=log)

    # --- what the dashboard's buttons do ---------------------------------------------------
    def faults_allowed(self) -> bool:
        """Only servers we started may be frozen or stopped (never external ones)."""
        return self.servers is not None and self.servers.postgres is not None and self.servers.redis is not None

    def fault(self, server: str, action: str) -> str:
        if not self.faults_allowed() or server not in self.server_states or action not in SERVER_ACTIONS:
            raise ValueError(f"no {action!r} for {server!r} here")
        assert self.servers is not None
        target = self.servers.postgres if server == "postgres" else self.servers.redis
        assert target is not None
        with self._fault_lock:
            self.event("fault", f"{server}: {action} ...")
            getattr(target, action)()
            self.server_states[server] = {"freeze": "frozen", "stop": "stopped"}.get(action, "running")
            self.event("fault", f"{server} {self.server_states[server]}")
        return self.server_states[server]

    def evict(self, name: str) -> bool:
        assert self.front is not None
        return bool(self.front.call(self.front.evict(name)).result(30))

    def deploy(self) -> bool:
        """A new revision from the files as they are now (--reload)."""
        assert self.front is not None
        self.revision += 1
        self.event("deploy", f"revision {self.revision}: starting its instances")
        return bool(self.front.call(self.front.deploy(self.revision, self.launcher(self.revision))).result(300))

    def view(self) -> dict[str, Any]:
        return {
            "mode": "cloud-run",
            "revision": self.revision,
            "services": self.front.view()["services"] if self.front else [],
            "servers": self.server_states,
            "faults": self.faults_allowed(),
            "logs": str(self.logs),
        }


def watch_and_deploy(platform: Platform, stop: threading.Event) -> None:
    """--reload: a new revision whenever a watched file changes (after the change settles)."""
    seen = source_stamp()
    while not stop.wait(WATCH_EVERY_S):
        now = source_stamp()
        if now != seen and not stop.wait(WATCH_EVERY_S) and source_stamp() == now:
            seen = now
            platform.deploy()


def limits_from_deploy(deployed: Any, idle_stop_s: float) -> Limits:
    return Limits(deployed.max_instances, deployed.concurrency, deployed.timeout_s, idle_stop_s=idle_stop_s)


def serve(args: argparse.Namespace, provided: Servers) -> int:
    deployed = deployed_service()
    limits = limits_from_deploy(deployed, args.idle_stop)
    logs = Path(tempfile.mkdtemp(prefix="facts-cloud-run-"))
    env = {**deployed.env, **provided.environ()}
    platform = Platform(env, limits, logs, provided if provided.postgres is not None else None)
    setup = DashboardSetup(kind=provided.kind, description=provided.description, bind_host=args.host,
                           reload=args.reload, mode="cloud-run")  # fmt: skip
    control = make_server("127.0.0.1", free_port(), build_app(setup, platform), threaded=True)
    threading.Thread(target=control.serve_forever, name="harness-app", daemon=True).start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with platform.front_for(args.host, args.port, control.server_port):
        base = f"http://{args.host}:{args.port}"
        print(f"serving like Cloud Run on {base}  (for fidelity, not speed: every function is its own service)",
              file=sys.stderr)  # fmt: skip
        for route, (service, target, source) in FUNCTIONS.items():
            print(f"  {base}/{route:<9} -> {service} ({target} in {source})", file=sys.stderr)
        print(f"  per function: up to {limits.max_instances} instances x {limits.concurrency} concurrent requests"
              f" (the deploy's --max-instances and --concurrency), --timeout {limits.request_timeout_s:g} s",
              file=sys.stderr)  # fmt: skip
        print(f"  instances start cold on demand, are frozen between requests and stopped after "
              f"{limits.idle_stop_s:g} s idle; their logs: {logs}", file=sys.stderr)  # fmt: skip
        print(f"  dashboard: open {base}/ in a browser", file=sys.stderr, flush=True)
        if args.reload:
            threading.Thread(target=watch_and_deploy, args=(platform, stop), name="reload", daemon=True).start()
        while not stop.wait(SIGNAL_LATENCY_S):
            pass
    control.shutdown()
    print(f"stopped; the instances' logs stay in {logs}", file=sys.stderr)
    return 0
