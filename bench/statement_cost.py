"""Client CPU of one view statement: pg8000's own run() against shared/fast/one_trip.py, one connection.

    python -m bench.statement_cost [--calls 3000] [--rounds 3]

Starts an embedded Postgres (not durable: the disk is not what is measured), migrates and seeds it,
then runs RANDOM_VIEW on one connection, the two ways in alternating rounds, and prints the CPU time
of this thread per statement (the best of five batches per round; system calls included, waiting
for the server not).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench.stage import prepare_database
from devkit.servers.embedded import embedded_servers
from shared.config import parse_database_url
from shared.fast.one_trip import OneTripStatement
from shared.postgres import connect
from shared.store import RANDOM_VIEW


def cpu_us_per_call(call: Callable[[], object], calls: int) -> float:
    for _ in range(200):  # warm: plans cached, buffers hot
        call()
    batches = []
    for _ in range(5):
        began = time.thread_time()
        for _ in range(calls):
            call()
        batches.append((time.thread_time() - began) / calls * 1e6)
    return min(batches)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=3000, help="statements per batch (default 3000)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (default 3)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir, embedded_servers(Path(workdir) / "servers") as servers:
        prepare_database(servers.database_url)
        con = connect(parse_database_url(servers.database_url), 5.0, statement_timeout_ms=None)
        theirs = con.prepare(RANDOM_VIEW)
        ours = OneTripStatement(con, RANDOM_VIEW)
        print("RANDOM_VIEW, client CPU per statement (µs): pg8000 run()  one trip  saved")
        for _ in range(args.rounds):
            plain = cpu_us_per_call(lambda: theirs.run(language="en"), args.calls)
            one_trip = cpu_us_per_call(lambda: ours.run(language="en"), args.calls)
            print(f"{'':47}{plain:8.1f}  {one_trip:8.1f}  {plain - one_trip:5.1f}", flush=True)
        con.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
