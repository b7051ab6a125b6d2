"""FactStore on the worker's real Postgres: reads count a view unless told not to, and ping says yes."""

from __future__ import annotations

from datetime import date

from shared import instance


def _views(db, fact_id: str) -> int:
    return int(db.run("SELECT views FROM fact_views WHERE fact_id = :id", id=fact_id)[0][0])


def test_a_random_read_counts_a_view_unless_told_not_to(servers, db):
    store = instance.state().store
    counted = store.random("en")
    assert counted is not None and counted.views == 1 == _views(db, counted.fact_id)
    assert store.random("en", count_view=False) is not None
    assert db.run("SELECT sum(views) FROM fact_views")[0][0] == 1


def test_a_known_day_s_choice_counts_a_view_unless_told_not_to(servers, db):
    store = instance.state().store
    day = date(2026, 11, 26)
    chosen = store.of_the_day(day, "de")
    assert chosen is not None and chosen.views == 1
    assert store.known_day_views(day, "de", chosen.fact_id) == 2
    assert store.known_day_views(day, "de", chosen.fact_id, count_view=False) == 2 == _views(db, chosen.fact_id)
    assert store.views(chosen.fact_id) == 2


def test_ping_answers_true_on_a_live_database(servers):
    assert instance.state().store.ping() is True


def test_reads_that_find_nothing_answer_none(servers):
    store = instance.state().store
    day = date(2026, 11, 26)
    assert store.known_day_views(day, "de", "0000000000000000") is None  # not the day's choice
    assert store.known_day_views(day, "de", "0000000000000000", count_view=False) is None
    assert store.views("0000000000000000") is None
    assert store.random("xx") is None  # a language with no facts


def test_the_day_s_choice_counts_a_view_unless_told_not_to(servers, db):
    store = instance.state().store
    chosen = store.of_the_day(date(2026, 11, 26), "en")
    assert chosen is not None and chosen.views == 1
    peeked = store.of_the_day(date(2026, 11, 26), "en", count_view=False)
    assert peeked is not None and peeked.fact_id == chosen.fact_id
    assert peeked.views == 1 == _views(db, chosen.fact_id)
