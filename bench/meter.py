"""wrk runs with the CPU each process tree spent on them, and the one line that describes a run."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bench import cpu
from bench.wrkload import LoadSettings, run_wrk


class Meter:
    """wrk runs with the CPU each process tree spent on them (see cpu.py)."""

    def __init__(self, wrk: str, roots: dict[str, int], server_of: Mapping[str, str] | None = None) -> None:
        self.wrk = wrk
        self.roots = roots  # every app process of ours, by name, plus "postgres" and "redis"
        # The app whose CPU a run counts, where it is not the app of the run's own name.
        self.server_of = dict(server_of or {})

    def run(self, name: str, url: str, load: LoadSettings) -> dict[str, Any]:
        if not cpu.available():
            return run_wrk(self.wrk, url, load)
        before = cpu.snapshot(self.roots)
        result = run_wrk(self.wrk, url, load)
        spent = cpu.delta(before, cpu.snapshot(self.roots))
        requests = max(1, result["requests"])
        result["app_cpu_ms_per_req"] = 1000 * spent[self.server_of.get(name, name)] / requests
        result["db_cpu_ms_per_req"] = 1000 * (spent["postgres"] + spent["redis"]) / requests
        result["wrk_cpu_ms_per_req"] = 1000 * spent["wrk"] / requests
        result["machine_busy_pct"] = spent["machine_busy_pct"]
        result["others_pct"] = spent["others_pct"]
        return result


def describe(run: dict[str, Any]) -> str:
    text = f"{run['rps']:7.0f} req/s  p50 {run['p50_ms']:6.2f} ms  p99 {run['p99_ms']:7.2f} ms  non-2xx {run['non2xx']}"
    if "app_cpu_ms_per_req" in run:
        text += (f"  CPU/req app {run['app_cpu_ms_per_req']:.2f} ms db {run['db_cpu_ms_per_req']:.2f} ms"
                 f"  others {run['others_pct']:.0f}%")  # fmt: skip
    return text
