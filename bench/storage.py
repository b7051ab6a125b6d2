"""Postgres ceilings of the project's own view statements, without HTTP: pgbench, many connections.

The question is what the database allows when the function tier scales out: every /today view
of a day counts the same fact, every /random view a random one. pgbench (from the same PostgreSQL
build as the server) runs each statement of shared/store.py as a prepared statement from
`connections` clients, in alternating rounds (today, random, today, random, ...), and reports
statements per second. Its `:name` variables are the statements' own parameter syntax, so the
SQL runs exactly as written there.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from urllib.parse import unquote, urlsplit

from shared import store

# One statement per view, as the functions send it: a warm instance's /today, and /random.
STATEMENTS = {"today": store.KNOWN_DAY_VIEW, "random": store.RANDOM_VIEW}


@dataclass(frozen=True)
class StorageLoad:
    duration_s: int = 5
    connections: int = 32
    threads: int = 2


def pgbench_binary() -> Path:
    from devkit.servers.embedded import postgres_bin_dir

    found = postgres_bin_dir() / "pgbench"
    if not found.exists():
        raise FileNotFoundError(f"no pgbench beside the PostgreSQL server binaries ({found.parent})")
    return found


def run_pgbench(
    pgbench: Path, database_url: str, sql: str, variables: dict[str, str], load: StorageLoad, workdir: Path
) -> dict:
    """One timed pgbench run of `sql`; statements/s and latency."""
    script = workdir / "statement.sql"
    script.write_text(sql.strip() + ";\n")
    url = urlsplit(database_url)
    argv = [
        str(pgbench), "--no-vacuum", "--protocol=prepared", f"--client={load.connections}",
        f"--jobs={load.threads}", f"--time={load.duration_s}", f"--file={script}",
        f"--host={url.hostname}", f"--port={url.port or 5432}", f"--username={unquote(url.username or '')}",
        *(f"--define={name}={value}" for name, value in variables.items()),
        url.path.lstrip("/"),
    ]  # fmt: skip
    env = {"PGPASSWORD": unquote(url.password or ""), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(argv, capture_output=True, text=True, timeout=load.duration_s + 60, env=env)
    tps = re.search(r"^tps = ([\d.]+)", done.stdout, re.MULTILINE)
    failed = re.search(r"number of failed transactions: (\d+)", done.stdout)
    latency = re.search(r"^latency average = ([\d.]+) ms", done.stdout, re.MULTILINE)
    if done.returncode != 0 or tps is None:
        raise RuntimeError(f"pgbench failed (exit {done.returncode}): {(done.stderr or done.stdout)[-2000:]}")
    return {
        "tps": float(tps.group(1)),
        "failed": int(failed.group(1)) if failed else 0,
        "latency_ms": float(latency.group(1)) if latency else None,
    }


def storage_rounds(
    database_url: str,
    variables: dict[str, str],
    rounds: int,
    load: StorageLoad,
    workdir: Path,
    log: Callable[[str], None],
) -> dict[str, list[dict]]:
    """Alternating rounds of each statement; every run, by statement name."""
    pgbench = pgbench_binary()
    warmup = StorageLoad(1, load.connections, load.threads)
    for sql in STATEMENTS.values():  # connections, plans and the pages of both working sets
        run_pgbench(pgbench, database_url, sql, variables, warmup, workdir)
    runs: dict[str, list[dict]] = {name: [] for name in STATEMENTS}
    for round_no in range(1, rounds + 1):
        for name, sql in STATEMENTS.items():
            run = run_pgbench(pgbench, database_url, sql, variables, load, workdir)
            run["round"] = round_no
            runs[name].append(run)
            log(f"round {round_no}/{rounds} storage {name:<7} {run['tps']:8.0f} statements/s"
                f"  latency {run['latency_ms']:.2f} ms  failed {run['failed']}")  # fmt: skip
    return runs


def statement_variables(day: date, language: str, fact_id: str) -> dict[str, str]:
    """The parameters of both statements: the day's choice (which must exist), and the language."""
    return {"day": day.isoformat(), "language": language, "fact_id": fact_id}
