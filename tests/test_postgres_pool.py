"""The pool against the worker's real Postgres: dropped connections are replaced, the size is a bound,
and a server that refuses is a 503 that says why.

The server drops connections here with pg_terminate_backend, as a restart does to every one of them.
"""

from __future__ import annotations

import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pg8000.native
import pytest

from devkit.servers.ports import free_port
from devkit.servers.waiting import wait_until
from shared.config import parse_database_url
from shared.postgres import PostgresPool, StoreUnavailable, connect, is_connection_lost
from tests.support.harness_process import ROOT

BACKEND = "SELECT pg_backend_pid()"


def _pool(servers, size: int, timeout_s: float = 5.0, **options: Any) -> PostgresPool:
    return PostgresPool(parse_database_url(servers.database_url), size, timeout_s, statement_timeout_ms=5000, **options)


@pytest.fixture
def pool_of_two(servers) -> Iterator[PostgresPool]:
    made = _pool(servers, 2)
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
    # The stale ones no longer count against the size: the pool still reaches two connections at once.
    assert pool_of_two.open_connections == 1
    assert fresh in _backends_at_once(pool_of_two, 2)
    assert pool_of_two.open_connections == 2


def test_the_pool_stays_within_its_size_after_replacing_a_connection(servers, db):
    pool = _pool(servers, 1)
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


def _backend_alive(db, pid: int) -> bool:
    return bool(db.run("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid", pid=pid)[0][0])


def _await_backend_gone(db, pid: int, within_s: float) -> None:
    def gone() -> None:
        assert not _backend_alive(db, pid), f"backend {pid} still there"

    wait_until(gone, within_s, "the session ended by the server", interval_s=0.02)


def test_an_idle_connection_is_ended_by_the_server_with_no_thread_of_ours(servers, db):
    # On Cloud Run an idle instance has no CPU: the server must end the session by itself, at
    # SERVER_IDLE_FACTOR x the pool's idle timeout (idle_session_timeout, sent when connecting).
    idle_timeout_s = 0.25
    threads_before = set(threading.enumerate())
    pool = _pool(servers, 1, idle_timeout_s=idle_timeout_s)
    try:
        assert pool.run("SHOW idle_session_timeout") == [["500ms"]]
        # Taken before the statement is sent, so the session's idle time starts later still: a stall
        # here only lengthens what is measured, and the lower bound needs no room for one.
        asked = time.monotonic()
        backend = pool.run(BACKEND)[0][0]
        assert not set(threading.enumerate()) - threads_before, "the pool started a thread"

        def ended() -> float:
            assert not _backend_alive(db, backend)
            return time.monotonic() - asked

        ended_after = wait_until(ended, 15, "the idle session ended by the server", interval_s=0.02)
        # Not before the timeout (10 ms for two clocks' granularity); 2 s of room for a loaded machine.
        assert 2 * idle_timeout_s - 0.01 <= ended_after <= 2 * idle_timeout_s + 2.0
    finally:
        pool.close()


def test_a_connection_the_server_ended_for_idling_is_replaced_without_an_error(servers, db):
    # An operator's shorter idle_session_timeout (a Cloud SQL flag) may end a session the pool
    # still counts as fresh: the next statement finds it closed and runs on a new connection.
    pool = _pool(servers, 2, idle_timeout_s=60.0, server_idle_timeout_s=0.3)
    try:
        first = pool.run(BACKEND)[0][0]
        _await_backend_gone(db, first, within_s=10)
        second = pool.run(BACKEND)[0][0]  # no StoreUnavailable: retried once on a fresh connection
        assert second != first and _backend_alive(db, second)
        assert pool.open_connections == 1  # the ended one no longer counts against the size
    finally:
        pool.close()


@pytest.mark.parametrize("code", ["57P05", "25P03", "57P01", "08006"])
def test_an_error_ending_the_session_marks_the_connection_lost(code):
    # Postgres reports idle_session_timeout (57P05) as FATAL before closing; pg8000 may raise it
    # as a DatabaseError rather than a network error, depending on what it reads first.
    error = pg8000.native.DatabaseError({"S": "FATAL", "C": code, "M": "terminating connection"})
    assert is_connection_lost(error)
    assert not is_connection_lost(pg8000.native.DatabaseError({"S": "ERROR", "C": "57014", "M": "canceled"}))


def test_a_process_exits_without_closing_its_pool(servers):
    # Nothing of the pool may keep an exiting process alive: a gunicorn worker that ends without
    # closing its pool would otherwise wait forever for it.
    uses_a_pool = (
        "import sys\n"
        "from shared.config import parse_database_url\n"
        "from shared.postgres import PostgresPool\n"
        "PostgresPool(parse_database_url(sys.argv[1]), 1, 5.0, 5000, idle_timeout_s=60).run('SELECT 1')\n"
    )
    finished = subprocess.run(
        [sys.executable, "-c", uses_a_pool, servers.database_url], cwd=ROOT, timeout=30, capture_output=True
    )
    assert finished.returncode == 0, finished.stderr.decode()[-2000:]


def test_prefill_opens_connections_up_to_the_size_and_leaves_them_for_statements(servers, pool_of_two):
    one = _pool(servers, 2)
    try:
        one.prefill(1)
        assert one.open_connections == 1
    finally:
        one.close()
    pool_of_two.prefill(3)
    assert pool_of_two.open_connections == 2
    # Both are back in the pool: two statements at once get them, and no third is opened.
    assert len(set(_backends_at_once(pool_of_two, 2))) == 2
    assert pool_of_two.open_connections == 2


def test_a_statement_is_prepared_once_per_connection(servers):
    pool = _pool(servers, 1)
    try:
        for _ in range(3):
            pool.run("SELECT count(*) FROM facts WHERE language = :language", language="de")
        # That statement and this one; preparing on every run would leave one per run.
        assert pool.run("SELECT count(*) FROM pg_prepared_statements") == [[2]]
    finally:
        pool.close()


def test_a_refused_connection_is_unavailable_and_says_why(servers):
    settings = parse_database_url(servers.database_url)
    refused = replace(settings, port=free_port())
    with pytest.raises(StoreUnavailable) as raised:
        connect(refused, 2.0, statement_timeout_ms=None)
    message = str(raised.value)
    assert message.startswith(f"cannot connect to Postgres at {refused.describe()}: ")
    assert "Can't create a connection to host 127.0.0.1" in message


def _in_background(pool: PostgresPool, sql: str) -> tuple[threading.Thread, list[BaseException | None]]:
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            pool.run(sql)
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def _running(db, sql: str) -> int:
    """The backend running `sql` (once it has started)."""

    def find() -> int:
        rows = db.run("SELECT pid FROM pg_stat_activity WHERE query = :text AND state = 'active'", text=sql)
        assert rows, f"{sql!r} is not running yet"
        return int(rows[0][0])

    return wait_until(find, 10, "the statement on the server")


def test_a_statement_cut_off_on_a_new_connection_is_not_run_again(servers, db):
    # It may have run before the cut; running it again could count a view twice.
    pool = _pool(servers, 1)
    sql = "SELECT pg_sleep(1.0) AS cut_off"
    worker, outcome = _in_background(pool, sql)
    try:
        db.run("SELECT pg_terminate_backend(:pid)", pid=_running(db, sql))
        worker.join(timeout=30)
        assert len(outcome) == 1 and isinstance(outcome[0], StoreUnavailable)
        # pg8000 reports the cut as "network error" or in the server's words, depending on what it read first.
        assert str(outcome[0]).startswith("Postgres connection failed: ")
    finally:
        pool.close()


def test_a_failed_connect_frees_its_place_in_the_pool_and_no_more(servers, db):
    settings = parse_database_url(servers.database_url)
    later = f"facts_later_{secrets.token_hex(3)}"
    pool = PostgresPool(replace(settings, database=later), 1, 2.0, statement_timeout_ms=5000)
    try:
        with pytest.raises(StoreUnavailable, match="does not exist"):
            pool.run("SELECT 1")
        db.run(f'CREATE DATABASE "{later}"')
        assert pool.run("SELECT 1") == [[1]]
        assert len(set(_backends_at_once(pool, 2))) == 1  # and no more than its one place
    finally:
        pool.close()
        db.run(f'DROP DATABASE IF EXISTS "{later}"')


@pytest.mark.parametrize(
    ("socket_timeout_s", "statement_timeout_ms", "sslmode"),
    [(0.5, 0, "prefer"), (0.5, 0, "disable"), (5.0, 300, "prefer")],
    ids=["socket-timeout", "socket-timeout-of-a-socket-pg8000-made", "statement-timeout"],
)
def test_a_long_job_outlasts_the_request_limits_which_hold_again_after(
    servers, socket_timeout_s, statement_timeout_ms, sslmode
):
    settings = replace(parse_database_url(servers.database_url), sslmode=sslmode)
    pool = PostgresPool(settings, 1, socket_timeout_s, statement_timeout_ms)
    try:
        backend = pool.run(BACKEND)[0][0]
        with pool.long_job(timeout_s=30) as con:
            # A socket of ours has its limit lifted in place; one pg8000 made is re-made in the slot.
            assert (con.run(BACKEND)[0][0] == backend) is (sslmode == "prefer")
            con.run("SELECT pg_sleep(1)")  # past the request's limit
        assert pool.open_connections == 1  # the slot's connection, not one more
        with pytest.raises(StoreUnavailable):
            pool.run("SELECT pg_sleep(1)")  # the limit holds again on the same connection
    finally:
        pool.close()


def test_a_long_job_that_fails_gives_its_connection_back_with_the_request_limits(servers):
    pool = PostgresPool(parse_database_url(servers.database_url), 1, 5.0, statement_timeout_ms=300)
    try:
        backend = pool.run(BACKEND)[0][0]
        with pytest.raises(Exception, match="division by zero"), pool.long_job(timeout_s=30) as con:
            con.run("SELECT 1 / 0")
        assert pool.run(BACKEND)[0][0] == backend
        assert pool.run("SHOW statement_timeout") == [["300ms"]]
    finally:
        pool.close()


def test_a_statement_waiting_for_the_only_connection_gets_it_as_soon_as_it_is_given_back(servers):
    pool = _pool(servers, 1, timeout_s=10.0)
    try:
        holder = threading.Thread(target=pool.run, args=("SELECT pg_sleep(0.5)",))
        holder.start()

        def taken() -> None:
            assert pool.open_connections == 1 and not pool._idle

        wait_until(taken, 10, "the connection taken")
        began = time.monotonic()
        assert pool.run("SELECT 1") == [[1]]
        # Woken when the connection came back (~0.5 s), not at the end of its 10 s wait.
        assert time.monotonic() - began < 5
        holder.join(10)
    finally:
        pool.close()


def test_a_connection_idle_past_the_timeout_is_not_reused(servers):
    pool = _pool(servers, 2, idle_timeout_s=60.0)
    try:
        first = pool.run(BACKEND)[0][0]
        pool._idle[0].idle_since -= 120  # as if unused for two minutes
        second = pool.run(BACKEND)[0][0]
        assert second != first  # a new connection; the expired one closed, not kept
        assert pool.open_connections == 1
    finally:
        pool.close()
