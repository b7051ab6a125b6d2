"""Migration 0005 while the previous release serves: the deploy migrates first and moves the traffic
only once the new revision answers, so for a while both releases count views in one database.
Every view of either counts once, and the new release's answers include the old one's views."""

from __future__ import annotations

from datetime import date

from shared import schema
from shared.config import parse_database_url
from shared.postgres import PostgresPool, connect
from shared.store import FactStore

from .support import release_0_5_0 as previous
from .support.older_schema import migrate_as_released_before

DAY = date(2026, 12, 7)


def _totals(con) -> dict[str, int]:
    return {str(fact_id): int(views) for fact_id, views in con.run("SELECT fact_id, views FROM fact_views")}


def test_both_releases_count_every_view_across_migration_0005(scratch_database, monkeypatch):
    settings = parse_database_url(scratch_database)
    with connect(settings, 10.0, statement_timeout_ms=None) as con:
        migrate_as_released_before(con, monkeypatch, 5)
        con.run("INSERT INTO facts (fact_id, fact, language, seq) SELECT 'f' || g, 'fact ' || g, 'en', g"
                " FROM generate_series(1, 50) g")  # fmt: skip
        con.run("INSERT INTO facts (fact_id, fact, language, seq) VALUES ('x1', 'the only fact of xx', 'xx', 1)")
        con.run("INSERT INTO fact_counts VALUES ('en', 50), ('xx', 1)")
        con.run("UPDATE view_shards SET views = 1000 + length(fact_id) WHERE fact_id <> 'x1'")
        day_fact = con.run(previous.TODAY_VIEW, day=DAY, language="en")[0][0]
        for _ in range(10):
            con.run(previous.KNOWN_DAY_VIEW, day=DAY, language="en", fact_id=day_fact)
        before = _totals(con)

        assert schema.migrate(con) == [m.name for m in schema.migrations() if m.version == 5]
        assert _totals(con) == before

        # The previous release, still serving: its statements find what they count in.
        for _ in range(20):
            assert len(con.run(previous.RANDOM_VIEW, language="en")) == 1
        assert con.run(previous.TODAY_VIEW, day=DAY, language="en")[0][0] == day_fact
        for _ in range(10):
            assert len(con.run(previous.KNOWN_DAY_VIEW, day=DAY, language="en", fact_id=day_fact)) == 1
        assert con.run(previous.RANDOM_VIEW, language="xx")[0][4] == 1  # a first view, in shard 0

    pool = PostgresPool(settings, size=2, timeout_s=10, statement_timeout_ms=10_000)
    try:
        store = FactStore(pool)  # the new release, on the same database
        only = store.random("xx")
        assert only is not None and only.views == 2  # the previous release's view included
        for _ in range(20):
            assert store.random("en") is not None
        today = store.of_the_day(DAY, "en")
        assert today is not None and today.fact_id == day_fact
        for _ in range(10):
            assert store.known_day_views(DAY, "en", day_fact) is not None
        with connect(settings, 10.0, statement_timeout_ms=None) as con:
            after = _totals(con)
            assert sum(after.values()) == sum(before.values()) + (20 + 1 + 10 + 1) + (1 + 20 + 1 + 10)
            assert con.run(previous.RANDOM_VIEW, language="xx")[0][4] == 2  # its own shard's count, as before
        assert store.views(day_fact) == after[day_fact] == store.known_day_views(DAY, "en", day_fact) - 1
        assert store.random("xx").views == after["x1"] + 2  # type: ignore[union-attr]
    finally:
        pool.close()
