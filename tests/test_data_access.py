"""The two classic tests: call a function, then look in Postgres (and Redis) for what it recorded."""

from __future__ import annotations

import json
from datetime import UTC, datetime, time, timedelta

from shared.cache import today_key


def test_data_access_random_endpoint(random_client, db):
    response = random_client.get("/")

    assert response.status_code == 200
    body = response.get_json()
    rows = db.run(
        "SELECT fact, views FROM facts JOIN fact_views USING (fact_id) WHERE fact_id = :id", id=body["fact_id"]
    )
    assert len(rows) == 1
    assert rows[0] == [body["fact"], body["views"]]
    assert body["views"] == 1


def _ms_until_utc_midnight(now: datetime) -> int:
    midnight = datetime.combine(now.date() + timedelta(days=1), time.min, tzinfo=UTC)
    return int((midnight - now) / timedelta(milliseconds=1))


def test_data_access_today_endpoint(today_client, db, redis_client, servers):
    before = datetime.now(UTC)
    response = today_client.get("/")

    assert response.status_code == 200
    body = response.get_json()
    rows = db.run(
        "SELECT fact, views FROM facts JOIN fact_views USING (fact_id) WHERE fact_id = :id", id=body["fact_id"]
    )
    assert len(rows) == 1
    assert rows[0] == [body["fact"], body["views"]]
    chosen = db.run(
        "SELECT fact_id FROM daily_facts WHERE day = CAST(:day AS date) AND language = 'en'", day=body["date"]
    )
    assert chosen == [[body["fact_id"]]]

    key = today_key(servers.cache_prefix, "en", datetime.fromisoformat(body["date"]).date())
    cached = json.loads(redis_client.get(key))
    assert (cached["fact_id"], cached["fact"]) == (body["fact_id"], body["fact"])
    # The entry expires at midnight: its TTL, whole seconds rounded down, was set during the request.
    # PTTL (milliseconds, not TTL's rounded seconds) then lies between what was left of the day
    # before the request and one second less than what is left after reading it.
    # (Redis counts time in whole milliseconds, Python in microseconds: 2 ms of slack for that.)
    pttl = redis_client.pttl(key)
    after = datetime.now(UTC)
    assert _ms_until_utc_midnight(after) - 1000 - 2 <= pttl <= max(_ms_until_utc_midnight(before), 1000) + 2
