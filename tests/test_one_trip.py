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


@pytest.mark.parametrize(
    "params",
    [
        {"word": "one", "day": date(2024, 2, 28), "n": 1, "missing": None},
        {"word": "three rows", "day": date(2024, 12, 31), "n": 3, "missing": None},
        {"word": "none", "day": date(2024, 1, 1), "n": 0, "missing": None},
    ],
)
def test_rows_are_those_pg8000_gives(con, params):
    ours = OneTripStatement(con, TYPED)
    theirs = con.prepare(TYPED)
    expected = theirs.run(**params)
    assert ours.run(**params) == expected
    assert ours.run(**params) == expected  # again, from the remembered request
    assert list(ours._requests) == [tuple(params.items())], "the request was not remembered once"
    if params["n"]:
        assert expected[0][:3] == [params["word"], date.fromordinal(params["day"].toordinal() + 1), params["n"] * 2]
        assert expected[0][3] is None and expected[0][4].endswith("ünïcödé")


def test_each_run_is_one_write_of_bind_execute_sync(con):
    statement = OneTripStatement(con, "SELECT CAST(:a AS int) + 1")
    tap = _WriteTap(con._sock)
    con._sock = tap
    try:
        assert statement.run(a=1) == [[2]]
        assert statement.run(a=1) == [[2]]
        assert statement.run(a=41) == [[42]]
    finally:
        con._sock = tap.inner
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


def test_a_parameter_that_cannot_be_a_key_is_encoded_each_time(con):
    statement = OneTripStatement(con, "SELECT cardinality(CAST(:ids AS int[]))")
    assert statement.run(ids=[1, 2, 3]) == [[3]]
    assert statement.run(ids=[4]) == [[1]]


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


def test_rollback_of_a_failed_transaction_runs_as_with_pg8000(con):
    # pg8000 reads the statement's text when a command completes inside a failed transaction.
    rollback = OneTripStatement(con, "ROLLBACK")
    con.run("BEGIN")
    with pytest.raises(pg8000.native.DatabaseError):
        con.run("SELECT 1 / 0")
    assert rollback.run() is None  # a command, not a query: no rows, as pg8000 answers it
    assert con.run("SELECT 3") == [[3]]


def test_a_command_answers_none_and_moves_the_transaction_status_as_with_pg8000(con):
    begin, commit = OneTripStatement(con, "BEGIN"), OneTripStatement(con, "COMMIT")
    assert con.prepare("BEGIN").run() is None and con.run("COMMIT") is None  # pg8000's own answers
    assert begin.run() is None
    assert con._transaction_status == b"T"  # in a transaction block, as the server's ReadyForQuery said
    assert commit.run() is None
    assert con._transaction_status == b"I"


def test_commit_of_a_failed_transaction_is_refused_as_by_pg8000(con):
    # The server answers COMMIT of a failed transaction as a plain ROLLBACK; pg8000 raises.
    for commit in (con.prepare("COMMIT"), OneTripStatement(con, "COMMIT")):
        con.run("BEGIN")
        with pytest.raises(pg8000.native.DatabaseError):
            con.run("SELECT 1 / 0")
        with pytest.raises(pg8000.native.InterfaceError, match=r"^in failed transaction block$"):
            commit.run()
        assert con.run("SELECT 6") == [[6]]  # the transaction is over


def test_an_answer_longer_than_one_read_is_read_whole(con):
    # The socket file reads 8 KiB at a time: these rows arrive over many reads, and the first read
    # ends inside a row's first column, before the second column's length.
    sql = "SELECT repeat(CAST(:text AS text), 20000) || g.i, g.i FROM generate_series(1, 3) AS g (i)"
    expected = con.prepare(sql).run(text="añb")
    assert len(expected[0][0]) > 50_000 and expected[2][1] == 3
    assert OneTripStatement(con, sql).run(text="añb") == expected
    assert con.run("SELECT 4") == [[4]]


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


def test_a_plain_answer_is_read_without_pg8000s_message_loop(con):
    # The saving of the one-trip statement: a statement that went as expected never reaches handle_messages.
    statement = OneTripStatement(con, TYPED)
    params = {"word": "w", "day": date(2024, 5, 1), "n": 2, "missing": None}
    expected = con.prepare(TYPED).run(**params)

    def unexpected(context: Any) -> None:
        raise AssertionError("pg8000 read a plain answer")

    con.handle_messages = unexpected
    try:
        assert statement.run(**params) == expected
    finally:
        del con.handle_messages


def test_a_first_read_that_ends_between_two_rows_goes_on_reading(con):
    # BindComplete (5 bytes) and three rows of one 2,718-byte text column (11 + 2,718 bytes each)
    # fill the socket file's 8 KiB buffer exactly: the first read ends on a message boundary, with
    # CommandComplete and ReadyForQuery still to come.
    sql = "SELECT repeat('x', CAST(:width AS int)) FROM generate_series(1, 3)"
    assert 5 + 3 * (11 + 2718) == 8192
    assert OneTripStatement(con, sql).run(width=2718) == [["x" * 2718]] * 3
    assert con.run("SELECT 7") == [[7]]


def test_an_answer_that_does_not_come_in_time_is_pg8000s_network_error_from_the_timeout(servers):
    slow = connect(parse_database_url(servers.database_url), 0.3, statement_timeout_ms=None)
    try:
        with pytest.raises(pg8000.native.InterfaceError, match=r"^network error$") as raised:
            OneTripStatement(slow, "SELECT pg_sleep(CAST(:s AS float))").run(s=3)
        assert isinstance(raised.value.__cause__, TimeoutError)  # what the pool reads as "did not answer in time"
    finally:
        with contextlib.suppress(Exception):
            slow.close()
