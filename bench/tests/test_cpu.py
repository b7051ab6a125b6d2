"""bench/cpu.py: a process tree's CPU time keeps what its exited processes spent."""

import subprocess
import sys

BURN = "import time\nend = time.process_time() + 0.3\nwhile time.process_time() < end: pass"


# Measured from a process of its own: an xdist worker's tree also holds its servers, whose own
# exiting processes (a backend, a stopped server) would blur the figure.
MEASURE = f"""
import os, subprocess, sys
from bench import cpu
me = {{"me": os.getpid()}}
before = cpu.snapshot(me)
subprocess.run([sys.executable, "-c", {BURN!r}], check=True, timeout=60)
after = cpu.snapshot(me)
print(cpu.delta(before, after)["me"])
"""


def test_a_tree_keeps_the_cpu_of_a_child_that_has_exited() -> None:
    # As a Postgres backend that a pool's idle timeout closed: gone before the second snapshot.
    measured = subprocess.run([sys.executable, "-c", MEASURE], check=True, timeout=60, capture_output=True, text=True)
    assert float(measured.stdout) >= 0.25
