"""Postgres CPU per statement: each request's statement run on one connection, timed on the server.

    python -m bench.statement_cpu [--calls 4000] [--rounds 3]

Starts an embedded Postgres and Redis (not durable: the disk is not what is measured), migrated and
seeded, with the day's fact chosen and the hand-written references' table made; then runs each
statement of STATEMENTS `--calls` times on one connection and reads the CPU its backend process
spent (/proc/PID/stat: user + system) per statement, best of `--rounds` alternating rounds. The
backend's CPU is the server's work alone, whatever the load of the machine (the clock tick is the
resolution: 4,000 calls make it a small share of each figure).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import handwritten
from bench.stage import prepare_database
from devkit.servers.embedded import embedded_servers
from shared import store
from shared.config import parse_database_url
from shared.postgres import connect

_TICK = os.sysconf("SC_CLK_TCK")
HAND_UPDATE = "UPDATE hand_facts SET views = views + 1 WHERE id = :id RETURNING fact_id, fact, language, source, views"
# name -> (statement, its parameters: the day's are filled in once the day's fact is known)
STATEMENTS: dict[str, tuple[str, dict[str, Any]]] = {
    "random (RANDOM_VIEW)": (store.RANDOM_VIEW, {"language": "en"}),
    "today, known day (KNOWN_DAY_VIEW)": (store.KNOWN_DAY_VIEW, {"language": "en"}),
    "hand-written one-row update": (HAND_UPDATE, {"id": 7}),
}


def backend_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def measure(database_url: str, calls: int, rounds: int) -> dict[str, float]:
    """Microseconds of backend CPU per statement, by name (best round)."""
    with connect(parse_database_url(database_url), 30.0, statement_timeout_ms=None) as con:
        con.run("SET synchronous_commit = off")  # the commit's wait is not CPU; keep the runs short
        day = datetime.now(UTC).date()
        day_fact = str(con.run("SELECT fact_id FROM daily_facts WHERE day = :day AND language = 'en'", day=day)[0][0])
        pid = int(con.run("SELECT pg_backend_pid()")[0][0])
        prepared = {name: con.prepare(sql) for name, (sql, _) in STATEMENTS.items()}
        params = {name: {**p, **({"day": day, "fact_id": day_fact} if ":day" in sql else {})}
                  for name, (sql, p) in STATEMENTS.items()}  # fmt: skip
        best: dict[str, float] = {}
        for _ in range(rounds):
            for name, statement in prepared.items():
                for _ in range(200):  # warm: plan cached, pages in the buffer cache
                    statement.run(**params[name])
                began = backend_cpu_s(pid)
                for _ in range(calls):
                    statement.run(**params[name])
                spent = (backend_cpu_s(pid) - began) / calls * 1e6
                best[name] = min(best.get(name, spent), spent)
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir, embedded_servers(Path(workdir) / "servers") as provided:
        prepare_database(provided.database_url)
        with connect(parse_database_url(provided.database_url), 30.0, statement_timeout_ms=None) as con:
            con.run(store.TODAY_VIEW, day=datetime.now(UTC).date(), language="en")  # the day's fact chosen
        handwritten.prepare(provided.database_url, provided.redis_url)
        cpu = measure(provided.database_url, args.calls, args.rounds)
    for name, us in cpu.items():
        print(f"{name:<36} {us:7.1f} µs of Postgres CPU a statement")
    return 0


if __name__ == "__main__":
    sys.exit(main())
