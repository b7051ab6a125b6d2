"""Views in the facts' rows and the days' counter shards (migrations/0003, 0005): exact under concurrency,
never lower for a client, migrated whole."""

from __future__ import annotations

import http.client
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime
from urllib.parse import urlsplit

import pytest

from shared import instance, schema
from shared.cache import today_key
from shared.config import parse_database_url
from shared.postgres import PostgresPool, connect
from shared.store import DAY_SHARDS, FactStore

from .support.older_schema import SEED_STEP, migrate_as_released_before


def _today_answers(base: str, count: int, etag: str) -> list[tuple[int, int | None]]:
    """`count` GETs of /today over one keep-alive connection, every other one revalidating with `etag`."""
    parts = urlsplit(base)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    answers: list[tuple[int, int | None]] = []
    try:
        for number in range(count):
            connection.request("GET", "/today", headers={"If-None-Match": etag} if number % 2 else {})
            response = connection.getresponse()
            raw = response.read()
            answers.append((response.status, json.loads(raw)["views"] if raw else None))
    finally:
        connection.close()
    return answers


def test_today_counts_every_200_and_304_exactly_under_24_connections(harness, db):
    parts = urlsplit(harness)
    first = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    first.request("GET", "/today")
    response = first.getresponse()
    fact = json.loads(response.read())
    etag = response.getheader("ETag")
    first.close()

    connections, per_connection = 24, 24
    with ThreadPoolExecutor(connections) as pool:
        batches = list(pool.map(lambda _: _today_answers(harness, per_connection, etag), range(connections)))

    statuses = [status for batch in batches for status, _ in batch]
    assert set(statuses) == {200, 304} and statuses.count(304) == connections * per_connection // 2
    total = db.run("SELECT views FROM fact_views WHERE fact_id = :id", id=fact["fact_id"])[0][0]
    assert total == 1 + connections * per_connection  # every answer, 200 and 304 alike, is one view
    for batch in batches:
        seen = [views for status, views in batch if status == 200]
        assert all(1 < views <= total for views in seen)
        assert seen == sorted(set(seen)), seen  # one client never sees the count go down (or stand still)
    shards = db.run("SELECT count(*) FROM view_shards WHERE fact_id = :id AND views > 0", id=fact["fact_id"])[0][0]
    assert shards > DAY_SHARDS // 2  # the day's views are spread, not queued on one row


def test_known_day_views_in_postgres_from_32_connections_are_exact(servers, db):
    """The statement itself, without the server's thread limit: 32 connections count at once."""
    pool = PostgresPool(parse_database_url(servers.database_url), size=32, timeout_s=10, statement_timeout_ms=10_000)
    store = FactStore(pool)
    day = date(2034, 5, 6)
    try:
        chosen = store.of_the_day(day, "en")
        assert chosen is not None and chosen.views == 1
        start = threading.Barrier(32)

        def count_views(_):
            start.wait(timeout=30)
            return [store.known_day_views(day, "en", chosen.fact_id) for _ in range(20)]

        with ThreadPoolExecutor(32) as executor:
            answers = list(executor.map(count_views, range(32)))
        assert store.views(chosen.fact_id) == 1 + 32 * 20
        for seen in answers:
            assert seen == sorted(set(seen)) and all(views is not None and views > 1 for views in seen)
        # Not the day's choice (a stale memo): nothing counted, and the caller is told.
        other = db.run("SELECT fact_id FROM facts WHERE fact_id <> :id LIMIT 1", id=chosen.fact_id)[0][0]
        assert store.known_day_views(day, "en", other) is None
        assert store.known_day_views(date(2034, 5, 7), "en", chosen.fact_id) is None
        assert store.views(chosen.fact_id) == 1 + 32 * 20
        assert store.all_views()[chosen.fact_id] == 1 + 32 * 20
    finally:
        pool.close()


def _cache_fields(records) -> list[str]:
    return [getattr(r, "fields", {}).get("cache") for r in records if r.name == "facts.requests"]


@pytest.mark.usefixtures("fresh_instance")
def test_a_warm_instance_remembers_the_day_and_a_cold_one_reads_redis_first(
    servers, today_client, redis_client, db, caplog
):
    key = today_key(servers.cache_prefix, "en", datetime.now(UTC).date())
    first = today_client.get("/").get_json()  # cold, Redis empty: chosen in Postgres, Redis filled
    assert redis_client.ttl(key) > 0
    today_client.get("/")  # a Redis hit: the instance remembers the choice from now on
    redis_client.delete(key)
    remembered = today_client.get("/").get_json()
    assert redis_client.exists(key) == 0  # the warm instance did not ask Redis (a miss would refill it)
    instance.reset()  # a cold instance: it reads Redis first, misses, and fills it again
    cold = today_client.get("/").get_json()
    assert redis_client.exists(key) == 1
    assert _cache_fields(caplog.records) == ["miss", "hit", "hit", "miss"]
    assert first["fact_id"] == remembered["fact_id"] == cold["fact_id"]
    assert [first["views"], remembered["views"], cold["views"]] == [1, 3, 4]
    assert db.run("SELECT views FROM fact_views WHERE fact_id = :id", id=first["fact_id"]) == [[4]]


@pytest.mark.usefixtures("fresh_instance")
def test_a_remembered_choice_that_postgres_no_longer_holds_is_dropped(today_client, db):
    remembered = today_client.get("/").get_json()["fact_id"]
    today_client.get("/")  # an answer from Redis: the choice is remembered from now on
    db.run("TRUNCATE daily_facts")  # the truth changes under the instance (as the test janitor does)
    db.run("UPDATE fact_counts SET n = 1 WHERE language = 'en'")
    fact = today_client.get("/").get_json()
    only = db.run("SELECT fact_id FROM facts WHERE language = 'en' AND seq = 1")[0][0]
    # The new choice's views: this view, and the first two when the old choice was that fact by chance.
    assert fact["fact_id"] == only and fact["views"] == 1 + 2 * (remembered == only)
    assert db.run("SELECT fact_id FROM daily_facts") == [[only]]


def test_migration_moves_every_view_into_the_shards(scratch_database, monkeypatch):
    settings = parse_database_url(scratch_database)
    with connect(settings, 10.0, statement_timeout_ms=None) as con:
        # Migrations 1 and 2 applied, and the seed step recorded (its facts are the 50 below instead).
        every = schema.migrations()
        previous = [m.name for m in every if m.version < 3 or m.version == SEED_STEP]
        assert migrate_as_released_before(con, monkeypatch, 3) == previous
        con.run(
            "INSERT INTO facts (fact_id, fact, language, seq, views)"
            " SELECT 'f' || g, 'fact ' || g, 'en', g, g * 1000 + 7 FROM generate_series(1, 50) g"
        )
        con.run("INSERT INTO fact_counts VALUES ('en', 50)")
        con.run("INSERT INTO daily_facts (day, language, fact_id) VALUES (current_date, 'en', 'f7')")
        before = dict(con.run("SELECT fact_id, views FROM facts"))

        assert schema.migrate(con) == [m.name for m in every if 3 <= m.version < SEED_STEP]
        assert schema.missing_versions(con) == set()

        assert dict(con.run("SELECT fact_id, views FROM fact_views")) == before
        assert con.run("SELECT count(*) FROM view_shards WHERE fact_id = 'f7'") == [[DAY_SHARDS]]
        assert con.run("SELECT count(*) FROM information_schema.columns WHERE table_name = 'facts'"
                       " AND column_name = 'views'") == [[0]]  # fmt: skip

    pool = PostgresPool(settings, size=2, timeout_s=10, statement_timeout_ms=10_000)
    try:
        store = FactStore(pool)
        today = store.of_the_day(datetime.now(UTC).date(), "en")
        assert today is not None and (today.fact_id, today.views) == ("f7", before["f7"] + 1)
        picked = store.random("en")
        assert picked is not None and picked.views == before[picked.fact_id] + 1 + (picked.fact_id == "f7")
        assert store.view_external("new1", "a new fact", "en", "upstream") is not None
        assert store.views("new1") == 1
        assert sum(store.all_views().values()) == sum(before.values()) + 3
    finally:
        pool.close()
