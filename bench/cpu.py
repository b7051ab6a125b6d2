"""CPU time of process trees from /proc (Linux): what each request costs, and how busy others were.

On a shared machine requests/s moves with whatever else runs; CPU time per request of the server
under test moves much less, so it is the steadier figure for comparing targets. The CPU that none of
our processes used during a run ("others") says how much noise that run had.
"""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _processes() -> dict[int, tuple[int, float]]:
    """pid -> (parent pid, CPU seconds of it and of its waited-for children) of every process now."""
    found: dict[int, tuple[int, float]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_text()
        except OSError:
            continue  # exited meanwhile
        # The command name may hold spaces and parentheses: fields start after the last ')'.
        fields = raw[raw.rindex(")") + 2 :].split()
        # utime + stime, plus cutime + cstime: the CPU of children it has waited for. A tree's total
        # then keeps what its exited processes spent: Postgres backends end whenever a pool closes
        # an idle connection, and without their CPU (now in the postmaster's cutime) a run's
        # database CPU would go down, even below zero.
        found[int(entry.name)] = (int(fields[1]), sum(int(value) for value in fields[11:15]) / _TICK)
    return found


def _tree_seconds(processes: Mapping[int, tuple[int, float]], root: int) -> float:
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in processes.items():
        children.setdefault(ppid, []).append(pid)
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        if pid in processes:
            total += processes[pid][1]
            todo.extend(children.get(pid, ()))
    return total


def _machine() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    total = sum(values[:8])  # user nice system idle iowait irq softirq steal (guest is inside user)
    idle = values[3] + values[4]
    return (total - idle) / _TICK, total / _TICK


def idle_pct(seconds: float) -> float:
    """The machine's idle share (all cores) over the next `seconds`: a measurement window."""
    busy, total = _machine()
    time.sleep(seconds)
    busy_after, total_after = _machine()
    spent = total_after - total
    return 100 * (1 - (busy_after - busy) / spent) if spent else 100.0


@dataclass
class Snapshot:
    trees: dict[str, float]
    children: float  # our own waited-for children (wrk), which are gone by the second snapshot
    busy: float
    total: float


def available() -> bool:
    return Path("/proc/stat").exists()


def snapshot(roots: Mapping[str, int]) -> Snapshot:
    processes = _processes()
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    busy, total = _machine()
    return Snapshot(
        {name: _tree_seconds(processes, pid) for name, pid in roots.items()},
        usage.ru_utime + usage.ru_stime,
        busy,
        total,
    )


def delta(before: Snapshot, after: Snapshot) -> dict[str, float]:
    """CPU seconds per tree during the interval, plus wrk, the machine's busy share and other people's.

    "Others" is the machine's busy time minus every tree given to `snapshot` and wrk, so give it all
    of the benchmark's servers, idle ones too.
    """
    spent = {name: after.trees[name] - before.trees.get(name, 0.0) for name in after.trees}
    spent["wrk"] = after.children - before.children
    wall_cpu = after.total - before.total  # CPU-seconds of capacity in the interval (all cores)
    busy = after.busy - before.busy
    ours = sum(spent.values())
    spent["machine_busy_pct"] = 100 * busy / wall_cpu if wall_cpu else 0.0
    spent["others_pct"] = max(0.0, 100 * (busy - ours) / wall_cpu) if wall_cpu else 0.0
    return spent
