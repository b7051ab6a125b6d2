"""The test suite's costs: one worker's start-up per kind of servers, and the suite's wall time."""

from __future__ import annotations

import os
import re
import resource
import shutil
import signal
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from devkit.servers import Servers
from devkit.servers.processes import spawn, terminate

ROOT = Path(__file__).resolve().parents[1]


def _startup(enter: Callable[[], AbstractContextManager[Servers]], repeats: int) -> dict:
    """Median time to enter a kind's context (servers up and answering), and to migrate and seed.

    A test worker pays both before its first test; they are reported apart.
    """
    from shared import schema
    from shared.config import parse_database_url
    from shared.postgres import connect

    entry, seed = [], []
    for _ in range(repeats):
        began = time.perf_counter()
        with enter() as servers:
            entry.append(time.perf_counter() - began)
            began = time.perf_counter()
            with connect(parse_database_url(servers.database_url), 30.0, statement_timeout_ms=None) as con:
                schema.migrate(con)
            seed.append(time.perf_counter() - began)
    return {
        "startup_s": statistics.median(entry),
        "seed_s": statistics.median(seed),
        "samples_s": [round(s, 3) for s in entry],
    }


def embedded_startup_s(repeats: int) -> dict:
    """Embedded servers in a fresh folder each time (initdb included), durable=False like a test worker."""
    from devkit.servers.embedded import embedded_servers

    @contextmanager
    def fresh() -> Iterator[Servers]:
        # A new folder each time, like a test worker's scratch folder (embedded_servers grants the
        # unprivileged server user traverse rights on it when we run as root).
        folder = Path(tempfile.mkdtemp(prefix="facts-bench-startup-"))
        try:
            with embedded_servers(folder, durable=False) as servers:
                yield servers
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    return _startup(fresh, repeats)


def container_startup_s(repeats: int) -> dict:
    """Containers as a test worker gets them, or why they were not measured."""
    from devkit.servers.containers import container_servers, docker_available, images

    if not docker_available():
        return {"skipped": "no Docker engine answers"}
    missing = [image for image in images() if not _image_present(image)]
    if missing:
        # Measuring a pull would time the network, not start-up.
        names = ", ".join(missing)
        return {"skipped": f"image(s) not present locally: {names} (set FACTS_POSTGRES_IMAGE/FACTS_REDIS_IMAGE)"}
    return _startup(container_servers, repeats)


def _image_present(name: str) -> bool:
    import docker

    client = docker.from_env()
    try:
        client.images.get(name)
        return True
    except docker.errors.ImageNotFound:
        return False
    finally:
        client.close()


# The suite's two lanes as `./dev test` runs them (README): the default lane, and both lanes.
# Named after the lanes, not "fast"/"full": results.json's modes are "fast" and "stock".
LANES = {"default_lane": [], "all": ["--all"]}


def suite_wall_s(lane: str, log_dir: Path, fast_paths: str, timeout_s: float = 900.0) -> dict:
    """Wall and CPU time of `./dev test` (xdist's -n auto) for a lane of LANES, on embedded servers,
    with FACTS_FAST_PATHS=`fast_paths` (the benchmark's mode)."""
    argv = [str(ROOT / "dev"), "test", *LANES[lane], "-p", "no:benchmark", "-q", "--servers=embedded"]
    log_path = log_dir / f"pytest-{lane}.log"
    # The suite must start its own servers: none of the benchmark's URLs may leak into it.
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "FACTS_CACHE_PREFIX")}
    env["FACTS_FAST_PATHS"] = fast_paths
    # CPU time of every process the run started and waited for (pytest, its workers, their servers):
    # with the wall time it says how much of the run waits rather than computes.
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.perf_counter()
    with open(log_path, "wb") as log:
        process = spawn(argv, log, None, signal.SIGTERM, env=env, cwd=ROOT)
    try:
        process.wait(timeout_s)
        wall = time.perf_counter() - began
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"./dev test ({lane}) did not finish within {timeout_s:.0f} s (log: {log_path})") from None
    finally:
        terminate(process, whole_group=True)  # on timeout or Ctrl-C; a no-op after a normal exit
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    output = log_path.read_text(errors="replace")
    counts = [line for line in output.splitlines() if re.search(r"\d+ (passed|failed|error)", line)]
    summary = counts[-1].strip("= ") if counts else ""
    return {"wall_s": wall, "cpu_s": round(cpu, 1), "exit": process.returncode, "summary": summary}
