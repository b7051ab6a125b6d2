#!/usr/bin/env python3
"""Scale-out rehearsal: what Cloud Run does to the functions, with real processes on loopback.

    python bench/scaleout.py                    # 4 instances of each function, max_connections 26, 2,400 requests
    python bench/scaleout.py --instances 2 --max-connections 12 --clients 16 --requests 240

Several instances of each function are started at once, each by the functions-framework CLI from
the upload set (.gcloudignore) in a virtualenv holding exactly the lock requirements.txt, with
Cloud Run's environment (PORT, K_SERVICE, K_REVISION, FUNCTION_TARGET) and the deploy script's
WORKERS / THREADS / FACTS_POOL_SIZE. A round-robin front on one loopback port routes /random and
/today to their instances (holding a request while its instance starts, as Cloud Run does). The
database is a fresh, empty Postgres started with a small max_connections; the functions connect
as an ordinary role, as on Cloud SQL, so superuser_reserved_connections (3) stay for the sampler
that reads pg_stat_activity. Then a burst of concurrent clients hits both functions in several
languages while every instance is still cold, and the rehearsal checks and prints:

- no 500 (only 200/304, and 503 with Retry-After while migrating or when the budget is spent);
- exactly one migration, whatever the number of instances;
- the views counted in Postgres equal the 200 and 304 answers, exactly;
- one fact of the day per language across all instances;
- peak connections of the functions (sampled from pg_stat_activity) within the budget;
- the time until every instance served its first 200.

It exits 1 when a check fails. tests/test_scaleout.py runs a small version in the suite.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import itertools
import json
import os
import re
import secrets
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit, urlunsplit

import pg8000.native

from devservices.embedded import embedded_servers
from devservices.ports import free_port
from devservices.processes import spawn, terminate
from devservices.waiting import NotReady, wait_until, wait_until_async
from tests.support.deploy_copy import deploy_venv, deployed_copy

ROOT = Path(__file__).resolve().parents[1]
APP_ROLE = "facts_app"
SUPERUSER_RESERVED = 3  # Postgres' default superuser_reserved_connections
FUNCTIONS = {  # route -> (Cloud Run service, target, source)
    "random": ("random-fact", "random_fact", "functions/random_fact.py"),
    "today": ("today-fact", "today_fact", "functions/today_fact.py"),
}
REQUEST_TIMEOUT_S = 20.0
PAUSE_AFTER_503_S = 0.2  # a real client waits Retry-After (2 s); the rehearsal keeps the pressure on


def deployed_environment() -> dict[str, str]:
    """The environment variables deploy/cloud-functions.sh gives the functions (from its dry run)."""
    env = {"PROJECT": "rehearsal", "REGION": "local", "CONNECTOR": "none", "PATH": os.environ.get("PATH", "/usr/bin")}
    out = subprocess.run(
        ["bash", str(ROOT / "deploy" / "cloud-functions.sh"), "--dry-run"],
        capture_output=True, text=True, env=env, timeout=30, check=True,
    ).stdout  # fmt: skip
    for line in out.splitlines():
        argv = shlex.split(line) if line.startswith("gcloud functions deploy") else []
        for arg in argv:
            if arg.startswith("--set-env-vars="):
                return dict(pair.split("=", 1) for pair in arg.removeprefix("--set-env-vars=").split(","))
    raise RuntimeError("deploy/cloud-functions.sh --dry-run printed no --set-env-vars")


@dataclass
class Instance:
    route: str
    index: int
    port: int
    log_path: Path
    revision: int = 1
    process: subprocess.Popen[bytes] | None = None
    first_200_s: float | None = None
    statuses: Counter[int] = field(default_factory=Counter)

    @property
    def name(self) -> str:
        return f"{FUNCTIONS[self.route][0]}-{self.revision:05d}#{self.index}"


def start_instance(
    route: str, index: int, source_root: Path, venv: Path, env: dict[str, str], logs: Path, revision: int = 1
) -> Instance:
    """One instance of the function, started by the functions-framework CLI as Cloud Run starts it;
    everything it writes goes to its log file."""
    service, target, source = FUNCTIONS[route]
    instance = Instance(route, index, free_port(), logs / f"{service}-{revision:05d}-{index}.log", revision)
    environ = {
        **env,
        "PATH": f"{venv}/bin:/usr/bin:/bin",
        "PORT": str(instance.port),
        "K_SERVICE": service,
        "K_REVISION": f"{service}-{revision:05d}-rehearsal",
        "K_CONFIGURATION": service,
        "FUNCTION_TARGET": target,
        "FUNCTION_SIGNATURE_TYPE": "http",
        "FUNCTION_SOURCE": source,
        "FACTS_LOG_FORMAT": "json",
    }
    with open(instance.log_path, "wb") as log:
        instance.process = spawn([str(venv / "bin" / "functions-framework")], log, None, signal.SIGTERM,
                                 env=environ, cwd=source_root)  # fmt: skip
    return instance


class Front:
    """One loopback port; each connection goes to the next instance of its function, round robin.

    Requests are one per connection (Connection: close), so round robin per connection is per
    request. A request for an instance that is not listening yet waits for it (bounded), as Cloud
    Run holds requests for a starting instance.
    """

    def __init__(self, instances: list[Instance], started: float) -> None:
        self.port = free_port()
        self._started = started
        self._cycles = {route: itertools.cycle([i for i in instances if i.route == route]) for route in FUNCTIONS}
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="front", daemon=True)

    def __enter__(self) -> Front:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the front did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", self.port, backlog=512))
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            server.close()
            self._loop.close()

    async def _open(self, instance: Instance) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        # An instance still starting refuses connections: wait for it, as a load balancer would.
        return await wait_until_async(
            lambda: asyncio.open_connection("127.0.0.1", instance.port), 60, f"{instance.name} accepting"
        )

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), REQUEST_TIMEOUT_S)
            path = head.split(b" ", 2)[1]
            instance = next(self._cycles["today" if path.startswith(b"/today") else "random"])
            up_reader, up_writer = await self._open(instance)
            up_writer.write(head)
            await up_writer.drain()
            response = await asyncio.wait_for(up_reader.read(), REQUEST_TIMEOUT_S)
            up_writer.close()
            status = int(response.split(b" ", 2)[1])
            instance.statuses[status] += 1
            if status == 200 and instance.first_200_s is None:
                instance.first_200_s = time.monotonic() - self._started
            writer.write(response)
            await writer.drain()
        except (TimeoutError, OSError, NotReady, asyncio.IncompleteReadError, IndexError, ValueError):
            writer.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        finally:
            with contextlib.suppress(OSError):
                writer.close()


@dataclass
class Answer:
    route: str
    language: str
    status: int
    seconds: float
    retry_after: str | None
    body: dict[str, Any] | None


def request(port: int, route: str, language: str, etag: str | None) -> tuple[Answer, str | None]:
    headers = {"Connection": "close"}
    if etag:
        headers["If-None-Match"] = etag
    began = time.monotonic()
    con = http.client.HTTPConnection("127.0.0.1", port, timeout=REQUEST_TIMEOUT_S)
    try:
        con.request("GET", f"/{route}?language={language}", headers=headers)
        response = con.getresponse()
        raw = response.read()
    finally:
        con.close()
    body = json.loads(raw) if raw and response.getheader("Content-Type", "").startswith("application/json") else None
    answer = Answer(route, language, response.status, time.monotonic() - began, response.getheader("Retry-After"), body)
    return answer, response.getheader("ETag")


def burst(
    port: int,
    clients: int,
    requests: int,
    languages: list[str],
    routes: tuple[str, ...] = tuple(FUNCTIONS),
    deadline_s: float = 180.0,
) -> list[Answer]:
    """`clients` threads share `requests` requests, alternating `routes` and languages; a client
    that saw the day's ETag sends it back every other time (a 304, still a view). No request
    starts after `deadline_s`."""
    answers: list[Answer] = []
    lock = threading.Lock()
    counter = itertools.count()
    start = threading.Barrier(clients)
    end = time.monotonic() + deadline_s

    def client(number: int) -> None:
        etags: dict[str, str] = {}
        start.wait(30)
        for _ in range(requests):  # bounded: at most `requests` for all clients together
            n = next(counter)
            if n >= requests or time.monotonic() > end:
                return
            route = routes[(n + number) % len(routes)]
            language = languages[(n // 2) % len(languages)]
            etag = etags.get(language) if route == "today" and n % 4 == 1 else None
            answer, new_etag = request(port, route, language, etag)
            if route == "today" and new_etag:
                etags[language] = new_etag
            with lock:
                answers.append(answer)
            if answer.status == 503:
                time.sleep(PAUSE_AFTER_503_S)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(0.0, end - time.monotonic()) + REQUEST_TIMEOUT_S + 1)
    return answers


class ConnectionSampler:
    """The functions' connections (the app role's backends) sampled from pg_stat_activity."""

    def __init__(self, admin_url: str, interval_s: float = 0.02) -> None:
        self._admin_url = admin_url
        self._interval_s = interval_s
        self._stop = threading.Event()
        self.peak = 0
        self.samples = 0
        self._thread = threading.Thread(target=self._sample, name="pg-sampler", daemon=True)

    def __enter__(self) -> ConnectionSampler:
        # A superuser, so it can always connect; but it counts in the total like any connection.
        self._con = connect_url(self._admin_url)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)
        self._con.close()

    def _sample(self) -> None:
        query = "SELECT count(*) FROM pg_stat_activity WHERE usename = :role AND backend_type = 'client backend'"
        while not self._stop.wait(self._interval_s):
            self.peak = max(self.peak, int(self._con.run(query, role=APP_ROLE)[0][0]))
            self.samples += 1


def connect_url(url: str) -> pg8000.native.Connection:
    parts = urlsplit(url)
    return pg8000.native.Connection(
        parts.username or "postgres", host=parts.hostname or "127.0.0.1", port=parts.port or 5432,
        password=parts.password, database=parts.path.lstrip("/"), timeout=30,
    )  # fmt: skip


def with_user(url: str, user: str, password: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, f"{user}:{password}@{parts.hostname}:{parts.port}", parts.path, "", ""))


@contextlib.contextmanager
def fresh_servers(max_connections: int) -> Iterator[tuple[str, str, str]]:
    """An empty Postgres allowing `max_connections` (and Redis): (admin URL, app URL, Redis URL).

    The app role owns the database (it migrates) but is not a superuser, as on Cloud SQL.
    """
    with tempfile.TemporaryDirectory(prefix="facts-scaleout-") as folder:
        Path(folder).chmod(0o755)  # the unprivileged server user (when we are root) must enter it
        with embedded_servers(Path(folder), durable=False, max_connections=max_connections) as provided:
            password = secrets.token_hex(12)
            with connect_url(provided.database_url) as con:
                con.run(f"CREATE ROLE {APP_ROLE} LOGIN PASSWORD {pg8000.native.literal(password)}")
                con.run(f"ALTER DATABASE facts OWNER TO {APP_ROLE}")
            yield provided.database_url, with_user(provided.database_url, APP_ROLE, password), provided.redis_url


@contextlib.contextmanager
def instances_of_both(per_function: int, env: dict[str, str], logs: Path) -> Iterator[tuple[list[Instance], float]]:
    """`per_function` instances of each function, all starting now, from the upload set; stopped after."""
    source_root = deployed_copy(logs / "upload")
    venv = deploy_venv()
    started = time.monotonic()
    instances = [
        start_instance(route, index, source_root, venv, env, logs)
        for index in range(per_function)
        for route in FUNCTIONS
    ]
    try:
        yield instances, started
    finally:
        for instance in instances:
            terminate(instance.process, signal.SIGTERM)


def migrations_applied(instances: list[Instance]) -> Counter[str]:
    """How often each migration was applied, from the instances' logs."""
    applied: Counter[str] = Counter()
    for instance in instances:
        for line in instance.log_path.read_text(errors="replace").splitlines():
            found = re.search(r"applying migration (\w+)", line)
            if found:
                applied[found.group(1)] += 1
    return applied


def rehearse(
    per_function: int, max_connections: int, clients: int, requests: int, languages: list[str], logs: Path
) -> tuple[dict[str, Any], list[str]]:
    """Run the rehearsal; returns its figures and the checks that failed (none: it passed)."""
    deployed = deployed_environment()
    # Ordinary roles may connect while fewer than max_connections - 3 connections are open, the
    # sampler's own included.
    budget = max_connections - SUPERUSER_RESERVED - 1
    with fresh_servers(max_connections) as (admin_url, app_url, redis_url):
        env = {**deployed, "DATABASE_URL": app_url, "REDIS_URL": redis_url}
        with (
            ConnectionSampler(admin_url) as sampler,
            instances_of_both(per_function, env, logs) as (instances, started),
            Front(instances, started) as front,
        ):
            answers = burst(front.port, clients, requests, languages)
            burst_s = time.monotonic() - started

            # Then keep asking, at a client's pace, until every instance has served a 200 (bounded).
            def every_instance_served() -> None:
                for instance in instances:
                    if instance.first_200_s is None:
                        assert instance.process is not None and instance.process.poll() is None, instance.name
                        answers.append(request(front.port, instance.route, languages[0], None)[0])
                waiting = [i.name for i in instances if i.first_200_s is None]
                assert not waiting, f"no 200 yet from {waiting}"

            wait_until(every_instance_served, 120, "a 200 from every instance")
            # The day's choice in every language, also when the burst met only cold instances (on a
            # loaded machine every answer of the burst can be a 503): one each, whoever made it.
            answers.extend(request(front.port, "today", language, None)[0] for language in languages)
            peak = sampler.peak
            samples = sampler.samples
        with connect_url(admin_url) as con:
            views = int(con.run("SELECT coalesce(sum(views), 0) FROM fact_views")[0][0])
            migrations_recorded = int(con.run("SELECT count(*) FROM schema_migrations")[0][0])
            daily = con.run("SELECT language, count(*), min(fact_id) FROM daily_facts GROUP BY language")
    statuses = Counter(a.status for a in answers)
    applied = migrations_applied(instances)
    today_ids = {lang: {a.body["fact_id"] for a in answers if a.route == "today" and a.status == 200 and a.body
                        and a.language == lang} for lang in languages}  # fmt: skip
    figures: dict[str, Any] = {
        "instances": len(instances),
        "workers_threads_pool": f"{deployed['WORKERS']} x {deployed['THREADS']}, pool {deployed['FACTS_POOL_SIZE']}",
        "max_connections": max_connections,
        "budget": budget,
        "peak_connections": peak,
        "connection_samples": samples,
        "requests": len(answers),
        "statuses": dict(sorted(statuses.items())),
        "burst_s": round(burst_s, 2),
        "slowest_answer_s": round(max(a.seconds for a in answers), 2),
        "migrations_applied": dict(applied),
        "migrations_recorded": migrations_recorded,
        "views_counted": views,
        "views_answered": statuses[200] + statuses[304],
        "daily_facts": {row[0]: row[1] for row in daily},
        "today_fact_ids_answered": {lang: len(ids) for lang, ids in today_ids.items()},
        "first_200_s": {i.name: round(i.first_200_s or -1, 2) for i in instances},
        "all_served_first_200_s": round(max(i.first_200_s or 0 for i in instances), 2),
    }
    failures = []
    if set(statuses) - {200, 304, 503}:
        failures.append(f"answers other than 200/304/503: {dict(statuses)}")
    bad_503 = [a for a in answers if a.status == 503 and (not a.retry_after or not a.body
               or a.body["error"]["code"] != "database_unavailable")]  # fmt: skip
    if bad_503:
        failures.append(f"{len(bad_503)} 503 answers without Retry-After or database_unavailable")
    if not applied or any(n != 1 for n in applied.values()):
        failures.append(f"migrations not applied exactly once: {dict(applied)}")
    if views != figures["views_answered"]:
        failures.append(f"views counted {views} != 200 and 304 answers {figures['views_answered']}")
    if sorted(figures["daily_facts"].items()) != [(lang, 1) for lang in sorted(languages)]:
        failures.append(f"not one fact of the day per language: {figures['daily_facts']}")
    if any(len(ids) > 1 for ids in today_ids.values()):
        failures.append(f"different facts of the day answered: {today_ids}")
    if peak > budget:
        failures.append(f"peak connections {peak} above the budget {budget}")
    if figures["slowest_answer_s"] > 10:
        failures.append(f"an answer took {figures['slowest_answer_s']} s (a request must never hang)")
    return figures, failures


def print_report(figures: dict[str, Any], failures: list[str], out: IO[str] = sys.stdout) -> None:
    print("scale-out rehearsal", file=out)
    for key, value in figures.items():
        print(f"  {key:<26} {value}", file=out)
    print("PASSED" if not failures else "FAILED:\n  " + "\n  ".join(failures), file=out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--instances", type=int, default=4, help="instances of each function (default 4)")
    parser.add_argument("--max-connections", type=int, default=26, help="Postgres max_connections (default 26)")
    parser.add_argument("--clients", type=int, default=48, help="concurrent clients (default 48)")
    parser.add_argument("--requests", type=int, default=2400, help="requests in the burst (default 2400)")
    parser.add_argument("--languages", default="en,de", help="languages asked for (default en,de)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="facts-scaleout-logs-") as logs:
        figures, failures = rehearse(
            args.instances, args.max_connections, args.clients, args.requests, args.languages.split(","), Path(logs)
        )
    print_report(figures, failures)
    if args.json:
        print(json.dumps({**figures, "failures": failures}))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
