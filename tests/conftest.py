"""Wiring only: every xdist worker gets its own Postgres and Redis (see support/factories.py)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import functions_framework
import pytest
import redis
from flask.testing import FlaskClient

from devservices import KINDS, ProvidedServers
from shared import instance

from .support import factories, janitor, leaks
from .support.harness_process import harness_server

ROOT = Path(__file__).resolve().parents[1]
FUNCTIONS = ROOT / "functions"
_REPORTS = pytest.StashKey[list[dict[str, Any]]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        factories.SERVICES_OPTION,
        choices=KINDS,
        default=None,
        help="where each worker's Postgres and Redis come from (default: $FACTS_TEST_SERVICES or auto: "
        "containers when a Docker engine answers, embedded otherwise)",
    )


servers = factories.servers_fixture()
db = factories.postgres_fixture()
redis_client = factories.redis_fixture()
fault_log = leaks.fault_log_fixture()


@pytest.fixture(scope="session")
def seeded_counts(servers: ProvidedServers, db: Any) -> dict[str, int]:
    return janitor.baseline(db)


@pytest.fixture(autouse=True)
def clean_state(request: pytest.FixtureRequest) -> Iterator[None]:
    """Tests that touch the servers start from the seeded state, whatever ran before on this worker."""
    if "servers" not in request.fixturenames:
        yield
        return
    servers: ProvidedServers = request.getfixturevalue("servers")
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
def random_client(servers: ProvidedServers) -> FlaskClient:
    return functions_framework.create_app("random_fact", str(FUNCTIONS / "random_fact.py")).test_client()


@pytest.fixture(scope="session")
def today_client(servers: ProvidedServers) -> FlaskClient:
    return functions_framework.create_app("today_fact", str(FUNCTIONS / "today_fact.py")).test_client()


@pytest.fixture(scope="session")
def harness_process(servers: ProvidedServers) -> Iterator[tuple[str, Path]]:
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
def fresh_instance(servers: ProvidedServers) -> Iterator[None]:
    """Forget connections and breaker state before and after a test that stops servers."""
    instance.reset()
    yield
    instance.reset()


# --- the report: which provider each worker used and how long its servers took to start ---


def pytest_sessionfinish(session: pytest.Session) -> None:
    report = session.config.stash.get(factories.SERVICES_REPORT, None)
    if report and hasattr(session.config, "workeroutput"):
        session.config.workeroutput["facts_services"] = report  # type: ignore[attr-defined]
    elif report:
        session.config.stash.setdefault(_REPORTS, []).append(report)


class _WorkerReports:
    """Collects the workers' reports on the controller; a hook that exists only when xdist is loaded."""

    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        report = getattr(node, "workeroutput", {}).get("facts_services")
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
    terminalreporter.section("services per worker")
    for r in reports:
        terminalreporter.write_line(
            f"{r['worker']}: {r['provider']}, started in {r['startup_s']:.2f} s — {r['description']}"
        )
