"""The day's ETag names its day: when the same fact is chosen again on another day (with 30 German
facts, about one day in 30), a client's validator from the first day must not earn a 304 on the
second, or it would keep showing yesterday's date. Against the worker's real Postgres and Redis,
with the instance's clock set to each day."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, time
from typing import Any

import pytest
from flask.testing import FlaskClient

from shared import instance

FIRST_DAY, NEXT_DAY = date(2031, 5, 1), date(2031, 5, 2)


@pytest.fixture
def set_day(servers: Any) -> Iterator[Callable[[date], None]]:
    """Move the instance's clock to noon (UTC) of a day; the real clock again after the test."""

    def set_to(day: date) -> None:
        noon = datetime.combine(day, time(12), tzinfo=UTC)
        instance.set_clock(lambda: noon)

    yield set_to
    instance.set_clock(instance.utc_now)


def _chosen_on_both_days(db: Any, language: str) -> str:
    """A fact recorded as the choice of both days, as a random choice may make it."""
    fact_id = db.run("SELECT fact_id FROM facts WHERE language = :language ORDER BY seq LIMIT 1", language=language)
    for day in (FIRST_DAY, NEXT_DAY):
        db.run(
            "INSERT INTO daily_facts (day, language, fact_id) VALUES (:day, :language, :fact_id)",
            day=day,
            language=language,
            fact_id=fact_id[0][0],
        )
    return str(fact_id[0][0])


@pytest.mark.parametrize("language", ["de", "en"])
def test_the_same_fact_on_the_next_day_gets_that_days_etag_and_body(
    today_client: FlaskClient, db: Any, set_day: Callable[[date], None], language: str
) -> None:
    fact_id = _chosen_on_both_days(db, language)
    query = {"language": language}

    set_day(FIRST_DAY)
    first = today_client.get("/", query_string=query)
    assert (first.status_code, first.get_json()["fact_id"], first.get_json()["date"]) == (200, fact_id, "2031-05-01")
    yesterdays = first.headers["ETag"]
    assert today_client.get("/", query_string=query, headers={"If-None-Match": yesterdays}).status_code == 304

    set_day(NEXT_DAY)
    # Twice: the first request reads the day's choice from Postgres, the second finds it remembered.
    for _ in range(2):
        answer = today_client.get("/", query_string=query, headers={"If-None-Match": yesterdays})
        assert answer.status_code == 200, "a validator of yesterday's answer revalidated today's"
        assert (answer.get_json()["fact_id"], answer.get_json()["date"]) == (fact_id, "2031-05-02")
        assert answer.headers["ETag"] == f'W/"{fact_id}-2031-05-02"' != yesterdays
    todays = answer.headers["ETag"]
    assert today_client.get("/", query_string=query, headers={"If-None-Match": todays}).status_code == 304
    # Every answer above was a view of the one fact: 2 on the first day, 3 on the next.
    assert db.run("SELECT views FROM fact_views WHERE fact_id = :id", id=fact_id) == [[5]]
