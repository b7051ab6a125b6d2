"""bench/cpu.py: a process tree's CPU time keeps what its exited processes spent."""

import os
import subprocess
import sys

from bench import cpu

BURN = "import time\nend = time.process_time() + 0.3\nwhile time.process_time() < end: pass"


def test_a_tree_keeps_the_cpu_of_a_child_that_has_exited() -> None:
    # As a Postgres backend that a pool's idle timeout closed: gone before the second snapshot.
    me = {"me": os.getpid()}
    before = cpu.snapshot(me)
    subprocess.run([sys.executable, "-c", BURN], check=True, timeout=60)
    after = cpu.snapshot(me)
    assert cpu.delta(before, after)["me"] >= 0.25
