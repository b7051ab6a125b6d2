"""The seed's two tests, in the shape the tutorial writes them.

Session fixtures start a Postgres and a Redis container of this test session's own (testcontainers;
under xdist each worker starts its own), on host ports that Docker chooses and testcontainers reads
back (get_exposed_port), and migrate the empty database with the deploy's own step, `python -m
shared.schema`, as the migration job runs it. The functions are called through functions-framework's
test client; then Postgres and Redis are asked what was recorded. The same two promises run in every
mode, on the worker's own servers, in tests/test_data_access.py.

The images: FACTS_POSTGRES_IMAGE and FACTS_REDIS_IMAGE, as for `--servers containers` (official
images by default; ci/images/README.md builds local ones for a machine without a registry). Without
a Docker engine they are skipped, except in CI (CI set), where that is a failure.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import functions_framework
import pg8000.native
import pytest
import redis

from devkit.servers.containers import OWNER_LABEL, docker_available, images
from shared import instance
from shared.cache import today_key
from shared.config import DEFAULT_CACHE_PREFIX
from shared.schema import migrations

try:
    from testcontainers.community.postgres import PostgresContainer
    from testcontainers.community.redis import RedisContainer
except ImportError:  # testcontainers before 4.14
    from testcontainers.postgres import PostgresContainer
    from testcontainers.redis import RedisContainer

ROOT = Path(__file__).resolve().parents[1]
FUNCTIONS = ROOT / "functions"
# The label of every container this project starts: a run killed hard leaves none that the next run
# (devkit.servers.containers.remove_orphans) or CI's "nothing left behind" check does not find.
OWNER = {OWNER_LABEL: str(os.getpid())}
# Published on loopback only, on a port Docker chooses (a host IP without a port, in Docker's terms).
LOOPBACK = ("127.0.0.1",)


@pytest.fixture(scope="session")
def docker_engine() -> None:
    if docker_available():
        return
    message = "no Docker engine answers (DOCKER_HOST or /var/run/docker.sock): the seed's tests start containers"
    if os.environ.get("CI"):  # CI provides an engine: without one, these tests would pass unseen
        pytest.fail(message + "; CI is set, so this is a failure, not a skip")
    pytest.skip(message + " of their own; tests/test_data_access.py checks the same on this run's servers")


@pytest.fixture(scope="session")
def postgres_container(docker_engine: None) -> Iterator[PostgresContainer]:
    container = PostgresContainer(images()[0], driver=None).with_kwargs(labels=OWNER)
    container.ports = {"5432/tcp": LOOPBACK}
    with container:
        yield container


@pytest.fixture(scope="session")
def redis_container(docker_engine: None) -> Iterator[RedisContainer]:
    container = RedisContainer(images()[1]).with_kwargs(labels=OWNER)
    container.ports = {"6379/tcp": LOOPBACK}
    with container:
        yield container


@pytest.fixture(scope="session")
def database_url(postgres_container: PostgresContainer) -> str:
    """The container's database, migrated by the deploy's own step before any function runs."""
    host, port = postgres_container.get_container_host_ip(), postgres_container.get_exposed_port(5432)
    user, password, name = postgres_container.username, postgres_container.password, postgres_container.dbname
    url = f"postgresql://{user}:{password}@{host}:{port}/{name}"
    job = subprocess.run(
        [sys.executable, "-m", "shared.schema"],
        env={**os.environ, "DATABASE_URL": url},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert job.returncode == 0, job.stderr
    # An empty database: every migration, the catalogue's seed included, applied by this step.
    assert job.stdout.strip() == "applied: " + ", ".join(migration.name for migration in migrations())
    return url


@pytest.fixture
def functions_environment(
    database_url: str, redis_container: RedisContainer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """The functions pointed at the containers, with an instance of their own (none of the worker's)."""
    monkeypatch.setenv("DATABASE_URL", database_url)
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
