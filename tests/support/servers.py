"""Session fixtures for each xdist worker's own servers: `servers`, `db`, `redis_client` and
`seeded_counts`, with the worker's janitor in the session's stash (WORKER_JANITOR) for the autouse
`clean_state`; and `empty_postgres`, a new database of a test's own with no schema yet, on a server
of the worker's own.

Loaded by tests/conftest.py through `pytest_plugins`."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pg8000.native
import pytest
import redis

from devkit.cloudrun.scratch_postgres import connect_url, scratch_servers, with_user
from devkit.servers import (
    AUTO_RULE,
    SERVER_KINDS,
    Servers,
    ServerStartError,
    renamed_warning,
    resolve_kind,
    start_servers,
)
from devkit.servers.embedded import postgres_bin_dir
from devkit.servers.external import TEST_URL_VARIABLES, configured_urls
from shared import instance
from shared.config import parse_database_url
from shared.postgres import connect, is_connection_lost

from .janitor import Janitor, baseline
from .scratch import scratch_dir

SERVERS_OPTION = "--servers"
SERVERS_ENV = "FACTS_TEST_SERVERS"
OLD_OPTION, OLD_ENV = "--services", "FACTS_TEST_SERVICES"  # the last release's names (devkit.RENAMED)


def chosen_kind(option: str | None, **resolve_options: Any) -> str:
    """The kind `--servers` (None when not given) or $FACTS_TEST_SERVERS asks for, `auto` resolved.
    The last release's $FACTS_TEST_SERVICES still counts when the new variable is not set."""
    kind = option or os.environ.get(SERVERS_ENV) or os.environ.get(OLD_ENV) or "auto"
    return resolve_kind(kind, urls_set=configured_urls(TEST_URL_VARIABLES) is not None, **resolve_options)


def option_value(config: pytest.Config) -> str | None:
    """`--servers`, else the deprecated `--services`."""
    return config.getoption(SERVERS_OPTION) or config.getoption(OLD_OPTION)


def worker_name() -> str:
    # xdist's own name for this worker (gw0, gw1, ...); also set without its worker_id fixture,
    # which `pytest -p no:xdist` would not have.
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


# Where the servers fixture leaves its worker's start-up figures for the session's summary.
SERVERS_REPORT = pytest.StashKey[dict[str, Any]]()
# Where it leaves the worker's janitor, for tests/conftest.py's clean_state: set before any test
# that uses the servers runs its function-scoped fixtures, since pytest sets up a session's first.
WORKER_JANITOR = pytest.StashKey[Janitor]()


@pytest.fixture(scope="session")
def servers(request: pytest.FixtureRequest) -> Iterator[Servers]:
    """This worker's own Postgres and Redis, migrated, with the functions' environment set."""
    config = request.config
    kind = chosen_kind(option_value(config))
    worker = worker_name()
    with (
        pytest.MonkeyPatch.context() as environment,
        scratch_dir(worker) as scratch,
        start_servers(kind, scratch, durable=False, namespace=worker) as servers,
    ):
        for name, value in servers.environ().items():
            environment.setenv(name, value)
        instance.reset()
        instance.state()  # migrate and seed once per worker
        report = {"worker": worker, "kind": servers.kind, "startup_s": round(servers.startup_s, 2),
                  "description": servers.description}  # fmt: skip
        config.stash[SERVERS_REPORT] = report
        database = WorkerDatabase(servers.database_url)
        cache = redis.Redis.from_url(servers.redis_url, decode_responses=True)
        config.stash[WORKER_JANITOR] = Janitor(database, cache, servers.cache_prefix, baseline(database))
        try:
            yield servers
        finally:
            instance.reset()
            cache.close()
            database.close()


@pytest.fixture(autouse=True)
def clean_state(request: pytest.FixtureRequest) -> None:
    """Tests that touch the servers start from the seeded state, whatever ran before on this worker.
    Their session fixture `servers` is set up before any function-scoped one (pytest sets up the
    wider scopes first), so its janitor is already in the stash; other tests start no servers."""
    if "servers" in request.fixturenames:
        request.config.stash[WORKER_JANITOR].reset()


class WorkerDatabase:
    """The test's own connection, to look at what the functions wrote.

    Fault tests restart the server under it, so a dropped connection is re-made once, quietly.
    """

    __test__ = False  # a helper, not a test class, despite its name

    def __init__(self, url: str) -> None:
        self._settings = parse_database_url(url)
        self._con = connect(self._settings, 5.0, statement_timeout_ms=None)

    def run(self, sql: str, **params: Any) -> Any:
        try:
            return self._con.run(sql, **params)
        except Exception as exc:
            if not is_connection_lost(exc):
                raise
        self.close()
        self._con = connect(self._settings, 5.0, statement_timeout_ms=None)
        return self._con.run(sql, **params)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._con.close()


@pytest.fixture(scope="session")
def db(servers: Servers, request: pytest.FixtureRequest) -> WorkerDatabase:
    """The worker's own connection to its database (the janitor's)."""
    database = request.config.stash[WORKER_JANITOR].db
    assert isinstance(database, WorkerDatabase)
    return database


@pytest.fixture(scope="session")
def redis_client(servers: Servers, request: pytest.FixtureRequest) -> redis.Redis:
    """The worker's own Redis client, answers decoded (the janitor's)."""
    return request.config.stash[WORKER_JANITOR].cache


@pytest.fixture(scope="session")
def seeded_counts(servers: Servers, request: pytest.FixtureRequest) -> dict[str, int]:
    """Facts per language right after seeding, which every test that uses the servers starts from."""
    return request.config.stash[WORKER_JANITOR].seeded_counts


@pytest.fixture(scope="session")
def empty_postgres_server() -> Iterator[tuple[str, str, str]]:
    """This worker's server for `empty_postgres`, started on first use: (admin URL, app URL, Redis URL).
    One server for all its tests: a server start costs a second or more, a database milliseconds."""
    try:
        postgres_bin_dir()
    except ServerStartError as exc:
        pytest.skip(f"needs PostgreSQL server binaries to start an empty server: {exc}")
    with scratch_servers(max_connections=20) as urls:
        yield urls


@pytest.fixture
def empty_postgres(empty_postgres_server: tuple[str, str, str]) -> Iterator[tuple[str, str, str]]:
    """(admin URL, app URL, Redis URL) of a new database of the test's own, with no schema yet, on
    a server of its worker's own. The app role is the test's own too (tests change a role's
    settings, which outlive a database), owns the database, and is not a superuser, as on Cloud
    SQL. Both are dropped after the test, and its Redis emptied."""
    admin_url, _, redis_url = empty_postgres_server
    name, password = f"facts_{secrets.token_hex(6)}", secrets.token_hex(12)
    with connect_url(admin_url) as admin:
        admin.run(f"CREATE ROLE {name} LOGIN PASSWORD {pg8000.native.literal(password)}")
        admin.run(f'CREATE DATABASE "{name}" OWNER {name}')
    try:
        app_url = with_user(_on_database(admin_url, name), name, password)
        yield _on_database(admin_url, name), app_url, redis_url
    finally:
        with connect_url(admin_url) as admin:
            admin.run(f'DROP DATABASE "{name}" WITH (FORCE)')  # a test's own connections may outlive it
            admin.run(f"DROP ROLE {name}")
        with redis.Redis.from_url(redis_url) as cache:
            cache.flushall()


def _on_database(url: str, database: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{database}"))


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        SERVERS_OPTION,
        choices=SERVER_KINDS,
        default=None,
        help=f"where each worker's Postgres and Redis come from (default: ${SERVERS_ENV} or auto; {AUTO_RULE}; "
        f"the URLs: {' and '.join(TEST_URL_VARIABLES)})",
    )
    parser.addoption(OLD_OPTION, choices=SERVER_KINDS, default=None, help=f"deprecated: {renamed_warning(OLD_OPTION)}")


_REPORTS = pytest.StashKey[list[dict[str, Any]]]()


# --- the report: which kind of servers each worker used and how long its servers took to start ---


def pytest_sessionfinish(session: pytest.Session) -> None:
    report = session.config.stash.get(SERVERS_REPORT, None)
    if report and hasattr(session.config, "workeroutput"):
        session.config.workeroutput["facts_servers"] = report  # type: ignore[attr-defined]
    elif report:
        session.config.stash.setdefault(_REPORTS, []).append(report)


class _WorkerReports:
    """Collects the workers' reports on the controller; a hook that exists only when xdist is loaded."""

    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        report = getattr(node, "workeroutput", {}).get("facts_servers")
        if report:
            node.config.stash.setdefault(_REPORTS, []).append(report)


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption(OLD_OPTION):
        config.issue_config_time_warning(FutureWarning(renamed_warning(OLD_OPTION)), stacklevel=2)
    if os.environ.get(OLD_ENV) and not os.environ.get(SERVERS_ENV):
        config.issue_config_time_warning(FutureWarning(renamed_warning(OLD_ENV)), stacklevel=2)
    # Registered only with xdist: `pytest -p no:xdist` would otherwise stop at an unknown hook.
    if config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(_WorkerReports(), "facts-worker-reports")


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    reports = sorted(config.stash.get(_REPORTS, []), key=lambda r: r["worker"])
    if not reports:
        return
    terminalreporter.section("servers per worker")
    for r in reports:
        terminalreporter.write_line(
            f"{r['worker']}: {r['kind']}, started in {r['startup_s']:.2f} s — {r['description']}"
        )
