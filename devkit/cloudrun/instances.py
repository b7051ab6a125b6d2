"""Cloud Run on loopback: instances of the deployed functions, started from the upload copy by the
functions-framework CLI with Cloud Run's environment and the deploy script's settings (the front
that routes requests to them is devkit.cloudrun.front).

The benchmark's scale-out rehearsal (bench/scaleout.py) and the tests of the deploy's promises
(connection budget, migration, throttling) start their fleets here.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import signal
import socket
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from devkit.cloudrun.upload_copy import deploy_venv, deployed_copy
from devkit.servers.ports import free_port
from devkit.servers.processes import descendants, spawn, terminate

FUNCTIONS = {  # route -> (Cloud Run service, target, source)
    "random": ("random-fact", "random_fact", "functions/random_fact.py"),
    "today": ("today-fact", "today_fact", "functions/today_fact.py"),
}
REQUEST_TIMEOUT_S = 20.0


@dataclass
class Instance:
    route: str
    index: int
    port: int
    log_path: Path
    revision: int = 1
    process: subprocess.Popen[bytes] | None = None
    first_200_s: float | None = None
    statuses: Counter[int] = field(default_factory=Counter)
    in_flight: int = 0  # requests the front has sent it and not yet answered
    frozen: bool = False
    spawned_at: float = field(default_factory=time.monotonic)
    listening_at: float | None = None  # when it first accepted a connection (Cloud Run's TCP probe)
    last_used: float = field(default_factory=time.monotonic)  # when its last request ended
    stopped: bool = False  # stopped by the platform (idle, evicted, an old revision) or exited

    @property
    def state(self) -> str:
        """starting, serving (a request in flight, or thawed between two), frozen or stopped."""
        if self.stopped or self.process is None or self.process.poll() is not None:
            return "stopped"
        if self.listening_at is None:
            return "starting"
        return "frozen" if self.frozen else "serving"

    def stop(self) -> None:
        """Thawed first (a frozen process ignores SIGTERM until thawed), then its whole group ended."""
        self.thaw()
        self.stopped = True
        terminate(self.process, signal.SIGTERM, whole_group=True)

    def freeze(self) -> None:
        """SIGSTOP to its process group (the arbiter and gunicorn's workers), as Cloud Run throttles."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGSTOP)
        self.frozen = True

    def thaw(self) -> None:
        if self.process is not None and self.frozen:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGCONT)
        self.frozen = False

    @property
    def name(self) -> str:
        return f"{FUNCTIONS[self.route][0]}-{self.revision:05d}#{self.index}"


def start_instance(
    route: str,
    index: int,
    source_root: Path,
    venv: Path,
    env: dict[str, str],
    logs: Path,
    revision: int = 1,
    extra_env: dict[str, str] | None = None,
) -> Instance:
    """One instance of the function, started by the functions-framework CLI as Cloud Run starts it;
    everything it writes goes to its log file. `extra_env`: what the harness adds to observe it."""
    service, target, source = FUNCTIONS[route]
    instance = Instance(route, index, free_port(), logs / f"{service}-{revision:05d}-{index}.log", revision)
    environ = {
        **env,
        "PATH": f"{venv}/bin:/usr/bin:/bin",
        "PORT": str(instance.port),
        "K_SERVICE": service,
        "K_REVISION": f"{service}-{revision:05d}-rehearsal",
        "K_CONFIGURATION": service,
        "FUNCTION_TARGET": target,
        "FUNCTION_SIGNATURE_TYPE": "http",
        "FUNCTION_SOURCE": source,
        "FACTS_LOG_FORMAT": "json",
        **(extra_env or {}),
    }
    with open(instance.log_path, "wb") as log:
        instance.process = spawn([str(venv / "bin" / "functions-framework")], log, None, signal.SIGTERM,
                                 env=environ, cwd=source_root)  # fmt: skip
    return instance


@contextlib.contextmanager
def instances_of_both(per_function: int, env: dict[str, str], logs: Path) -> Iterator[tuple[list[Instance], float]]:
    """`per_function` instances of each function, all starting now, from the upload set; stopped after."""
    with Fleet(env, logs) as fleet:
        started = time.monotonic()
        yield fleet.start_revision(1, per_function), started


class Fleet:
    """The instances of every revision, started from one upload set; all thawed and stopped on exit."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self._env, self._logs = env, logs
        self.instances: list[Instance] = []

    def __enter__(self) -> Fleet:
        self._source_root = deployed_copy(self._logs / "upload")
        self._venv = deploy_venv()
        return self

    def start_revision(
        self, revision: int, per_function: int, env_overrides: dict[str, str] | None = None
    ) -> list[Instance]:
        """`per_function` instances of each function with K_REVISION of `revision`, all starting now
        (`env_overrides`: settings this revision alone changes, as a deploy with other values)."""
        env = {**self._env, **(env_overrides or {})}
        started = [
            start_instance(route, index, self._source_root, self._venv, env, self._logs, revision)
            for index in range(per_function)
            for route in FUNCTIONS
        ]
        self.instances += started
        return started

    def __exit__(self, *exc: object) -> None:
        for instance in self.instances:
            instance.thaw()  # all thawed first, so they end together
        for instance in self.instances:
            instance.stop()


def postgres_client_ports(instances: list[Instance], postgres_port: int) -> set[int]:
    """The local ports of the TCP connections to `postgres_port` held by the instances' processes
    (each one's process group: the arbiter and its workers), as pg_stat_activity.client_port names
    them; read from /proc (Linux)."""
    inodes: set[str] = set()
    for instance in instances:
        assert instance.process is not None
        for pid in [instance.process.pid, *descendants(instance.process.pid)]:
            with contextlib.suppress(OSError):  # a process that ended meanwhile holds nothing
                for fd in Path(f"/proc/{pid}/fd").iterdir():
                    with contextlib.suppress(OSError):
                        target = os.readlink(fd)
                        if target.startswith("socket:["):
                            inodes.add(target[len("socket:[") : -1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as rows:
            for row in itertools.islice(rows, 1, None):
                fields = row.split()
                local, remote, inode = fields[1], fields[2], fields[9]
                if inode in inodes and int(remote.rsplit(":", 1)[1], 16) == postgres_port:
                    ports.add(int(local.rsplit(":", 1)[1], 16))
    return ports


def listening(instances: list[Instance]) -> None:
    """Raises until every instance accepts connections (Cloud Run's default TCP startup probe)."""
    for instance in instances:
        assert instance.process is not None and instance.process.poll() is None, f"{instance.name} exited"
        socket.create_connection(("127.0.0.1", instance.port), timeout=1).close()


def served_200(instances: list[Instance]) -> None:
    """Raises until every instance has answered a 200 through the front."""
    waiting = [i.name for i in instances if i.first_200_s is None]
    assert not waiting, f"no 200 yet from {waiting}"


def migrations_applied(instances: list[Instance]) -> Counter[str]:
    """How often each migration was applied, from the instances' logs."""
    applied: Counter[str] = Counter()
    for instance in instances:
        for line in instance.log_path.read_text(errors="replace").splitlines():
            found = re.search(r"applying migration (\w+)", line)
            if found:
                applied[found.group(1)] += 1
    return applied
