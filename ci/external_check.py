"""CI: run the suite in --servers=external mode against servers that hold someone else's data.

    python ci/external_check.py -- ./dev test -n 2 --servers=external

Starts embedded Postgres and Redis, puts a sentinel table and sentinel keys there (the "other data"),
runs the command with FACTS_TEST_DATABASE_URL and FACTS_TEST_REDIS_URL pointing at them, then fails unless the sentinels
are untouched and the workers left no database and no key behind.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pg8000.native
import redis

from devkit.servers.embedded import embedded_servers
from shared.config import parse_database_url

ROOT = Path(__file__).resolve().parents[1]


def _connect(url: str, database: str | None = None) -> pg8000.native.Connection:
    s = parse_database_url(url)
    return pg8000.native.Connection(
        s.user, password=s.password, host=s.host, port=s.port, database=database or s.database
    )


def main(argv: list[str]) -> int:
    command = argv[argv.index("--") + 1 :] if "--" in argv else argv
    if not command:
        raise SystemExit("usage: external_check.py -- COMMAND...")
    with tempfile.TemporaryDirectory(prefix="facts-external-") as folder, embedded_servers(Path(folder)) as ep:
        con = _connect(ep.database_url)
        con.run("CREATE TABLE someone_elses (id int PRIMARY KEY, note text)")
        con.run("INSERT INTO someone_elses VALUES (1, 'keep me')")
        cache = redis.Redis.from_url(ep.redis_url, decode_responses=True)
        cache.set("someone:else", "keep me")
        cache.set("facts:today:en:2000-01-01", "keep me too")  # even our own key format, if not ours
        before = sorted(row[0] for row in _connect(ep.database_url, "postgres").run("SELECT datname FROM pg_database"))

        urls = {"FACTS_TEST_DATABASE_URL": ep.database_url, "FACTS_TEST_REDIS_URL": ep.redis_url}
        env = {**os.environ, **urls}
        env.pop("FACTS_TEST_SERVERS", None)
        env.pop("FACTS_TEST_SERVICES", None)  # the last release's name, still read
        result = subprocess.run(command, cwd=ROOT, env=env, check=False)

        after = sorted(row[0] for row in _connect(ep.database_url, "postgres").run("SELECT datname FROM pg_database"))
        problems = []
        if after != before:
            problems.append(f"databases before {before}, after {after}")
        if sorted(cache.keys("*")) != ["facts:today:en:2000-01-01", "someone:else"]:
            problems.append(f"Redis keys left or lost: {sorted(cache.keys('*'))}")
        if cache.get("someone:else") != "keep me" or cache.get("facts:today:en:2000-01-01") != "keep me too":
            problems.append("a sentinel Redis key was changed")
        if _connect(ep.database_url).run("SELECT note FROM someone_elses") != [["keep me"]]:
            problems.append("the sentinel table was changed")
        for problem in problems:
            print(f"external_check: {problem}", file=sys.stderr)
        if not problems:
            print("external_check: the servers' other data is untouched and nothing was left behind")
        return result.returncode or (1 if problems else 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
