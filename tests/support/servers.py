"""Session fixtures for each xdist worker's own servers: `servers`, `db` and `redis_client`; and
`empty_postgres`, a new database of a test's own with no schema yet, on a server of the worker's own.

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

from bench import scaleout
from devservices import AUTO_RULE, KINDS, ProvidedServers, provide, resolve_kind
from devservices.embedded import postgres_bin_dir
from devservices.external import TEST_URL_VARIABLES, configured_urls
from shared import instance
from shared.config import parse_database_url
from shared.postgres import connect, is_connection_lost

from .scratch import scratch_dir

SERVICES_OPTION = "--services"
SERVICES_ENV = "FACTS_TEST_SERVICES"


def chosen_kind(option: str | None, **resolve_options: Any) -> str:
    """The kind `--services` (None when not given) or $FACTS_TEST_SERVICES asks for, `auto` resolved."""
    kind = option or os.environ.get(SERVICES_ENV) or "auto"
    return resolve_kind(kind, urls_set=configured_urls(TEST_URL_VARIABLES) is not None, **resolve_options)


def worker_name() -> str:
    # xdist's own name for this worker (gw0, gw1, ...); also set without its worker_id fixture,
    # which `pytest -p no:xdist` would not have.
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


@pytest.fixture(scope="session")
def servers(request: pytest.FixtureRequest) -> Iterator[ProvidedServers]:
    """This worker's own Postgres and Redis, migrated, with the functions' environment set."""
    config = request.config
    kind = chosen_kind(config.getoption(SERVICES_OPTION))
    worker = worker_name()
    with (
        pytest.MonkeyPatch.context() as environment,
        scratch_dir(worker) as scratch,
        provide(kind, scratch, durable=False, namespace=worker) as provided,
    ):
        for name, value in provided.environ().items():
            environment.setenv(name, value)
        instance.reset()
        instance.state()  # migrate and seed once per worker
        report = {"worker": worker, "provider": provided.provider, "startup_s": round(provided.startup_s, 2),
                  "description": provided.description}  # fmt: skip
        config.stash[SERVICES_REPORT] = report
        try:
            yield provided
        finally:
            instance.reset()


SERVICES_REPORT = pytest.StashKey[dict[str, Any]]()


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
def db(servers: ProvidedServers) -> Iterator[WorkerDatabase]:
    database = WorkerDatabase(servers.database_url)
    yield database
    database.close()


@pytest.fixture(scope="session")
def redis_client(servers: ProvidedServers) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(servers.redis_url, decode_responses=True)
    yield client
    client.close()


@pytest.fixture(scope="session")
def empty_postgres_server() -> Iterator[tuple[str, str, str]]:
    """This worker's server for `empty_postgres`, started on first use: (admin URL, app URL, Redis URL).
    One server for all its tests: a server start costs a second or more, a database milliseconds."""
    try:
        postgres_bin_dir()
    except FileNotFoundError as exc:
        pytest.skip(f"needs PostgreSQL server binaries to start an empty server: {exc}")
    with scaleout.fresh_servers(max_connections=20) as urls:
        yield urls


@pytest.fixture
def empty_postgres(empty_postgres_server: tuple[str, str, str]) -> Iterator[tuple[str, str, str]]:
    """(admin URL, app URL, Redis URL) of a new database of the test's own, with no schema yet, on
    a server of its worker's own. The app role is the test's own too (tests change a role's
    settings, which outlive a database), owns the database, and is not a superuser, as on Cloud
    SQL. Both are dropped after the test, and its Redis emptied."""
    admin_url, _, redis_url = empty_postgres_server
    name, password = f"facts_{secrets.token_hex(6)}", secrets.token_hex(12)
    with scaleout.connect_url(admin_url) as admin:
        admin.run(f"CREATE ROLE {name} LOGIN PASSWORD {pg8000.native.literal(password)}")
        admin.run(f'CREATE DATABASE "{name}" OWNER {name}')
    try:
        app_url = scaleout.with_user(_on_database(admin_url, name), name, password)
        yield _on_database(admin_url, name), app_url, redis_url
    finally:
        with scaleout.connect_url(admin_url) as admin:
            admin.run(f'DROP DATABASE "{name}" WITH (FORCE)')  # a test's own connections may outlive it
            admin.run(f"DROP ROLE {name}")
        with redis.Redis.from_url(redis_url) as cache:
            cache.flushall()


def _on_database(url: str, database: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{database}"))


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        SERVICES_OPTION,
        choices=KINDS,
        default=None,
        help=f"where each worker's Postgres and Redis come from (default: ${SERVICES_ENV} or auto; {AUTO_RULE}; "
        f"the URLs: {' and '.join(TEST_URL_VARIABLES)})",
    )


_REPORTS = pytest.StashKey[list[dict[str, Any]]]()


# --- the report: which provider each worker used and how long its servers took to start ---


def pytest_sessionfinish(session: pytest.Session) -> None:
    report = session.config.stash.get(SERVICES_REPORT, None)
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
            f"{r['worker']}: {r['provider']}, started in {r['startup_s']:.2f} s — {r['description']}"
        )
