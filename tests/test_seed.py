"""The seed's two tests, in the shape the tutorial writes them.

A Postgres and a Redis container of this test session's own (testcontainers; under xdist each
worker starts its own), an empty database that the first call migrates, and the functions called
through functions-framework's test client. Then Postgres and Redis are asked what was recorded.
The same two promises run in every mode, on the worker's own servers, in tests/test_data_access.py.

The images: FACTS_POSTGRES_IMAGE and FACTS_REDIS_IMAGE, as for `--servers containers` (official
images by default; ci/images/README.md builds local ones for a machine without a registry).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import functions_framework
import pg8000.native
import pytest
import redis

from devkit.servers.containers import OWNER_LABEL, docker_available, images
from devkit.servers.ports import free_port
from shared import instance
from shared.cache import today_key
from shared.config import DEFAULT_CACHE_PREFIX

try:
    from testcontainers.community.postgres import PostgresContainer
    from testcontainers.community.redis import RedisContainer
except ImportError:  # testcontainers before 4.14
    from testcontainers.postgres import PostgresContainer
    from testcontainers.redis import RedisContainer

FUNCTIONS = Path(__file__).resolve().parents[1] / "functions"
# The label of every container this project starts: a run killed hard leaves none that the next run
# (devkit.servers.containers.remove_orphans) or CI's "nothing left behind" check does not find.
OWNER = {OWNER_LABEL: str(os.getpid())}


@pytest.fixture(scope="session")
def docker_engine() -> None:
    if not docker_available():
        pytest.skip(
            "no Docker engine answers (DOCKER_HOST or /var/run/docker.sock): the seed's tests start containers "
            "of their own; tests/test_data_access.py checks the same on this run's servers"
        )


@pytest.fixture(scope="session")
def postgres_container(docker_engine: None) -> Iterator[PostgresContainer]:
    container = PostgresContainer(images()[0], driver=None).with_kwargs(labels=OWNER)
    container.ports = {"5432/tcp": ("127.0.0.1", free_port())}  # published on loopback only
    with container:
        yield container


@pytest.fixture(scope="session")
def redis_container(docker_engine: None) -> Iterator[RedisContainer]:
    container = RedisContainer(images()[1]).with_kwargs(labels=OWNER)
    container.ports = {"6379/tcp": ("127.0.0.1", free_port())}
    with container:
        yield container


@pytest.fixture
def functions_environment(
    postgres_container: PostgresContainer, redis_container: RedisContainer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """The functions pointed at the containers, with an instance of their own (none of the worker's)."""
    host, port = postgres_container.get_container_host_ip(), postgres_container.get_exposed_port(5432)
    user, password, name = postgres_container.username, postgres_container.password, postgres_container.dbname
    monkeypatch.setenv("DATABASE_URL", f"postgresql://{user}:{password}@{host}:{port}/{name}")
    redis_host, redis_port = redis_container.get_container_host_ip(), redis_container.get_exposed_port(6379)
    monkeypatch.setenv("REDIS_URL", f"redis://{redis_host}:{redis_port}/0")
    monkeypatch.delenv("FACTS_CACHE_PREFIX", raising=False)
    instance.reset()
    yield
    instance.reset()


@pytest.fixture
def database(postgres_container: PostgresContainer) -> Iterator[pg8000.native.Connection]:
    con = pg8000.native.Connection(
        postgres_container.username,
        host=postgres_container.get_container_host_ip(),
        port=int(postgres_container.get_exposed_port(5432)),
        password=postgres_container.password,
        database=postgres_container.dbname,
        timeout=10,
    )
    yield con
    con.close()


@pytest.fixture
def cache(redis_container: RedisContainer) -> redis.Redis:
    return redis_container.get_client(decode_responses=True)


def _views_row(database: pg8000.native.Connection, fact_id: str) -> list[list[object]]:
    return database.run(
        "SELECT fact_id, fact, views FROM facts JOIN fact_views USING (fact_id) WHERE fact_id = :id", id=fact_id
    )


# Each test asks in a language of its own, so that neither sees the other's view whichever runs first.


@pytest.mark.usefixtures("functions_environment")
def test_data_access_random_endpoint(database):
    client = functions_framework.create_app("random_fact", str(FUNCTIONS / "random_fact.py")).test_client()

    response = client.get("/")

    assert response.status_code == 200
    body = response.get_json()
    assert (body["language"], body["views"]) == ("en", 1)
    assert _views_row(database, body["fact_id"]) == [[body["fact_id"], body["fact"], 1]]


def _ms_until_utc_midnight(now: datetime) -> int:
    midnight = datetime.combine(now.date() + timedelta(days=1), time.min, tzinfo=UTC)
    return int((midnight - now) / timedelta(milliseconds=1))


@pytest.mark.usefixtures("functions_environment")
def test_data_access_today_endpoint(database, cache):
    client = functions_framework.create_app("today_fact", str(FUNCTIONS / "today_fact.py")).test_client()
    before = datetime.now(UTC)

    response = client.get("/", query_string={"language": "de"})

    assert response.status_code == 200
    body = response.get_json()
    assert (body["language"], body["views"], body["date"]) == ("de", 1, before.date().isoformat())
    assert _views_row(database, body["fact_id"]) == [[body["fact_id"], body["fact"], 1]]
    chosen = database.run("SELECT fact_id FROM daily_facts WHERE day = CAST(:day AS date) AND language = 'de'",
                          day=body["date"])  # fmt: skip
    assert chosen == [[body["fact_id"]]]

    key = today_key(DEFAULT_CACHE_PREFIX, "de", before.date())
    cached = json.loads(cache.get(key))
    assert (cached["fact_id"], cached["fact"]) == (body["fact_id"], body["fact"])
    # It expires at the next UTC midnight: PTTL (milliseconds) lies between one second less than what
    # is left of the day after reading it (the TTL is set in whole seconds, rounded down) and what was
    # left before the request; 2 ms for Redis' whole milliseconds against Python's microseconds.
    pttl = cache.pttl(key)
    after = datetime.now(UTC)
    assert _ms_until_utc_midnight(after) - 1000 - 2 <= pttl <= max(_ms_until_utc_midnight(before), 1000) + 2
