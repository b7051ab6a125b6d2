"""An instance's first request against a database whose schema is behind: it migrates once, and a
request that finds a migration already under way is told to come back (503) instead of queueing.

In-process, against a new, empty database of the test's own (`empty_postgres`); the requests are
calls of `instance.state()`, which every handler makes first.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import timedelta

import pg8000.native
import pytest

from devkit.cloudrun.scratch_postgres import connect_url
from devkit.servers.waiting import wait_until
from shared import instance, schema
from shared.postgres import StoreUnavailable

# Generous: each wait below ends within milliseconds unless the behaviour under test is broken.
_PROMPT_S = 30.0


@pytest.fixture
def unmigrated(empty_postgres: tuple[str, str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The instance pointed at an empty database; yields the admin URL of that database."""
    admin_url, app_url, redis_url = empty_postgres
    monkeypatch.setenv("DATABASE_URL", app_url)
    monkeypatch.setenv("REDIS_URL", redis_url)
    instance.reset()
    try:
        yield admin_url
    finally:
        instance.reset()  # the next test's instance is built again from the worker's own settings


def _waiting_on_a_lock(admin: pg8000.native.Connection) -> list[int]:
    """Process ids of the sessions waiting on a lock."""
    pids = [row[0] for row in admin.run("SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock'")]
    assert pids, "nobody waits on a lock yet"
    return pids


def _hold_up_the_first_migration(admin_url: str) -> pg8000.native.Connection:
    # The first migration's first statement (CREATE TABLE facts) waits for this uncommitted one.
    blocker = connect_url(admin_url)
    blocker.run("BEGIN")
    blocker.run("CREATE TABLE facts (blocking integer)")
    return blocker


def test_the_first_call_migrates_and_later_calls_touch_no_table(unmigrated: str) -> None:
    instance.state()
    with connect_url(unmigrated) as admin:
        assert schema.missing_versions(admin) == set()
        # A later request must not even read schema_migrations: with the table locked, a read
        # would wait past the statement timeout and answer 503.
        admin.run("BEGIN")
        admin.run("LOCK TABLE schema_migrations IN ACCESS EXCLUSIVE MODE")
        try:
            instance.state()
        finally:
            admin.run("ROLLBACK")


def test_a_request_that_finds_another_thread_migrating_is_told_at_once_to_come_back(unmigrated: str) -> None:
    blocker = _hold_up_the_first_migration(unmigrated)
    with ThreadPoolExecutor(2) as threads, connect_url(unmigrated) as admin:
        first: Future[instance.InstanceState] = threads.submit(instance.state)
        try:
            wait_until(lambda: _waiting_on_a_lock(admin), _PROMPT_S, "the first migration held up")
            error = threads.submit(instance.state).exception(timeout=_PROMPT_S)
        finally:
            blocker.run("ROLLBACK")
            blocker.close()
        # What the 503's warning in the log says.
        assert isinstance(error, schema.MigrationInProgress)
        assert str(error) == "the database schema is being migrated by another request"
        first.result(timeout=60)
        assert schema.missing_versions(admin) == set()


def test_a_request_that_finds_another_instance_migrating_is_told_to_come_back_not_held(unmigrated: str) -> None:
    with ThreadPoolExecutor(1) as threads, connect_url(unmigrated) as other_instance:
        other_instance.run("SELECT pg_advisory_lock(:key)", key=schema.MIGRATION_LOCK_KEY)
        try:
            error = threads.submit(instance.state).exception(timeout=_PROMPT_S)
        finally:
            other_instance.run("SELECT pg_advisory_unlock(:key)", key=schema.MIGRATION_LOCK_KEY)
        assert isinstance(error, schema.MigrationInProgress)
        assert str(error) == "the database schema is being migrated by another instance"
    instance.state()  # the lock released, the next request migrates


def test_a_migration_cut_off_by_the_server_is_unavailable_with_the_reason_and_retried(unmigrated: str) -> None:
    blocker = _hold_up_the_first_migration(unmigrated)
    with ThreadPoolExecutor(1) as threads, connect_url(unmigrated) as admin:
        try:
            first = threads.submit(instance.state)
            pids = wait_until(lambda: _waiting_on_a_lock(admin), _PROMPT_S, "the migration held up")
            admin.run("SELECT pg_terminate_backend(pid) FROM unnest(CAST(:pids AS int[])) AS pid", pids=pids)
            error = first.exception(timeout=_PROMPT_S)
        finally:
            blocker.run("ROLLBACK")
            blocker.close()
        # A 503 whose warning names what happened (the exception's class: never its text, which
        # may hold connection details).
        assert type(error) is StoreUnavailable
        assert re.fullmatch(r"migrating the schema failed: \w+", str(error)), str(error)
        instance.state()  # the next request migrates
        assert schema.missing_versions(admin) == set()


def test_the_migration_needs_no_connection_beyond_the_one_that_checked_the_schema(unmigrated: str) -> None:
    # When the instances' pools hold every connection the server allows (traffic keeps them warm),
    # a migration that opens a connection of its own never starts: a cold burst of the scale-out
    # rehearsal once answered 503 for minutes so. Here the role may hold one connection.
    with connect_url(unmigrated) as admin:
        app_role = admin.run("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database()")
        admin.run(f"ALTER ROLE {pg8000.native.identifier(app_role[0][0])} CONNECTION LIMIT 1")
    state = instance.state()
    assert state.store.random("en") is not None  # on the same connection, given back to the pool
    assert state.store.pool.open_connections == 1
    with connect_url(unmigrated) as admin:
        assert schema.missing_versions(admin) == set()


def test_the_clock_is_the_current_time_in_utc() -> None:
    # A naive local time would give the right UTC day everywhere but in a DST fold, where the
    # day's cache lifetime would be an hour off.
    now = instance.utc_now()
    assert now.utcoffset() == timedelta(0)
    assert abs(now.timestamp() - time.time()) < 60
