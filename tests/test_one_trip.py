"""shared/fast/one_trip.py against the worker's real Postgres: the same answers as pg8000's own run(),
errors included, from one write per statement."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import date
from typing import Any

import pg8000.native
import pytest

from shared.config import parse_database_url
from shared.fast import one_trip
from shared.fast.one_trip import OneTripStatement
from shared.postgres import connect

TYPED = """
SELECT CAST(:word AS text) AS word, CAST(:day AS date) + 1 AS next_day, CAST(:n AS bigint) * 2 AS twice,
       CAST(:missing AS text) AS missing, CAST(:word AS text) || ' ⊕ ünïcödé' AS wide
FROM generate_series(1, CAST(:n AS int)) AS g (i)"""


@pytest.fixture
def con(servers) -> Iterator[pg8000.native.Connection]:
    made = connect(parse_database_url(servers.database_url), 5.0, statement_timeout_ms=None)
    yield made
    with contextlib.suppress(pg8000.native.InterfaceError):  # a test may have closed it
        made.close()


class _WriteTap:
    """The connection's socket file, recording each write."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.writes = inner, []

    def write(self, data: bytes) -> int:
        self.writes.append(bytes(data))
        return int(self.inner.write(data))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


# Each: a statement and the parameters of its runs, each run's rows compared with pg8000's own.
SAME_ROWS = {
    "typed values": (TYPED, [{"word": "one", "day": date(2024, 2, 28), "n": 1, "missing": None},
                             {"word": "three rows", "day": date(2024, 12, 31), "n": 3, "missing": None},
                             {"word": "none", "day": date(2024, 1, 1), "n": 0, "missing": None}]),
    # A list cannot be the key of a remembered request: it is encoded each time.
    "unhashable parameter": ("SELECT cardinality(CAST(:ids AS int[]))", [{"ids": [1, 2, 3]}, {"ids": [4]}]),
    # The socket file reads 8 KiB at a time: these rows arrive over many reads, the first ending
    # inside a row's first column, before the second column's length.
    "longer than one read": ("SELECT repeat(CAST(:text AS text), 20000) || g.i, g.i FROM generate_series(1, 3) g (i)",
                             [{"text": "añb"}]),
    # BindComplete (5 bytes) and three rows of one 2,718-byte column (11 + 2,718 bytes each) fill
    # the 8 KiB buffer exactly: the first read ends between two messages, more still to come.
    "a read ending between rows": ("SELECT repeat('x', CAST(:width AS int)) FROM generate_series(1, 3)",
                                   [{"width": 2718}]),
}  # fmt: skip


@pytest.mark.parametrize(("sql", "runs"), SAME_ROWS.values(), ids=SAME_ROWS.keys())
def test_rows_are_those_pg8000_gives(con, sql, runs):
    ours, theirs = OneTripStatement(con, sql), con.prepare(sql)
    for params in runs:
        expected = theirs.run(**params)
        assert ours.run(**params) == expected
        assert ours.run(**params) == expected  # again, from the remembered request
    hashable = [tuple(params.items()) for params in runs if not any(isinstance(v, list) for v in params.values())]
    assert list(ours._requests) == hashable, "each request is remembered once, in order"
    assert con.run("SELECT 4") == [[4]]


def test_each_run_is_one_write_of_bind_execute_sync_read_without_pg8000s_message_loop(con):
    statement = OneTripStatement(con, "SELECT CAST(:a AS int) + 1")
    tap = _WriteTap(con._sock)
    con._sock = tap

    def unexpected(context: Any) -> None:
        raise AssertionError("pg8000 read a plain answer")

    con.handle_messages = unexpected
    try:
        assert [statement.run(a=1), statement.run(a=1), statement.run(a=41)] == [[[2]], [[2]], [[42]]]
    finally:
        con._sock = tap.inner
        del con.handle_messages
    assert len(tap.writes) == 3
    for request in tap.writes:
        # Messages are a type byte and a length: walk them; no Flush ("H") between them.
        kinds, at = [], 0
        while at < len(request):
            kinds.append(request[at : at + 1])
            at += 1 + int.from_bytes(request[at + 1 : at + 5], "big")
        assert at == len(request)
        assert kinds == [b"B", b"E", b"S"]


def test_a_failing_statement_raises_as_pg8000_does_and_the_connection_goes_on(con):
    statement = OneTripStatement(con, "SELECT 1 / CAST(:d AS int)")
    with pytest.raises(pg8000.native.DatabaseError) as raised:
        statement.run(d=0)
    assert raised.value.args[0]["C"] == "22012"  # division_by_zero
    assert statement.run(d=1) == [[1]]
    assert con.run("SELECT 2") == [[2]]


def test_many_distinct_parameters_stay_correct_past_the_remembered_requests(con):
    statement = OneTripStatement(con, "SELECT CAST(:n AS int) * 10")
    for n in range(one_trip.MOST_CACHED_REQUESTS * 2 + 3):
        assert statement.run(n=n) == [[n * 10]]
        assert len(statement._requests) <= one_trip.MOST_CACHED_REQUESTS


def test_a_closed_connection_is_an_interface_error(con):
    statement = OneTripStatement(con, "SELECT 1")
    con.close()
    with pytest.raises(pg8000.native.InterfaceError, match=r"^network error$"):  # pg8000's words for it
        statement.run()


def test_commands_answer_none_and_move_the_transaction_as_with_pg8000(con):
    begin, commit, rollback = (OneTripStatement(con, sql) for sql in ("BEGIN", "COMMIT", "ROLLBACK"))
    assert con.prepare("BEGIN").run() is None and con.run("COMMIT") is None  # pg8000's own answers
    assert begin.run() is None
    assert con._transaction_status == b"T"  # in a transaction block, as the server's ReadyForQuery said
    assert commit.run() is None
    assert con._transaction_status == b"I"
    # In a failed transaction ROLLBACK runs (pg8000 reads the statement's text when a command
    # completes there); COMMIT, which the server answers as a plain ROLLBACK, is refused.
    for end in (rollback, con.prepare("COMMIT"), commit):
        con.run("BEGIN")
        with pytest.raises(pg8000.native.DatabaseError):
            con.run("SELECT 1 / 0")
        if end is rollback:
            assert end.run() is None
        else:
            with pytest.raises(pg8000.native.InterfaceError, match=r"^in failed transaction block$"):
                end.run()
        assert con.run("SELECT 6") == [[6]]  # the transaction is over


def test_a_notice_and_a_parameter_status_in_an_answer_reach_pg8000(con):
    con.run(
        "CREATE FUNCTION pg_temp.noisy(word text) RETURNS text LANGUAGE plpgsql AS "
        "$$ BEGIN RAISE NOTICE 'about %', word; RETURN upper(word); END $$"
    )
    con.notices.clear()
    assert OneTripStatement(con, "SELECT pg_temp.noisy(:w)").run(w="x") == [["X"]]
    assert [notice[b"M"] for notice in con.notices] == [b"about x"]
    # A setting the server reports (application_name) changed by the statement: ParameterStatus.
    renamed = OneTripStatement(con, "SELECT set_config('application_name', :name, false)")
    assert renamed.run(name="renamed-by-test") == [["renamed-by-test"]]
    assert con.parameter_statuses["application_name"] == "renamed-by-test"
    assert con.run("SELECT 5") == [[5]]


def test_an_answer_that_does_not_come_in_time_is_pg8000s_network_error_from_the_timeout(servers):
    slow = connect(parse_database_url(servers.database_url), 0.3, statement_timeout_ms=None)
    try:
        with pytest.raises(pg8000.native.InterfaceError, match=r"^network error$") as raised:
            OneTripStatement(slow, "SELECT pg_sleep(CAST(:s AS float))").run(s=3)
        assert isinstance(raised.value.__cause__, TimeoutError)  # what the pool reads as "did not answer in time"
    finally:
        with contextlib.suppress(Exception):
            slow.close()
