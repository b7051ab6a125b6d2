"""Which Postgres errors mean "try again shortly" (StoreUnavailable, a 503) and which are bugs.

Against the worker's real Postgres, with a pool of our own so the settings can be tight.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pg8000.native
import pytest

from shared import postgres
from shared.config import parse_database_url
from shared.postgres import PostgresPool, StoreUnavailable, connect


@pytest.fixture
def pool(servers) -> Iterator[PostgresPool]:
    made = PostgresPool(parse_database_url(servers.database_url), 1, 5.0, statement_timeout_ms=200)
    yield made
    made.close()


def test_a_statement_timeout_is_unavailable_and_keeps_the_connection(pool):
    backend = pool.run("SELECT pg_backend_pid()")
    with pytest.raises(StoreUnavailable, match=r"^Postgres did not answer in time$"):
        pool.run("SELECT pg_sleep(5)")
    assert pool.run("SELECT pg_backend_pid()") == backend  # the same server process: the connection was kept


def test_an_error_in_the_statement_is_raised_as_it_is(pool):
    with pytest.raises(pg8000.native.DatabaseError) as raised:
        pool.run("SELECT * FROM no_such_table")
    assert not isinstance(raised.value, StoreUnavailable)
    assert pool.run("SELECT 1") == [[1]]  # and the connection is still good


def test_a_missing_database_is_unavailable_with_postgres_own_words(servers):
    settings = replace(parse_database_url(servers.database_url), database="no_such_database")
    with pytest.raises(StoreUnavailable) as raised:
        connect(settings, 5.0, statement_timeout_ms=None)
    message = str(raised.value)
    assert message.startswith(f"cannot connect to Postgres at {settings.describe()}: ")
    assert message.endswith('database "no_such_database" does not exist')


def test_a_refused_login_is_unavailable_and_holds_no_password(servers):
    settings = replace(parse_database_url(servers.database_url), user="no_such_role", password="s3cret-pw")
    with pytest.raises(StoreUnavailable) as raised:
        connect(settings, 5.0, statement_timeout_ms=None)
    message = str(raised.value)
    assert message.startswith(f"cannot connect to Postgres at {settings.describe()}: ")
    assert "no_such_role" in message and "s3cret-pw" not in message


@pytest.mark.parametrize("error", [OSError(), ConnectionResetError(), pg8000.native.InterfaceError()])
def test_an_error_with_no_text_is_named_by_its_kind(error):
    """A lost connection whose exception carries no text or arguments still makes a 503 that says what
    broke: the pool's checks on it (lost? timed out? why?) must not raise (an IndexError, and a 500)."""
    assert postgres.is_connection_lost(error)
    assert not postgres._timed_out(error)
    assert postgres._reason(error) == type(error).__name__
