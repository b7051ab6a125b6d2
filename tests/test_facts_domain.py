"""shared.facts below HTTP: the day is the UTC day in any time zone; a peek counts no view, a call one.

Against the worker's real Postgres and Redis.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, date, datetime

import pytest

from shared import instance
from shared.facts import fact_of_the_day, pick_random, seconds_until_utc_midnight, utc_day

LATE_EVENING_UTC = datetime(2026, 11, 26, 23, 30, tzinfo=UTC)


@pytest.fixture
def machine_fourteen_hours_ahead(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The process's local time zone set to UTC+14 (POSIX TZ, so no zone database is needed)."""
    monkeypatch.setenv("TZ", "XST-14")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_the_day_is_the_utc_day_on_a_machine_in_another_zone(machine_fourteen_hours_ahead):
    assert LATE_EVENING_UTC.astimezone().date() == date(2026, 11, 27)  # the zone is in effect
    assert utc_day(LATE_EVENING_UTC) == date(2026, 11, 26)
    assert seconds_until_utc_midnight(LATE_EVENING_UTC) == 30 * 60


def _views(db, fact_id: str) -> int:
    return int(db.run("SELECT views FROM fact_views WHERE fact_id = :id", id=fact_id)[0][0])


def test_a_peek_counts_no_view_with_the_cache_cold_or_warm(servers, db):
    current = instance.state()
    now = datetime.now(UTC)
    cold = fact_of_the_day(current.store, current.cache, current.day_memo, "en", now, count_view=False)
    assert cold is not None and not cold.cache_hit
    warm = fact_of_the_day(current.store, current.cache, current.day_memo, "en", now, count_view=False)
    assert warm is not None and warm.cache_hit
    assert warm.fact.fact_id == cold.fact.fact_id
    assert _views(db, cold.fact.fact_id) == 0


def test_a_call_counts_one_view_by_default(servers, db):
    current = instance.state()
    now = datetime.now(UTC)
    first = fact_of_the_day(current.store, current.cache, current.day_memo, "en", now)
    second = fact_of_the_day(current.store, current.cache, current.day_memo, "en", now)
    assert first is not None and second is not None
    assert (first.fact.views, second.fact.views) == (1, 2)
    assert _views(db, first.fact.fact_id) == 2


def test_a_random_fact_counts_one_view_by_default(servers, db):
    fact = pick_random(instance.state().store, "de")
    assert fact is not None and fact.language == "de"
    assert fact.views == 1 == _views(db, fact.fact_id)
