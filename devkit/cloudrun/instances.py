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
import shlex
import signal
import socket
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from devkit.cloudrun.upload_copy import ROOT, deploy_venv, deployed_copy
from devkit.servers.ports import free_port
from devkit.servers.processes import descendants, spawn, terminate

FUNCTIONS = {  # route -> (Cloud Run service, target, source)
    "random": ("random-fact", "random_fact", "functions/random_fact.py"),
    "today": ("today-fact", "today_fact", "functions/today_fact.py"),
}
REQUEST_TIMEOUT_S = 20.0


def deployed_environment() -> dict[str, str]:
    """The environment variables deploy/cloud-functions.sh gives the functions (from its dry run)."""
    with tempfile.TemporaryDirectory(prefix="facts-dry-run-") as scratch:
        env = {
            "PROJECT": "rehearsal",
            "REGION": "local",
            "CONNECTOR": "none",  # the connector form's one required setting; ignored by the others
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "CLOUDSDK_CONFIG": str(Path(scratch) / "gcloud"),  # gcloud (staging the uploads) asks nothing
            "STAGE_DIR": str(Path(scratch) / "stage"),
        }
        out = subprocess.run(
            ["bash", str(ROOT / "deploy" / "cloud-functions.sh"), "--dry-run"],
            capture_output=True, text=True, env=env, timeout=120, check=True,
        ).stdout  # fmt: skip
    for line in out.splitlines():
        # A function's deploy line (gcloud functions deploy or gcloud run deploy --function): the
        # one with --max-instances, which the migration job's line has not.
        argv = shlex.split(line) if line.startswith("gcloud ") and "--max-instances=" in line else []
        for arg in argv:
            if arg.startswith("--set-env-vars="):
                return dict(pair.split("=", 1) for pair in arg.removeprefix("--set-env-vars=").split(","))
    raise RuntimeError("deploy/cloud-functions.sh --dry-run printed no function deploy with --set-env-vars")


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
    route: str, index: int, source_root: Path, venv: Path, env: dict[str, str], logs: Path, revision: int = 1
) -> Instance:
    """One instance of the function, started by the functions-framework CLI as Cloud Run starts it;
    everything it writes goes to its log file."""
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
            instance.thaw()  # a frozen process ignores SIGTERM until thawed
        for instance in self.instances:
            terminate(instance.process, signal.SIGTERM, whole_group=True)


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
