"""Whether a run was taken on a quiet machine: the load and the idle CPU before and during each round.

On a busy machine every server is starved alike and the ratios close in on 1, so a noisy run can
look like a met target. Before each round (our servers idle) the idle CPU is sampled for a second,
with the load average; during it, the share of the machine used by processes not ours and the idle
CPU left over (bench/cpu.py, over each run). A run is noisy where the load average at its start,
or any round's idle CPU before it or others' CPU during it, is past the thresholds below; it is then
marked so in results.json, the printed report and the chart.
"""

from __future__ import annotations

import os
import statistics
from typing import Any

from bench import cpu

# A quiet 2-core machine: load average under 1 before anything of ours runs (as issue 31 measured)...
QUIET_LOADAVG = 1.0
# ...our servers' own idle time leaves the machine this idle between rounds...
QUIET_IDLE_PCT = 85.0
# ...and processes not ours take at most this share of it while a round runs.
QUIET_OTHERS_PCT = 5.0
SAMPLE_S = 1.0


def before_round() -> dict[str, float]:
    return {"loadavg_1m": round(os.getloadavg()[0], 2), "idle_pct": round(cpu.idle_pct(SAMPLE_S), 1)}


def during_round(runs: list[dict[str, Any]]) -> dict[str, float]:
    """From the round's runs (medians): others' CPU, the idle CPU left, and the load average after."""
    measured = [run for run in runs if "others_pct" in run]
    during: dict[str, float] = {"loadavg_1m": round(os.getloadavg()[0], 2)}
    if measured:
        during["others_pct"] = round(statistics.median(run["others_pct"] for run in measured), 1)
        during["idle_pct"] = round(statistics.median(100 - run["machine_busy_pct"] for run in measured), 1)
    return during


def describe_round(state: dict[str, Any]) -> str:
    before, during = state["before"], state["during"]
    text = f"before: load {before['loadavg_1m']}, idle {before['idle_pct']:.0f}%; during: load {during['loadavg_1m']}"
    if "others_pct" in during:
        text += f", idle {during['idle_pct']:.0f}%, others {during['others_pct']:.0f}%"
    return text


def verdict(loadavg_at_start: list[float], rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """{"noisy": bool, "reasons": [...], "thresholds": {...}, "rounds": rounds}."""
    reasons = []
    if loadavg_at_start and loadavg_at_start[0] >= QUIET_LOADAVG:
        reasons.append(f"load average {loadavg_at_start[0]} at the start (quiet: under {QUIET_LOADAVG:g})")
    for state in rounds:
        idle, others = state["before"]["idle_pct"], state["during"].get("others_pct", 0.0)
        if idle < QUIET_IDLE_PCT:
            reasons.append(f"round {state['round']}: {idle:.0f}% idle before it (quiet: {QUIET_IDLE_PCT:g}% or more)")
        if others > QUIET_OTHERS_PCT:
            reasons.append(
                f"round {state['round']}: others used {others:.0f}% during it (quiet: {QUIET_OTHERS_PCT:g}%)"
            )
    return {
        "noisy": bool(reasons),
        "reasons": reasons,
        "thresholds": {"loadavg_1m": QUIET_LOADAVG, "idle_pct": QUIET_IDLE_PCT, "others_pct": QUIET_OTHERS_PCT},
        "rounds": rounds,
    }
