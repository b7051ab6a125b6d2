"""Fixture factories: each returns a fixture; conftest.py only instantiates and wires them."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from devservices import ProvidedServers, provide
from devservices.containers import docker_available
from shared import instance
from shared.config import parse_database_url
from shared.postgres import connect, is_connection_lost

from .scratch import scratch_dir

SERVICES_OPTION = "--services"
SERVICES_ENV = "FACTS_TEST_SERVICES"


def chosen_kind(config: pytest.Config) -> str:
    kind = config.getoption(SERVICES_OPTION) or os.environ.get(SERVICES_ENV) or "auto"
    if kind == "auto":
        return "containers" if docker_available() else "embedded"
    return kind


def worker_id(config: pytest.Config) -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


def servers_fixture() -> Callable[..., Iterator[ProvidedServers]]:
    """Session fixture: this worker's own Postgres and Redis, migrated, with the functions' env set."""

    @pytest.fixture(scope="session")
    def servers(request: pytest.FixtureRequest) -> Iterator[ProvidedServers]:
        config = request.config
        kind = chosen_kind(config)
        worker = worker_id(config)
        saved = {name: os.environ.get(name) for name in ("DATABASE_URL", "REDIS_URL", "FACTS_CACHE_PREFIX")}
        with scratch_dir(worker) as scratch, provide(kind, scratch, durable=False, namespace=worker) as provided:
            os.environ.update(provided.environ())
            instance.reset()
            instance.state()  # migrate and seed once per worker
            report = {"worker": worker, "provider": provided.provider, "startup_s": round(provided.startup_s, 2),
                      "description": provided.description}  # fmt: skip
            config.stash[SERVICES_REPORT] = report
            try:
                yield provided
            finally:
                instance.reset()
                for name, value in saved.items():
                    if value is None:
                        os.environ.pop(name, None)
                    else:
                        os.environ[name] = value

    return servers


SERVICES_REPORT = pytest.StashKey[dict[str, Any]]()


class TestDatabase:
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


def postgres_fixture() -> Callable[..., Iterator[TestDatabase]]:
    @pytest.fixture(scope="session")
    def db(servers: ProvidedServers) -> Iterator[TestDatabase]:
        database = TestDatabase(servers.database_url)
        yield database
        database.close()

    return db


def redis_fixture() -> Callable[..., Iterator[redis.Redis]]:
    @pytest.fixture(scope="session")
    def redis_client(servers: ProvidedServers) -> Iterator[redis.Redis]:
        client = redis.Redis.from_url(servers.redis_url, decode_responses=True)
        yield client
        client.close()

    return redis_client
