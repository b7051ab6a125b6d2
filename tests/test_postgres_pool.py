"""The pool against the worker's real Postgres: dropped connections are replaced, the size is a bound,
and a server that refuses is a 503 that says why.

The server drops connections here with pg_terminate_backend, as a restart does to every one of them.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace

import pytest

from devservices.ports import free_port
from shared.config import parse_database_url
from shared.postgres import PostgresPool, StoreUnavailable, connect

BACKEND = "SELECT pg_backend_pid()"


def _pool(services, size: int) -> PostgresPool:
    return PostgresPool(parse_database_url(services.database_url), size, 5.0, statement_timeout_ms=5000)


@pytest.fixture
def pool_of_two(services) -> Iterator[PostgresPool]:
    made = _pool(services, 2)
    yield made
    made.close()


def _backends_at_once(pool: PostgresPool, count: int) -> list[int]:
    """The backends that served `count` statements started together, each holding its connection a while."""
    barrier = threading.Barrier(count)
    pids: list[int] = []

    def hold() -> None:
        barrier.wait(timeout=10)
        pids.append(pool.run("SELECT pg_backend_pid(), pg_sleep(0.3)")[0][0])

    threads = [threading.Thread(target=hold) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(pids) == count
    return pids


def test_every_dropped_idle_connection_is_replaced_on_the_next_statement(pool_of_two, db):
    pids = _backends_at_once(pool_of_two, 2)
    assert len(set(pids)) == 2  # both connections open and idle now
    for pid in pids:
        db.run("SELECT pg_terminate_backend(:pid)", pid=pid)
    fresh = pool_of_two.run(BACKEND)[0][0]
    assert fresh not in pids


def test_the_pool_stays_within_its_size_after_replacing_a_connection(services, db):
    pool = _pool(services, 1)
    try:
        first = pool.run(BACKEND)[0][0]
        db.run("SELECT pg_terminate_backend(:pid)", pid=first)
        second = pool.run(BACKEND)[0][0]
        assert second != first
        # One connection at most: two statements at once share it, one after the other.
        assert _backends_at_once(pool, 2) == [second, second]
    finally:
        pool.close()


def test_the_pool_never_opens_more_connections_than_its_size(pool_of_two):
    assert len(set(_backends_at_once(pool_of_two, 3))) <= 2


def test_a_statement_is_prepared_once_per_connection(services):
    pool = _pool(services, 1)
    try:
        for _ in range(3):
            pool.run("SELECT count(*) FROM facts WHERE language = :language", language="de")
        # That statement and this one; preparing on every run would leave one per run.
        assert pool.run("SELECT count(*) FROM pg_prepared_statements") == [[2]]
    finally:
        pool.close()


def test_a_refused_connection_is_unavailable_and_says_why(services):
    settings = parse_database_url(services.database_url)
    refused = replace(settings, port=free_port())
    with pytest.raises(StoreUnavailable) as raised:
        connect(refused, 2.0, statement_timeout_ms=None)
    message = str(raised.value)
    assert message.startswith(f"cannot connect to Postgres at {refused.describe()}: ")
    assert "Can't create a connection to host 127.0.0.1" in message
