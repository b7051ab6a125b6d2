"""Connection exhaustion is a 503 with Retry-After, never a 500, and it heals by itself.

Against real servers: the worker's Postgres for the pool's own promises, and a fresh Postgres
started with a small max_connections (bench/py's) for more instances than it allows.
"""

from __future__ import annotations

import logging
import time

import pytest

from devkit.cloudrun.front import Front
from devkit.cloudrun.instances import deployed_environment, instances_of_both
from devkit.cloudrun.scratch_postgres import ConnectionSampler, scratch_servers
from devkit.cloudrun.traffic import burst, request
from devkit.servers import ServerStartError
from devkit.servers.embedded import postgres_bin_dir
from devkit.servers.ports import free_port
from devkit.servers.waiting import wait_until
from shared import instance, schema
from shared.config import parse_database_url
from shared.postgres import PostgresPool, StoreUnavailable, connect


@pytest.fixture(scope="module")
def small_postgres():
    """A fresh Postgres allowing 17 connections, 14 of them to the functions' role (3 are reserved
    for superusers), migrated: (admin URL, app URL, Redis URL)."""
    try:
        postgres_bin_dir()
    except ServerStartError as exc:
        pytest.skip(f"needs PostgreSQL server binaries to start a server with a small max_connections: {exc}")
    with scratch_servers(max_connections=17) as urls:
        schema.migrate_database(parse_database_url(urls[1]), timeout_s=60)
        yield urls


def test_idle_connections_go_back_to_postgres(servers, db):
    pool = PostgresPool(parse_database_url(servers.database_url), 3, 5.0, 5000, idle_timeout_s=0.3)
    # Three connections held at once, as by three requests (threads racing through a short
    # statement could share a connection on a loaded machine), then given back idle.
    held = [pool._acquire()[0] for _ in range(3)]
    pids = [conn.run("SELECT pg_backend_pid()")[0][0] for conn in held]
    for conn in held:
        pool._release(conn)
    try:
        assert len(set(pids)) == 3 and pool.open_connections == 3

        def ended() -> None:
            alive = db.run("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(CAST(:p AS int[]))", p=pids)
            assert alive == [[0]], alive

        # Nobody used the pool, and no thread of it runs: the server ended the sessions
        # (idle_session_timeout, twice the pool's 0.3 s), as on a Cloud Run instance without CPU.
        wait_until(ended, 5, "idle sessions ended by the server")
        assert pool.run("SELECT 1") == [[1]]  # the ended ones dropped, a new one opened
        assert pool.open_connections == 1
    finally:
        pool.close()


def test_a_busy_pool_is_store_unavailable_after_its_wait_timeout(servers):
    wait_s = 1.0  # long enough that a wait several times as long stands out from a loaded machine's delay
    pool = PostgresPool(parse_database_url(servers.database_url), 1, wait_s, 5000)
    held, _ = pool._acquire()  # the pool's only connection, busy as with a long request
    try:
        began = time.monotonic()
        with pytest.raises(StoreUnavailable, match=r"^all Postgres connections of this worker are busy$"):
            pool.run("SELECT 1")
        # The wait timeout, not the statement timeout (5 s) or a wait for the connection: 3 s of room
        # for a loaded machine (2 cores shared by several suites).
        assert wait_s - 0.05 <= time.monotonic() - began < wait_s + 3.0
    finally:
        pool._release(held)
    assert pool.run("SELECT 1") == [[1]]  # given back: usable again
    pool.close()


@pytest.mark.slow  # a fresh server of its own, with a small max_connections (about 3 s to start)
def test_too_many_clients_at_connect_is_store_unavailable(small_postgres):
    _, app_url, _ = small_postgres
    settings = parse_database_url(app_url)
    held = []
    try:
        with pytest.raises(StoreUnavailable, match=r"too many clients|remaining connection slots"):
            for _ in range(20):  # bounded: 14 slots, so this fails well before the end
                held.append(connect(settings, 5.0, 1500))
        assert len(held) == 14
    finally:
        for con in held:
            con.close()


@pytest.mark.usefixtures("fresh_instance")
def test_one_warning_per_outage_and_a_line_when_it_is_back(servers, random_client, monkeypatch, caplog):
    refused = f"postgresql://facts:secret@127.0.0.1:{free_port()}/facts"
    monkeypatch.setenv("DATABASE_URL", refused)
    instance.reset()
    answers = [random_client.get("/") for _ in range(5)]
    monkeypatch.setenv("DATABASE_URL", servers.database_url)
    instance.reset()
    back = random_client.get("/")
    assert [a.status_code for a in answers] == [503] * 5
    assert all(a.headers["Retry-After"] and a.get_json()["error"]["code"] == "database_unavailable" for a in answers)
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and "database" in r.getMessage()]
    assert len(warnings) == 1, warnings
    assert back.status_code == 200
    assert any(r.getMessage() == "database available again" for r in caplog.records)


def _answers_in_a_row(port: int, route: str, count: int) -> None:
    for _ in range(count):
        answer, _ = request(port, route, "en", None)
        assert answer.status == 200, f"{answer.status}: {answer.body}"


@pytest.mark.slow  # a fleet of gunicorn instances
def test_more_instances_than_postgres_allows_503_then_all_back_to_200(small_postgres, tmp_path):
    admin_url, app_url, redis_url = small_postgres
    env = {**deployed_environment(), "DATABASE_URL": app_url, "REDIS_URL": redis_url}
    # The burst goes to random's 3 instances: 3 x 2 workers x 4 connections = 24 wanted from 14, so
    # it exhausts them, and when it is over random's workers hold every slot. today's 3 instances
    # then get their first requests: they must get connections once random's sit idle.
    with (
        ConnectionSampler(admin_url) as sampler,
        instances_of_both(3, env, tmp_path) as (instances, started),
        Front(instances, started) as front,
    ):
        answers = burst(front.port, clients=32, requests=480, languages=["en", "de"], routes=("random",))
        burst_over = time.monotonic()
        statuses = {a.status for a in answers}
        assert statuses <= {200, 304, 503}, statuses
        refused = [a for a in answers if a.status == 503]
        assert refused, "the burst did not exhaust the connections: this test proves nothing"
        assert all(a.retry_after and a.body and a.body["error"]["code"] == "database_unavailable" for a in refused)

        # After the burst, each instance answers 20 requests in a row with 200, today's too.
        for instance in instances:
            wait_until(lambda i=instance: _answers_in_a_row(i.port, i.route, 20), 30, f"{instance.name} back to 200")
        recovered_s = time.monotonic() - burst_over
        assert sampler.peak <= 14
    print(f"\n{len(refused)} of {len(answers)} answers were 503; every instance back to 200 {recovered_s:.1f} s after")
