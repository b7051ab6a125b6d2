"""Wiring only: every xdist worker gets its own Postgres and Redis (see support/servers.py)."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import functions_framework
import pytest
from flask.testing import FlaskClient

from devkit.servers import Servers
from devkit.servers.external import with_database
from shared import instance
from shared.config import parse_database_url
from shared.postgres import connect

from .support.harness_process import FUNCTIONS, harness_server

pytest_plugins = ("tests.support.servers", "tests.support.leaks", "tests.support.tls_servers")

# Run first: the seed's own tests (containers of their own), so that a broken Docker setup shows at once.
FIRST_MODULES = ("test_seed.py",)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: item.path.name not in FIRST_MODULES)  # stable: the rest keep their order


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


@pytest.fixture
def scratch_database(servers: Servers) -> Iterator[str]:
    """The URL of an empty database of our own on the worker's server, dropped afterwards."""
    admin = parse_database_url(servers.database_url)
    name = f"facts_scratch_{secrets.token_hex(4)}"
    con = connect(admin, 5.0, statement_timeout_ms=None)
    con.run(f'CREATE DATABASE "{name}"')
    yield with_database(servers.database_url, name)
    con.run(f'DROP DATABASE "{name}" WITH (FORCE)')
    con.close()
