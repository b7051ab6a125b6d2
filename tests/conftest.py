"""Wiring only: every xdist worker gets its own Postgres and Redis (see support/servers.py)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import functions_framework
import pytest
import redis
from flask.testing import FlaskClient

from devkit.servers import Servers
from shared import instance

from .support import janitor
from .support.harness_process import FUNCTIONS, harness_server

pytest_plugins = ("tests.support.servers", "tests.support.leaks", "tests.support.tls_servers")

# Whole modules in the slow lane (`./dev test --slow`) whose files carry no mark of their own.
SLOW_MODULES = {
    "test_cloud_run_throttling.py": "an instance of the deployed function, started, frozen and thawed",
    "test_deployment.py": "the deploy's dry run and the functions started from the upload set",
    "test_buildpack_rules.py": "the dry run's staged uploads listed by the gcloud CLI, the job run from one",
    "test_gcloud_parse.py": "the gcloud CLI, about a second a line",
}


# Run first: the seed's own tests (containers of their own), so that a broken Docker setup shows at once.
FIRST_MODULES = ("test_seed.py",)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.name in SLOW_MODULES:
            item.add_marker(pytest.mark.slow)
    items.sort(key=lambda item: item.path.name not in FIRST_MODULES)  # stable: the rest keep their order


@pytest.fixture(scope="session")
def seeded_counts(servers: Servers, db: Any) -> dict[str, int]:
    return janitor.baseline(db)


@pytest.fixture(autouse=True)
def clean_state(request: pytest.FixtureRequest) -> Iterator[None]:
    """Tests that touch the servers start from the seeded state, whatever ran before on this worker."""
    if "servers" not in request.fixturenames:
        yield
        return
    servers: Servers = request.getfixturevalue("servers")
    db: Any = request.getfixturevalue("db")
    cache: redis.Redis = request.getfixturevalue("redis_client")
    janitor.reset(db, cache, servers.cache_prefix, request.getfixturevalue("seeded_counts"))
    yield


# What functions-framework's create_app writes into os.environ (other changes go through monkeypatch).
_FRAMEWORK_ENV = ("FUNCTION_TARGET", "FUNCTION_SIGNATURE_TYPE", "FUNCTION_TRIGGER_TYPE", "FUNCTION_NAME")


@pytest.fixture(autouse=True)
def isolate_environment() -> Iterator[None]:
    """Undo functions-framework's writes to os.environ, and only those: the worker's service
    settings, put there by the session fixture, must outlive every test."""
    saved = {name: os.environ.get(name) for name in _FRAMEWORK_ENV}
    yield
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture(scope="session")
def random_client(servers: Servers) -> FlaskClient:
    return functions_framework.create_app("random_fact", str(FUNCTIONS / "random_fact.py")).test_client()


@pytest.fixture(scope="session")
def today_client(servers: Servers) -> FlaskClient:
    return functions_framework.create_app("today_fact", str(FUNCTIONS / "today_fact.py")).test_client()


@pytest.fixture(scope="session")
def harness_process(servers: Servers) -> Iterator[tuple[str, Path]]:
    """`harness.py serve` running against this worker's servers: its base URL and its log file."""
    with harness_server(servers.environ()) as (base, log):
        yield base, log


@pytest.fixture(scope="session")
def harness(harness_process: tuple[str, Path]) -> str:
    return harness_process[0]


@pytest.fixture(scope="session")
def harness_log(harness_process: tuple[str, Path]) -> Path:
    return harness_process[1]


@pytest.fixture
def fresh_instance(servers: Servers) -> Iterator[None]:
    """Forget connections and breaker state before and after a test that stops servers."""
    instance.reset()
    yield
    instance.reset()
