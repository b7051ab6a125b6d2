"""What `serve --like cloud-run` itself costs: the front's added latency per request, and a cold
start through the mode against the plain functions-framework CLI. Reported, not gated.

    python -m bench.cloudrun_overhead [--requests 200] [--cold-starts 3] [--json]

Against a scratch Postgres and Redis of its own (migrated first, so no figure includes a
migration), with the deploy's environment and the upload set, as the mode runs them:

- added latency: the same warm instance of random_fact asked `--requests` times one after another,
  directly on its port and through the mode's front (which thaws it before and freezes it after
  each request, as the mode does); the difference of the medians (and of the 90th percentiles);
- cold start: spawn to the first 200, `--cold-starts` times each: the CLI started by hand and
  asked once it listens, against an instance evicted in the mode and the next request through
  the front (which starts it and waits for it, timing the whole).
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from devkit.cloudrun.autoscale import CloudRunFront
from devkit.cloudrun.deployed import deployed_service
from devkit.cloudrun.instances import Instance, start_instance
from devkit.cloudrun.scratch_postgres import scratch_servers
from devkit.cloudrun.service import Limits
from devkit.cloudrun.upload_copy import deploy_venv, deployed_copy
from devkit.servers.waiting import wait_until
from shared import schema
from shared.config import parse_database_url

PATH = "/?language=en"


def _get(port: int, path: str) -> int:
    con = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        con.request("GET", path, headers={"Connection": "close"})
        response = con.getresponse()
        response.read()
        return response.status
    finally:
        con.close()


def _timed(port: int, path: str) -> float:
    began = time.perf_counter()
    status = _get(port, path)
    if status != 200:
        raise RuntimeError(f"GET {path} answered {status}")
    return time.perf_counter() - began


def _summary(seconds: list[float]) -> dict[str, float]:
    ordered = sorted(seconds)
    return {
        "median_ms": round(statistics.median(ordered) * 1000, 2),
        "p90_ms": round(ordered[int(0.9 * (len(ordered) - 1))] * 1000, 2),
    }


def _frozen(instance: Instance) -> None:
    if instance.state != "frozen":
        raise RuntimeError(f"{instance.name} is {instance.state}")


def _plain_cold_start(launch: Callable[[int], Instance]) -> float:
    instance = launch(0)
    try:

        def answered() -> None:
            assert _get(instance.port, PATH) == 200

        wait_until(answered, 60, "the plain CLI's first 200")
        return time.monotonic() - instance.spawned_at
    finally:
        instance.stop()


def measure(requests: int, cold_starts: int, logs: Path) -> dict[str, Any]:
    deployed = deployed_service()
    with scratch_servers(100) as (_, app_url, redis_url):
        schema.migrate_database(parse_database_url(app_url), timeout_s=60)
        env = {**deployed.env, "DATABASE_URL": app_url, "REDIS_URL": redis_url}
        source, venv = deployed_copy(logs / "upload"), deploy_venv()

        def launch(route: str, index: int, revision: int) -> Instance:
            return start_instance(route, index, source, venv, env, logs, revision)

        plain = [_plain_cold_start(lambda i: launch("random", 100 + i, 1)) for _ in range(cold_starts)]
        limits = Limits(1, deployed.concurrency, deployed.timeout_s)
        with CloudRunFront({"random": "random_fact"}, limits, launch, lambda *_: None, lambda *_: None) as front:
            through_front: list[float] = []
            for _ in range(cold_starts):
                through_front.append(_timed(front.port, "/random" + PATH))
                (instance,) = front.services["random"].live()
                front.call(front.evict(instance.name)).result(30)
            _timed(front.port, "/random" + PATH)  # a warm instance from here on
            (instance,) = front.services["random"].live()
            fronted = [_timed(front.port, "/random" + PATH) for _ in range(requests)]
            # The front freezes it as the last answer ends (a client may see the answer a moment
            # before); thawed after that, it is asked directly, as the CLI would be.
            wait_until(lambda: _frozen(instance), 10, "the instance frozen after its last answer")
            instance.thaw()
            direct = [_timed(instance.port, PATH) for _ in range(requests)]
    added = {k: round(_summary(fronted)[k] - _summary(direct)[k], 2) for k in ("median_ms", "p90_ms")}
    return {
        "requests": requests,
        "direct": _summary(direct),
        "through_front": _summary(fronted),
        "front_added": added,
        "cold_start_plain_cli_s": [round(s, 3) for s in plain],
        "cold_start_through_mode_s": [round(s, 3) for s in through_front],
    }


def report(figures: dict[str, Any]) -> str:
    direct, fronted, added = figures["direct"], figures["through_front"], figures["front_added"]
    plain, mode = figures["cold_start_plain_cli_s"], figures["cold_start_through_mode_s"]
    return "\n".join(
        [
            f"serve --like cloud-run's overhead ({figures['requests']} sequential requests to one warm instance)",
            f"  direct to the instance: median {direct['median_ms']} ms, p90 {direct['p90_ms']} ms",
            f"  through the front:      median {fronted['median_ms']} ms, p90 {fronted['p90_ms']} ms",
            f"  added by the front (thaw, proxy, freeze): median {added['median_ms']} ms, p90 {added['p90_ms']} ms",
            f"cold start, spawn to first 200: plain CLI median {statistics.median(plain):.2f} s {plain};"
            f" through the mode median {statistics.median(mode):.2f} s {mode}",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=200, help="sequential requests each way (default 200)")
    parser.add_argument("--cold-starts", type=int, default=3, help="cold starts each way (default 3)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="facts-cloudrun-bench-") as logs:
        figures = measure(args.requests, args.cold_starts, Path(logs))
    print(report(figures))
    if args.json:
        print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
