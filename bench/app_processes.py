"""The app processes the benchmark loads (gunicorn serving a function, a reference or the harness):
started in their own process group, always stopped. (Postgres and Redis are devkit's servers.)

Every process is spawned with devkit's `spawn` (own session, so a Ctrl-C in the terminal reaches
only the benchmark, which then stops them in order; and a parent-death signal, so a benchmark killed
hard does not leave servers behind). Stopping signals the gunicorn arbiter by pid, then kills what is
left of its process group (its workers) by the group id: never anything by name.
"""

from __future__ import annotations

import http.client
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from devkit.servers.ports import free_port
from devkit.servers.processes import spawn, terminate
from devkit.servers.waiting import GiveUp, NotReady, ServerExited, wait_until

ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"
REFERENCE_DIR = ROOT / "bench" / "reference"


@dataclass
class AppProcess:
    """One app process the benchmark loads: its name in the results, where it listens, its log."""

    name: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def base(self) -> str:
        return f"http://{HOST}:{self.port}"


def http_status(url: str, timeout_s: float) -> int | None:
    """The status of GET `url`, or None when nothing answers (yet)."""
    rest = url.split("://", 1)[1]
    hostport, _, path = rest.partition("/")
    host, _, port = hostport.partition(":")
    conn = http.client.HTTPConnection(host, int(port or 80), timeout=timeout_s)
    try:
        conn.request("GET", "/" + path)
        response = conn.getresponse()
        response.read()
        return response.status
    except (ConnectionError, OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()


def _tail(path: Path, chars: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return ""


def _launch(argv: Sequence[str], env: Mapping[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    with open(log_path, "ab") as log:
        return spawn(list(argv), log, None, signal.SIGTERM, env=dict(env), cwd=ROOT)


class AppProcesses:
    """The benchmark's app processes; a context manager that stops them all on exit."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.started: list[AppProcess] = []

    def __enter__(self) -> AppProcesses:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()

    def stop_all(self) -> None:
        while self.started:
            terminate(self.started.pop().process, whole_group=True)

    def start(
        self, name: str, argv: Sequence[str], port: int, env: Mapping[str, str], ready_path: str = "/"
    ) -> AppProcess:
        log_path = self.log_dir / f"{name}.log"
        app = AppProcess(name, port, _launch(argv, env, log_path), log_path)
        self.started.append(app)  # before waiting: stopped even if it never becomes ready

        def answers_200() -> None:
            if app.process.poll() is not None:
                raise ServerExited(f"exited with {app.process.returncode}")
            status = http_status(app.base + ready_path, timeout_s=5)
            if status != 200:
                raise NotReady(f"GET {app.base}{ready_path} answered {status}")

        wait_until(answers_200, 60, name, lambda: _tail(log_path))
        return app


def harness_argv(port: int) -> list[str]:
    # As the test suite runs it (tests/support/harness_process.py): servers from DATABASE_URL/REDIS_URL.
    return [
        sys.executable, str(ROOT / "harness.py"), "serve",
        "--servers", "external", "--host", HOST, "--port", str(port),
    ]  # fmt: skip


def reference_argv(target: str, source: Path, port: int) -> list[str]:
    # `-m` from the repository root: the same sys.path[0] as harness.py, and bench/ itself not on it.
    return [
        sys.executable, "-m", "bench.serve_reference",
        "--target", target, "--source", str(source), "--host", HOST, "--port", str(port),
    ]  # fmt: skip


def functions_framework_argv(target: str, source: Path, port: int) -> list[str]:
    """The functions-framework CLI of this Python environment, as a deployment starts it."""
    script = Path(sys.executable).parent / "functions-framework"
    launcher = [str(script)] if script.exists() else [sys.executable, "-m", "functions_framework"]
    return [*launcher, "--target", target, "--source", str(source), "--host", HOST, "--port", str(port)]


def cold_start_ms(
    target: str, source: Path, env: Mapping[str, str], log_dir: Path, deadline_s: float = 60.0
) -> dict[str, float]:
    """Milliseconds from launching the functions-framework CLI to its first 200 on GET / ("first_200"),
    and to the moment its port accepted a connection ("listening": imports and app creation done)."""
    port = free_port()
    log_path = log_dir / f"cold-{target}.log"
    began = time.perf_counter()
    process = _launch(functions_framework_argv(target, source, port), env, log_path)

    what = f"functions-framework {target}"

    def alive() -> None:
        if process.poll() is not None:
            raise ServerExited(f"exited with {process.returncode}")

    def accepts() -> None:
        alive()
        socket.create_connection((HOST, port), timeout=1).close()

    def answers_200() -> None:
        alive()
        status = http_status(f"http://{HOST}:{port}/", timeout_s=30)
        if status is not None and status != 200:
            raise GiveUp(f"answered {status} to GET /")
        if status is None:
            raise NotReady("no answer to GET / yet")

    def describe() -> str:
        return _tail(log_path)

    try:
        # A refused connection comes back at once: 5 ms between checks is the measurement's resolution.
        wait_until(accepts, deadline_s, f"{what} port", describe, interval_s=0.005)
        listening = time.perf_counter() - began
        # The first answered request includes the function's own first-request work (connections).
        left_s = max(0.0, deadline_s - listening)
        wait_until(answers_200, left_s, f"{what} first 200", describe, interval_s=0.005)
        return {"first_200": (time.perf_counter() - began) * 1000, "listening": listening * 1000}
    finally:
        terminate(process, whole_group=True)
