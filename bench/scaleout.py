#!/usr/bin/env python3
"""Scale-out and deploy rehearsal: what Cloud Run does to the functions, with real processes on loopback.

    python bench/scaleout.py                    # 2 instances of each function per revision, 2,400 requests
    python bench/scaleout.py --instances 1 --clients 16 --requests 240 --pool-idle-timeout 1

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
import socket
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

from devkit.embedded import embedded_servers
from devkit.ports import free_port
from devkit.processes import descendants, spawn, terminate
from devkit.waiting import NotReady, wait_until, wait_until_async
from shared.config import POOL_IDLE_TIMEOUT_S
from shared.postgres import SERVER_IDLE_FACTOR
from tests.support.deploy_copy import deploy_venv, deployed_copy

ROOT = Path(__file__).resolve().parents[1]
APP_ROLE = "facts_app"
SUPERUSER_RESERVED = 3  # Postgres' default superuser_reserved_connections
FUNCTIONS = {  # route -> (Cloud Run service, target, source)
    "random": ("random-fact", "random_fact", "functions/random_fact.py"),
    "today": ("today-fact", "today_fact", "functions/today_fact.py"),
}
REVISIONS = 2  # the deploy's budget holds the old revision's connections and the new one's
# Ordinary roles may connect while fewer than max_connections - 3 connections are open, the
# sampler's own included: 3 superuser_reserved_connections and the sampler.
RESERVE = SUPERUSER_RESERVED + 1
RUN_DEADLINE_S = 300.0
# Revision 1's sessions must end this long after the server's idle timeout at most (a loaded machine).
DRAIN_MARGIN_S = 5.0
REQUEST_TIMEOUT_S = 20.0
PAUSE_AFTER_503_S = 0.2  # a real client waits Retry-After (2 s); the rehearsal keeps the pressure on


def deployed_environment() -> dict[str, str]:
    """The environment variables deploy/cloud-functions.sh gives the functions (from its dry run)."""
    with tempfile.TemporaryDirectory(prefix="facts-dry-run-") as scratch:
        env = {
            "PROJECT": "rehearsal",
            "REGION": "local",
            "CONNECTOR": "none",  # the connector form's one required setting; ignored by the others
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "CLOUDSDK_CONFIG": str(Path(scratch) / "gcloud"),  # gcloud (staging the uploads) asks nothing
            "STAGE_DIR": str(Path(scratch) / "stage"),
        }
        out = subprocess.run(
            ["bash", str(ROOT / "deploy" / "cloud-functions.sh"), "--dry-run"],
            capture_output=True, text=True, env=env, timeout=120, check=True,
        ).stdout  # fmt: skip
    for line in out.splitlines():
        # A function's deploy line (gcloud functions deploy or gcloud run deploy --function): the
        # one with --max-instances, which the migration job's line has not.
        argv = shlex.split(line) if line.startswith("gcloud ") and "--max-instances=" in line else []
        for arg in argv:
            if arg.startswith("--set-env-vars="):
                return dict(pair.split("=", 1) for pair in arg.removeprefix("--set-env-vars=").split(","))
    raise RuntimeError("deploy/cloud-functions.sh --dry-run printed no function deploy with --set-env-vars")


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
    in_flight: int = 0  # requests the front has sent it and not yet answered
    frozen: bool = False

    def freeze(self) -> None:
        """SIGSTOP to its process group (the arbiter and gunicorn's workers), as Cloud Run throttles."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGSTOP)
        self.frozen = True

    def thaw(self) -> None:
        if self.process is not None and self.frozen:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGCONT)
        self.frozen = False

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
    """One loopback port; each connection goes to the next instance of its function in the revision
    that takes the traffic, round robin.

    Requests are one per connection (Connection: close), so round robin per connection is per
    request. A request for an instance that is not listening yet waits for it (bounded), as Cloud
    Run holds requests for a starting instance.
    """

    def __init__(self, instances: list[Instance], started: float) -> None:
        self.port = free_port()
        self._started = started
        self._cycles: dict[tuple[str, int], Iterator[Instance]] = {}
        self.revision = min((i.revision for i in instances), default=1)
        self.add(instances)
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="front", daemon=True)

    def add(self, instances: list[Instance]) -> None:
        """Instances of a new revision; they get traffic once switch_to names their revision."""
        for route in FUNCTIONS:
            for revision in {i.revision for i in instances}:
                members = [i for i in instances if i.route == route and i.revision == revision]
                if members:
                    self._cycles[route, revision] = itertools.cycle(members)

    def switch_to(self, revision: int) -> None:
        """Every request from now on goes to `revision` (those in flight finish where they are)."""
        self.revision = revision

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
        instance: Instance | None = None
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), REQUEST_TIMEOUT_S)
            path = head.split(b" ", 2)[1]
            instance = next(self._cycles["today" if path.startswith(b"/today") else "random", self.revision])
            instance.in_flight += 1  # in the same step as the choice: no await in between
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
            if instance is not None:
                instance.in_flight -= 1
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
    started: float = 0.0  # time.monotonic() when it was sent


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
    answer = Answer(
        route, language, response.status, time.monotonic() - began, response.getheader("Retry-After"), body, began
    )
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


class Load:
    """`clients` threads asking without pause, alternating the functions and `languages`, from
    entering the block until stop() (or leaving it); bounded by `max_requests` and `deadline_s`
    whatever happens. A client that saw the day's ETag sends it back every other time (a 304,
    still a view)."""

    def __init__(self, port: int, clients: int, languages: list[str], max_requests: int, deadline_s: float) -> None:
        self._port, self._clients, self._languages = port, clients, languages
        self._max_requests, self._deadline_s = max_requests, deadline_s
        self.answers: list[Answer] = []
        self._lock = threading.Lock()
        self._counter = itertools.count()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._client, args=(n,), daemon=True) for n in range(clients)]

    def __enter__(self) -> Load:
        self._end = time.monotonic() + self._deadline_s
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(REQUEST_TIMEOUT_S + 1)

    @property
    def exhausted(self) -> bool:
        """Whether the load ended by its bounds rather than by stop()."""
        return not self._stop.is_set() and not any(t.is_alive() for t in self._threads)

    def count(self, since: float = 0.0) -> int:
        with self._lock:
            return sum(1 for a in self.answers if a.started >= since)

    def _client(self, number: int) -> None:
        etags: dict[str, str] = {}
        routes = tuple(FUNCTIONS)
        while not self._stop.is_set() and time.monotonic() < self._end:
            n = next(self._counter)
            if n >= self._max_requests:
                return
            route = routes[(n + number) % len(routes)]
            language = self._languages[(n // 2) % len(self._languages)]
            etag = etags.get(language) if route == "today" and n % 4 == 1 else None
            try:
                answer, new_etag = request(self._port, route, language, etag)
            except OSError as exc:  # the front itself failed: recorded as such, never hidden
                answer, new_etag = Answer(route, language, 599, 0.0, None, {"error": str(exc)}, time.monotonic()), None
            if route == "today" and new_etag:
                etags[language] = new_etag
            with self._lock:
                self.answers.append(answer)
            if answer.status == 503:
                time.sleep(PAUSE_AFTER_503_S)


class ConnectionSampler:
    """The functions' connections (the app role's backends) sampled from pg_stat_activity."""

    def __init__(self, admin_url: str, interval_s: float = 0.02) -> None:
        self._admin_url = admin_url
        self._interval_s = interval_s
        self._stop = threading.Event()
        self.peak = 0
        self.samples = 0
        # The client ports of the backends in the latest sample: the instances' ends of the sessions.
        self.current: frozenset[int] = frozenset()
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
        query = "SELECT client_port FROM pg_stat_activity WHERE usename = :role AND backend_type = 'client backend'"
        while not self._stop.wait(self._interval_s):
            ports = frozenset(int(row[0]) for row in self._con.run(query, role=APP_ROLE))
            self.current = ports
            self.peak = max(self.peak, len(ports))
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
    with Fleet(env, logs) as fleet:
        started = time.monotonic()
        yield fleet.start_revision(1, per_function), started


class Fleet:
    """The instances of every revision, started from one upload set; all thawed and stopped on exit."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self._env, self._logs = env, logs
        self.instances: list[Instance] = []

    def __enter__(self) -> Fleet:
        self._source_root = deployed_copy(self._logs / "upload")
        self._venv = deploy_venv()
        return self

    def start_revision(self, revision: int, per_function: int) -> list[Instance]:
        """`per_function` instances of each function with K_REVISION of `revision`, all starting now."""
        started = [
            start_instance(route, index, self._source_root, self._venv, self._env, self._logs, revision)
            for index in range(per_function)
            for route in FUNCTIONS
        ]
        self.instances += started
        return started

    def __exit__(self, *exc: object) -> None:
        for instance in self.instances:
            instance.thaw()  # a frozen process ignores SIGTERM until thawed
        for instance in self.instances:
            terminate(instance.process, signal.SIGTERM, whole_group=True)


def postgres_client_ports(instances: list[Instance], postgres_port: int) -> set[int]:
    """The local ports of the TCP connections to `postgres_port` held by the instances' processes
    (each one's process group: the arbiter and its workers), as pg_stat_activity.client_port names
    them; read from /proc (Linux)."""
    inodes: set[str] = set()
    for instance in instances:
        assert instance.process is not None
        for pid in [instance.process.pid, *descendants(instance.process.pid)]:
            with contextlib.suppress(OSError):  # a process that ended meanwhile holds nothing
                for fd in Path(f"/proc/{pid}/fd").iterdir():
                    with contextlib.suppress(OSError):
                        target = os.readlink(fd)
                        if target.startswith("socket:["):
                            inodes.add(target[len("socket:[") : -1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as rows:
            for row in itertools.islice(rows, 1, None):
                fields = row.split()
                local, remote, inode = fields[1], fields[2], fields[9]
                if inode in inodes and int(remote.rsplit(":", 1)[1], 16) == postgres_port:
                    ports.add(int(local.rsplit(":", 1)[1], 16))
    return ports


def listening(instances: list[Instance]) -> None:
    """Raises until every instance accepts connections (Cloud Run's default TCP startup probe)."""
    for instance in instances:
        assert instance.process is not None and instance.process.poll() is None, f"{instance.name} exited"
        socket.create_connection(("127.0.0.1", instance.port), timeout=1).close()


def served_200(instances: list[Instance]) -> None:
    """Raises until every instance has answered a 200 through the front."""
    waiting = [i.name for i in instances if i.first_200_s is None]
    assert not waiting, f"no 200 yet from {waiting}"


def migrations_applied(instances: list[Instance]) -> Counter[str]:
    """How often each migration was applied, from the instances' logs."""
    applied: Counter[str] = Counter()
    for instance in instances:
        for line in instance.log_path.read_text(errors="replace").splitlines():
            found = re.search(r"applying migration (\w+)", line)
            if found:
                applied[found.group(1)] += 1
    return applied


def connection_budget(per_function: int, deployed: dict[str, str]) -> tuple[int, int]:
    """(max_connections, budget): the deploy's arithmetic for two revisions of `per_function`
    instances of each function, with nothing to spare."""
    budget = len(FUNCTIONS) * REVISIONS * per_function * int(deployed["WORKERS"]) * int(deployed["FACTS_POOL_SIZE"])
    return budget + RESERVE, budget


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
    max_connections, budget = connection_budget(per_function, deployed)
    idle_s = pool_idle_timeout_s or POOL_IDLE_TIMEOUT_S
    server_idle_s = SERVER_IDLE_FACTOR * idle_s
    marks: dict[str, float] = {}
    failures: list[str] = []
    with fresh_servers(max_connections) as (admin_url, app_url, redis_url):
        env = {**deployed, "DATABASE_URL": app_url, "REDIS_URL": redis_url}
        if pool_idle_timeout_s:
            env["FACTS_POOL_IDLE_TIMEOUT"] = str(pool_idle_timeout_s)
        with ConnectionSampler(admin_url) as sampler, Fleet(env, logs) as fleet:
            started = marks["start"] = time.monotonic()
            old = fleet.start_revision(1, per_function)
            bound = max(requests * 40, 20_000)  # a hard cap; the run itself stops far earlier
            with Front(old, started) as front, Load(front.port, clients, languages, bound, RUN_DEADLINE_S) as load:

                def answered(count: int, since: float = 0.0) -> None:
                    assert not load.exhausted, "the load ran out of requests or time"
                    assert load.count(since) >= count, f"{load.count(since)} of {count} answers"

                # 1. Revision 1, cold, until each instance served a 200 and `requests` were answered.
                wait_until(lambda: (served_200(old), answered(requests)), 120, "revision 1 serving")
                # 2. The deploy: revision 2 starts next to it, and takes the traffic once it listens.
                marks["deploy"] = time.monotonic()
                new = fleet.start_revision(2, per_function)
                front.add(new)
                wait_until(lambda: listening(new), 60, "revision 2 listening")
                front.switch_to(2)
                marks["switch"] = time.monotonic()
                time.sleep(0.1)  # a request routed just before the switch has counted itself in flight

                # 3. Revision 1 answers what it has in flight, then is frozen (no CPU from now on).
                def idle() -> None:
                    busy = [i.name for i in old if i.in_flight]
                    assert not busy, f"requests still in flight on {busy}"

                wait_until(idle, REQUEST_TIMEOUT_S, "revision 1 idle")
                for instance in old:
                    instance.freeze()
                marks["freeze"] = time.monotonic()
                held = postgres_client_ports(old, urlsplit(app_url).port or 5432)
                if not held:
                    failures.append("revision 1 held no Postgres connection when frozen: nothing to end")

                def sessions_ended() -> float:
                    left = held & sampler.current
                    assert not left, f"revision 1 still holds {len(left)} sessions"
                    return time.monotonic() - marks["freeze"]

                # 4. Steady state: every new instance served a 200; run until revision 1's sessions are
                # gone and `requests` more were answered.
                wait_until(lambda: served_200(new), 60, "revision 2 serving")
                marks["steady"] = time.monotonic()
                ended_after_s: float | None = None
                try:
                    ended_after_s = wait_until(
                        sessions_ended, server_idle_s + DRAIN_MARGIN_S, "revision 1's sessions ended"
                    )
                except NotReady as exc:
                    failures.append(str(exc).splitlines()[0])
                wait_until(lambda: answered(requests, marks["steady"]), 120, "answers in steady state")
                load.stop()
                # The day's choice in every language, also if every answer of one was a 503.
                load.answers.extend(request(front.port, "today", language, None)[0] for language in languages)
            marks["end"] = time.monotonic()
            peak, samples = sampler.peak, sampler.samples
        with connect_url(admin_url) as con:
            views = int(con.run("SELECT coalesce(sum(views), 0) FROM fact_views")[0][0])
            migrations_recorded = int(con.run("SELECT count(*) FROM schema_migrations")[0][0])
            daily = con.run("SELECT language, count(*), min(fact_id) FROM daily_facts GROUP BY language")
    answers = load.answers
    steady = [a for a in answers if a.started >= marks["steady"]]
    statuses = Counter(a.status for a in answers)
    steady_statuses = Counter(a.status for a in steady)
    switching_statuses = Counter(a.status for a in answers if marks["switch"] <= a.started < marks["steady"])
    applied = migrations_applied(fleet.instances)
    today_ids = {lang: {a.body["fact_id"] for a in answers if a.route == "today" and a.status == 200 and a.body
                        and a.language == lang} for lang in languages}  # fmt: skip
    since = {name: round(marks[name] - started, 2) for name in ("deploy", "switch", "freeze", "steady", "end")}
    figures: dict[str, Any] = {
        "instances_per_revision": f"{per_function} of each function",
        "workers_threads_pool": f"{deployed['WORKERS']} x {deployed['THREADS']}, pool {deployed['FACTS_POOL_SIZE']}",
        "max_connections": max_connections,
        "budget": budget,
        "instance_connections": int(deployed["WORKERS"]) * int(deployed["FACTS_POOL_SIZE"]),
        "budget_arithmetic": f"{len(FUNCTIONS)} functions x {REVISIONS} revisions x {per_function} x "
        f"{deployed['WORKERS']} workers x pool {deployed['FACTS_POOL_SIZE']}",
        "peak_connections": peak,
        "connection_samples": samples,
        "requests": len(answers),
        "statuses": dict(sorted(statuses.items())),
        "steady_requests": len(steady),
        "steady_statuses": dict(sorted(steady_statuses.items())),
        "switching_statuses": dict(sorted(switching_statuses.items())),
        "timeline_s": since,
        "server_idle_timeout_s": server_idle_s,
        "old_sessions_ended_s": round(ended_after_s, 2) if ended_after_s is not None else None,
        "slowest_answer_s": round(max(a.seconds for a in answers), 2),
        "migrations_applied": dict(applied),
        "migrations_recorded": migrations_recorded,
        "views_counted": views,
        "views_answered": statuses[200] + statuses[304],
        "daily_facts": {row[0]: row[1] for row in daily},
        "today_fact_ids_answered": {lang: len(ids) for lang, ids in today_ids.items()},
        "first_200_s": {i.name: round(i.first_200_s or -1, 2) for i in fleet.instances},
    }
    if set(statuses) - {200, 304, 503}:
        failures.append(f"answers other than 200/304/503: {dict(statuses)}")
    if set(steady_statuses) - {200, 304}:
        failures.append(f"answers other than 200/304 in steady state: {dict(steady_statuses)}")
    if set(switching_statuses) - {200, 304}:  # the new revision's first requests: a budget short of it shows here
        failures.append(f"answers other than 200/304 between the switch and steady state: {dict(switching_statuses)}")
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
