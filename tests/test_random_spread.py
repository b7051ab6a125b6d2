"""A random view sums a fact's day shards only where it has some (migrations/0004's `spread`, 0005):
the day's fact, picked at random, still answers every view counted in its day shards."""

from __future__ import annotations

from datetime import date

from shared import instance


def test_a_random_view_of_the_day_s_fact_counts_the_views_in_its_day_shards(servers, db):
    store = instance.state().store
    day = date(2026, 11, 26)
    assert store.view_external("only-fact-of-xx", "The only fact.", "xx", "test") is not None  # 1 view, in its row
    assert store.of_the_day(day, "xx") is not None  # its day shards made; 2 views
    for _ in range(20):  # each in a day shard drawn at random
        store.known_day_views(day, "xx", "only-fact-of-xx")
    picked = store.random("xx")  # the only fact of its language
    assert picked is not None and picked.views == 23 == store.views("only-fact-of-xx")
    assert db.run("SELECT spread FROM facts WHERE fact_id = 'only-fact-of-xx'") == [[True]]
