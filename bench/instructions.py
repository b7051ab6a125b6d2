"""User-space instructions per request of each function and its reference (valgrind's callgrind).

    python -m bench.instructions [--calls 300] [--targets random,minimal_random]

CPU time on a shared machine moves by a quarter between rounds; instruction counts do not. Each
target runs in a process of its own under callgrind: its functions-framework app is called
in-process with a prebuilt GET environ (no server, no wrk) against an embedded Postgres and Redis,
warmed, with the warm-up's objects frozen out of the garbage collector's way (a full collection
landing inside a short window would otherwise dominate it), then called `--calls` times. The figure
is (instructions with N calls − with 0 calls) / N, so imports and start-up cancel out. Each call's
log line is written within the call. System time (the socket's work) is not
counted: a change that saves system calls shows in `bench/run.py`'s CPU per request, not here.

Needs valgrind (installed with apt-get when missing and run as root).
"""

from __future__ import annotations

import argparse
import io
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.run import FUNCTION_SERVERS
from bench.stage import prepare_database
from bench.wrkload import ensure_tool
from devkit.servers.embedded import embedded_servers

PAIRS = (("random", "minimal_random"), ("today", "minimal_today"))
_COLLECTED = re.compile(r"Collected : (\d+)")


def call_in_process(target: str, source: str, calls: int) -> None:
    """The child: build the app, warm it, freeze what exists, then make `calls` requests."""
    import gc

    from functions_framework import create_app
    from werkzeug.test import EnvironBuilder

    app = create_app(target, source)
    environ = EnvironBuilder(path="/").get_environ()  # a plain GET /, built once

    def request() -> None:
        statuses: list[str] = []
        body = app({**environ, "wsgi.input": io.BytesIO(b"")}, lambda status, headers, *_: statuses.append(status))
        b"".join(body)
        if not statuses[0].startswith("200"):
            raise SystemExit(f"{target} answered {statuses[0]}")

    for _ in range(50):
        request()
    gc.collect()
    gc.freeze()
    for _ in range(calls):
        request()


def instructions(valgrind: str, name: str, calls: int, env: dict[str, str]) -> int:
    target, source = FUNCTION_SERVERS[name]
    child = [sys.executable, "-m", "bench.instructions", "--child", target, str(source), str(calls)]
    done = subprocess.run(
        [valgrind, "--tool=callgrind", "--callgrind-out-file=/dev/null", *child],
        env=env,
        stdout=subprocess.DEVNULL,  # the functions' log lines
        stderr=subprocess.PIPE,
        text=True,
        timeout=900,
    )
    found = _COLLECTED.search(done.stderr)
    if done.returncode != 0 or not found:
        raise SystemExit(f"callgrind run of {name} failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
    return int(found.group(1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300, help="requests measured per target (default 300)")
    parser.add_argument(
        "--targets", default=",".join(FUNCTION_SERVERS), help=f"comma-separated (default {','.join(FUNCTION_SERVERS)})"
    )
    parser.add_argument("--child", nargs=3, metavar=("TARGET", "SOURCE", "CALLS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        call_in_process(args.child[0], args.child[1], int(args.child[2]))
        return 0
    targets = [name.strip() for name in args.targets.split(",") if name.strip()]
    if unknown := set(targets) - set(FUNCTION_SERVERS):
        parser.error(f"--targets: unknown {', '.join(sorted(unknown))}; known: {', '.join(FUNCTION_SERVERS)}")
    valgrind = ensure_tool(
        "valgrind", "bench: valgrind is not installed (Debian/Ubuntu: `sudo apt-get install valgrind`)."
    )
    with tempfile.TemporaryDirectory() as workdir, embedded_servers(Path(workdir) / "servers") as servers:
        prepare_database(servers.database_url)
        env = {**os.environ, **servers.environ(), "FACTS_LOG_FORMAT": "json"}
        per_call: dict[str, float] = {}
        for name in targets:
            baseline = instructions(valgrind, name, 0, env)
            measured = instructions(valgrind, name, args.calls, env)
            per_call[name] = (measured - baseline) / args.calls
            print(f"{name:16} {per_call[name] / 1000:8.1f} k instructions a request", flush=True)
    for function, reference in PAIRS:
        if function in per_call and reference in per_call:
            print(f"{function} / {reference}: {per_call[function] / per_call[reference]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
