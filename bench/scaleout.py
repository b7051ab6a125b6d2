#!/usr/bin/env python3
"""Scale-out and deploy rehearsal: what Cloud Run does to the functions, with real processes on loopback.

    python -m bench.scaleout                    # 2 instances of each function per revision, 2,400 requests
    python -m bench.scaleout --instances 1 --clients 16 --requests 240 --pool-idle-timeout 1

Every instance is started by the functions-framework CLI from the upload set (.gcloudignore) in a
virtualenv holding exactly the lock requirements.txt, with Cloud Run's environment (PORT,
K_SERVICE, K_REVISION, FUNCTION_TARGET) and the deploy script's WORKERS / THREADS /
FACTS_POOL_SIZE. A front on one loopback port routes /random and /today round robin to the
instances of the revision that takes the traffic (holding a request while its instance starts, as
Cloud Run does). The database is a fresh, empty Postgres whose max_connections is the deploy's
arithmetic for two revisions, and no more:

    max_connections - reserve = functions x 2 revisions x instances x WORKERS x FACTS_POOL_SIZE

(reserve: the 3 superuser_reserved_connections and the sampler that reads pg_stat_activity). The
functions connect as an ordinary role, as on Cloud SQL. Then, under a steady load of concurrent
clients in several languages:

1. revision 1 starts cold: every instance at once, a first-use migration, until each served a 200;
2. a deploy: revision 2 starts (K_REVISION ...-00002) while revision 1 still holds its connections;
   once every new instance listens, the front switches the traffic to it;
3. revision 1's instances, idle once their last request is answered, are frozen (SIGSTOP), as
   Cloud Run throttles an instance that has answered: their sessions must end on the server's own
   idle timeout (idle_session_timeout, twice the pool's), with no CPU from them;
4. steady state: from the moment every instance of revision 2 has served a 200 until the end of the
   run, which lasts until revision 1's sessions are gone and as many requests again have been answered.

It checks and prints:
- no 500 (only 200/304, and 503 with Retry-After while migrating), and no 503 at all from the switch on;
- exactly one migration, whatever the number of instances;
- the views counted in Postgres equal the 200 and 304 answers, exactly (both revisions);
- one fact of the day per language across all instances;
- revision 1's sessions ended within the server's idle timeout (plus a margin) after the freeze;
- peak connections of the functions (sampled from pg_stat_activity) within the budget.

It exits 1 when a check fails. bench/tests/test_scaleout.py runs a small version in the suite.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

from devkit.cloudrun.front import Front
from devkit.cloudrun.instances import (
    FUNCTIONS,
    REQUEST_TIMEOUT_S,
    Fleet,
    Instance,
    deployed_environment,
    listening,
    migrations_applied,
    postgres_client_ports,
    served_200,
)
from devkit.cloudrun.scratch_postgres import ConnectionSampler, connect_url, scratch_servers
from devkit.cloudrun.traffic import Answer, Load, request
from devkit.servers.waiting import NotReady, wait_until
from shared.config import POOL_IDLE_TIMEOUT_S
from shared.postgres import SERVER_IDLE_FACTOR

SUPERUSER_RESERVED = 3  # Postgres' default superuser_reserved_connections
REVISIONS = 2  # the deploy's budget holds the old revision's connections and the new one's
# Ordinary roles may connect while fewer than max_connections - 3 connections are open, the
# sampler's own included: 3 superuser_reserved_connections and the sampler.
RESERVE = SUPERUSER_RESERVED + 1
RUN_DEADLINE_S = 300.0
# Revision 1's sessions must end this long after the server's idle timeout at most (a loaded machine).
DRAIN_MARGIN_S = 5.0
TIMELINE = ("deploy", "switch", "freeze", "steady", "end")  # the phases' marks, in seconds from the start


def connection_budget(per_function: int, deployed: dict[str, str]) -> tuple[int, int]:
    """(max_connections, budget): the deploy's arithmetic for two revisions of `per_function`
    instances of each function, with nothing to spare."""
    budget = len(FUNCTIONS) * REVISIONS * per_function * int(deployed["WORKERS"]) * int(deployed["FACTS_POOL_SIZE"])
    return budget + RESERVE, budget


class _Phases:
    """The rehearsal's phases, in order, on one fleet under one steady load; each marks when it
    ended (time.monotonic()) and adds what it found wrong to `failures`."""

    def __init__(self, fleet: Fleet, front: Front, load: Load, sampler: ConnectionSampler, requests: int) -> None:
        self.fleet, self.front, self.load, self.sampler = fleet, front, load, sampler
        self.requests = requests
        self.marks: dict[str, float] = {}
        self.failures: list[str] = []
        self.old: list[Instance] = []
        self.new: list[Instance] = []
        self.ended_after_s: float | None = None

    def answered(self, count: int, since: float = 0.0) -> None:
        assert not self.load.exhausted, "the load ran out of requests or time"
        assert self.load.count(since) >= count, f"{self.load.count(since)} of {count} answers"

    def serve_cold(self, old: list[Instance]) -> None:
        """1. Revision 1, cold, until each instance served a 200 and `requests` were answered."""
        self.old = old
        wait_until(lambda: (served_200(old), self.answered(self.requests)), 120, "revision 1 serving")

    def deploy(self, per_function: int) -> None:
        """2. Revision 2 starts next to revision 1, and takes the traffic once it listens."""
        self.marks["deploy"] = time.monotonic()
        self.new = self.fleet.start_revision(2, per_function)
        self.front.add(self.new)
        wait_until(lambda: listening(self.new), 60, "revision 2 listening")
        self.front.switch_to(2)
        self.marks["switch"] = time.monotonic()
        time.sleep(0.1)  # a request routed just before the switch has counted itself in flight

    def freeze_old(self, postgres_port: int) -> set[int]:
        """3. Revision 1 answers what it has in flight, then is frozen (no CPU from now on); returns
        the client ports of its Postgres sessions."""

        def idle() -> None:
            busy = [i.name for i in self.old if i.in_flight]
            assert not busy, f"requests still in flight on {busy}"

        wait_until(idle, REQUEST_TIMEOUT_S, "revision 1 idle")
        for instance in self.old:
            instance.freeze()
        self.marks["freeze"] = time.monotonic()
        held = postgres_client_ports(self.old, postgres_port)
        if not held:
            self.failures.append("revision 1 held no Postgres connection when frozen: nothing to end")
        return held

    def steady_state(self, held: set[int], server_idle_s: float, languages: list[str]) -> None:
        """4. From every new instance's first 200 until revision 1's sessions are gone and
        `requests` more were answered; then the day's choice in every language, also if every
        answer of one was a 503."""

        def sessions_ended() -> float:
            left = held & self.sampler.current
            assert not left, f"revision 1 still holds {len(left)} sessions"
            return time.monotonic() - self.marks["freeze"]

        wait_until(lambda: served_200(self.new), 60, "revision 2 serving")
        self.marks["steady"] = time.monotonic()
        try:
            self.ended_after_s = wait_until(
                sessions_ended, server_idle_s + DRAIN_MARGIN_S, "revision 1's sessions ended"
            )
        except NotReady as exc:
            self.failures.append(str(exc).splitlines()[0])
        wait_until(lambda: self.answered(self.requests, self.marks["steady"]), 120, "answers in steady state")
        self.load.stop()
        self.load.answers.extend(request(self.front.port, "today", language, None)[0] for language in languages)


def _instance_environment(
    deployed: dict[str, str], app_url: str, redis_url: str, pool_idle_timeout_s: float | None
) -> dict[str, str]:
    env = {**deployed, "DATABASE_URL": app_url, "REDIS_URL": redis_url}
    if pool_idle_timeout_s:
        env["FACTS_POOL_IDLE_TIMEOUT"] = str(pool_idle_timeout_s)
    return env


def _stored(admin_url: str) -> dict[str, Any]:
    """What Postgres holds after the run: the views counted, the migrations, the days' facts."""
    with connect_url(admin_url) as con:
        return {
            "views_counted": int(con.run("SELECT coalesce(sum(views), 0) FROM fact_views")[0][0]),
            "migrations_recorded": int(con.run("SELECT count(*) FROM schema_migrations")[0][0]),
            "daily_facts": {
                row[0]: row[1] for row in con.run("SELECT language, count(*) FROM daily_facts GROUP BY language")
            },
        }


def _today_ids(answers: list[Answer], languages: list[str]) -> dict[str, set[str]]:
    """The facts of the day answered, by language."""
    return {lang: {a.body["fact_id"] for a in answers if a.route == "today" and a.status == 200 and a.body
                   and a.language == lang} for lang in languages}  # fmt: skip


def _figures(phases: _Phases, languages: list[str], stored: dict[str, Any]) -> dict[str, Any]:
    """What the run measured and counted, from its answers, its marks and what Postgres holds."""
    answers, marks = phases.load.answers, phases.marks
    statuses = Counter(a.status for a in answers)
    steady = [a for a in answers if a.started >= marks["steady"]]
    switching = Counter(a.status for a in answers if marks["switch"] <= a.started < marks["steady"])
    ended_after_s = phases.ended_after_s
    return {
        "peak_connections": phases.sampler.peak,
        "connection_samples": phases.sampler.samples,
        "requests": len(answers),
        "statuses": dict(sorted(statuses.items())),
        "steady_requests": len(steady),
        "steady_statuses": dict(sorted(Counter(a.status for a in steady).items())),
        "switching_statuses": dict(sorted(switching.items())),
        "timeline_s": {name: round(marks[name] - marks["start"], 2) for name in TIMELINE},
        "old_sessions_ended_s": round(ended_after_s, 2) if ended_after_s is not None else None,
        "slowest_answer_s": round(max(a.seconds for a in answers), 2),
        "migrations_applied": dict(migrations_applied(phases.fleet.instances)),
        "migrations_recorded": stored["migrations_recorded"],
        "views_counted": stored["views_counted"],
        "views_answered": statuses[200] + statuses[304],
        "daily_facts": stored["daily_facts"],
        "today_fact_ids_answered": {lang: len(ids) for lang, ids in _today_ids(answers, languages).items()},
        "first_200_s": {i.name: round(i.first_200_s or -1, 2) for i in phases.fleet.instances},
    }


def _failed_checks(figures: dict[str, Any], answers: list[Answer], languages: list[str]) -> list[str]:
    """The checks of the module's docstring that the run's figures fail."""
    failures = []
    statuses, steady_statuses = figures["statuses"], figures["steady_statuses"]
    if set(statuses) - {200, 304, 503}:
        failures.append(f"answers other than 200/304/503: {statuses}")
    if set(steady_statuses) - {200, 304}:
        failures.append(f"answers other than 200/304 in steady state: {steady_statuses}")
    switching = figures["switching_statuses"]
    if set(switching) - {200, 304}:  # the new revision's first requests: a budget short of it shows here
        failures.append(f"answers other than 200/304 between the switch and steady state: {switching}")
    bad_503 = [a for a in answers if a.status == 503 and (not a.retry_after or not a.body
               or a.body["error"]["code"] != "database_unavailable")]  # fmt: skip
    if bad_503:
        failures.append(f"{len(bad_503)} 503 answers without Retry-After or database_unavailable")
    applied = figures["migrations_applied"]
    if not applied or any(n != 1 for n in applied.values()):
        failures.append(f"migrations not applied exactly once: {applied}")
    if figures["views_counted"] != figures["views_answered"]:
        failures.append(f"views counted {figures['views_counted']} != 200 and 304 answers {figures['views_answered']}")
    if sorted(figures["daily_facts"].items()) != [(lang, 1) for lang in sorted(languages)]:
        failures.append(f"not one fact of the day per language: {figures['daily_facts']}")
    today_ids = _today_ids(answers, languages)
    if any(len(ids) > 1 for ids in today_ids.values()):
        failures.append(f"different facts of the day answered: {today_ids}")
    if figures["peak_connections"] > figures["budget"]:
        failures.append(f"peak connections {figures['peak_connections']} above the budget {figures['budget']}")
    if figures["slowest_answer_s"] > 10:
        failures.append(f"an answer took {figures['slowest_answer_s']} s (a request must never hang)")
    return failures


def _budget_figures(per_function: int, deployed: dict[str, str], server_idle_s: float) -> dict[str, Any]:
    """The deploy's arithmetic, as the report shows it."""
    max_connections, budget = connection_budget(per_function, deployed)
    return {
        "instances_per_revision": f"{per_function} of each function",
        "workers_threads_pool": f"{deployed['WORKERS']} x {deployed['THREADS']}, pool {deployed['FACTS_POOL_SIZE']}",
        "max_connections": max_connections,
        "budget": budget,
        "instance_connections": int(deployed["WORKERS"]) * int(deployed["FACTS_POOL_SIZE"]),
        "budget_arithmetic": f"{len(FUNCTIONS)} functions x {REVISIONS} revisions x {per_function} x "
        f"{deployed['WORKERS']} workers x pool {deployed['FACTS_POOL_SIZE']}",
        "server_idle_timeout_s": server_idle_s,
    }


def rehearse(
    per_function: int,
    clients: int,
    requests: int,
    languages: list[str],
    logs: Path,
    pool_idle_timeout_s: float | None = None,
) -> tuple[dict[str, Any], list[str]]:
    """Run the deploy rehearsal; returns its figures and the checks that failed (none: it passed).

    `requests`: at least this many answers before the deploy and as many in steady state.
    """
    deployed = deployed_environment()
    budget = _budget_figures(per_function, deployed, SERVER_IDLE_FACTOR * (pool_idle_timeout_s or POOL_IDLE_TIMEOUT_S))
    with scratch_servers(budget["max_connections"]) as (admin_url, app_url, redis_url):
        env = _instance_environment(deployed, app_url, redis_url, pool_idle_timeout_s)
        with ConnectionSampler(admin_url) as sampler, Fleet(env, logs) as fleet:
            started = time.monotonic()
            old = fleet.start_revision(1, per_function)
            bound = max(requests * 40, 20_000)  # a hard cap; the run itself stops far earlier
            with Front(old, started) as front, Load(front.port, clients, languages, bound, RUN_DEADLINE_S) as load:
                phases = _Phases(fleet, front, load, sampler, requests)
                phases.marks["start"] = started
                phases.serve_cold(old)
                phases.deploy(per_function)
                held = phases.freeze_old(urlsplit(app_url).port or 5432)
                phases.steady_state(held, budget["server_idle_timeout_s"], languages)
            phases.marks["end"] = time.monotonic()
        stored = _stored(admin_url)
    figures = {**budget, **_figures(phases, languages, stored)}
    return figures, phases.failures + _failed_checks(figures, load.answers, languages)


def print_report(figures: dict[str, Any], failures: list[str], out: IO[str] = sys.stdout) -> None:
    print("scale-out rehearsal", file=out)
    for key, value in figures.items():
        print(f"  {key:<26} {value}", file=out)
    print("PASSED" if not failures else "FAILED:\n  " + "\n  ".join(failures), file=out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--instances", type=int, default=2, help="instances of each function per revision (default 2)")
    parser.add_argument("--clients", type=int, default=48, help="concurrent clients (default 48)")
    parser.add_argument(
        "--requests", type=int, default=2400, help="answers before the deploy, and again in steady state (default 2400)"
    )
    parser.add_argument("--languages", default="en,de", help="languages asked for (default en,de)")
    parser.add_argument(
        "--pool-idle-timeout", type=float, default=None,
        help=f"FACTS_POOL_IDLE_TIMEOUT for the instances (default: the functions' own, {POOL_IDLE_TIMEOUT_S:g} s)",
    )  # fmt: skip
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="facts-scaleout-logs-") as logs:
        figures, failures = rehearse(
            args.instances, args.clients, args.requests, args.languages.split(","), Path(logs), args.pool_idle_timeout
        )
    print_report(figures, failures)
    if args.json:
        print(json.dumps({**figures, "failures": failures}))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
