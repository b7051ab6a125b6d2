"""Importing facts into the catalogue, in-process against the worker's Postgres: the count of facts
added (what the import command prints), and one catalogue writer at a time."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pg8000.native
import pytest

from devkit.servers import Servers
from devkit.servers.waiting import wait_until
from shared import catalogue
from shared.catalogue import FactRecord, import_facts
from shared.config import parse_database_url
from shared.postgres import connect, transaction


@pytest.fixture
def connections(servers: Servers) -> Iterator[tuple[pg8000.native.Connection, pg8000.native.Connection]]:
    """Two connections of the test's own to the worker's database (clean_state removes what it imports)."""
    settings = parse_database_url(servers.database_url)
    first = connect(settings, 10.0, statement_timeout_ms=None)
    second = connect(settings, 10.0, statement_timeout_ms=None)
    try:
        yield first, second
    finally:
        first.close()
        second.close()


def _new(count: int) -> list[FactRecord]:
    run = uuid.uuid4().hex
    return [FactRecord(fact=f"Imported fact {n} of run {run}.", language="en", source="test") for n in range(count)]


def test_an_import_counts_the_facts_it_added_across_batches(connections, monkeypatch: pytest.MonkeyPatch) -> None:
    con, _ = connections
    monkeypatch.setattr(catalogue, "_BATCH", 2)  # several batches from a few rows
    fresh = _new(5)
    known = next(catalogue.bundled_facts())
    # Batches: two new; one known, one new; one new, one repeated; one new.
    records = [fresh[0], fresh[1], known, fresh[2], fresh[3], fresh[0], fresh[4]]
    assert import_facts(con, records) == 5
    assert import_facts(con, records) == 0
    ids = [r.fact_id for r in fresh]
    assert con.run("SELECT count(*) FROM facts WHERE fact_id = ANY(CAST(:ids AS text[]))", ids=ids)[0][0] == 5


def _waits_on_an_advisory_lock(con: pg8000.native.Connection) -> None:
    assert con.run("SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'advisory'")[0][0] > 0


def test_an_import_waits_for_another_catalogue_writer(connections) -> None:
    con, other_writer = connections
    with ThreadPoolExecutor(1) as threads:
        with transaction(other_writer):
            other_writer.run("SELECT pg_advisory_xact_lock(:key)", key=catalogue.CATALOGUE_LOCK_KEY)
            importing = threads.submit(import_facts, con, _new(1))
            wait_until(lambda: _waits_on_an_advisory_lock(other_writer), 30, "the import waiting for the lock")
            assert not importing.done()
        assert importing.result(timeout=30) == 1
