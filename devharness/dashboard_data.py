"""The data behind the functions, read-only, for the dashboard: every query it runs is here.

Only SELECTs against Postgres and TTL/GET against Redis; nothing here writes.
"""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import redis

from shared.cache import today_key
from shared.postgres import PostgresPool
from shared.store import VIEW_TOTALS

MOST_VIEWED = 10


def todays_facts(pool: PostgresPool, day: date) -> list[dict[str, Any]]:
    rows = pool.run(
        f"SELECT d.language, f.fact_id, f.fact, v.views FROM daily_facts d"
        f" JOIN facts f USING (fact_id) JOIN ({VIEW_TOTALS}) v USING (fact_id)"
        f" WHERE d.day = :day ORDER BY d.language",
        day=day,
    )
    return [{"language": r[0], "fact_id": r[1], "fact": r[2], "views": int(r[3])} for r in rows]


def most_viewed(pool: PostgresPool, limit: int = MOST_VIEWED) -> list[dict[str, Any]]:
    rows = pool.run(
        f"SELECT f.fact_id, f.language, f.fact, v.views FROM ({VIEW_TOTALS}) v JOIN facts f USING (fact_id)"
        f" WHERE v.views > 0 ORDER BY v.views DESC, f.fact_id LIMIT :limit",
        limit=limit,
    )
    return [{"fact_id": r[0], "language": r[1], "fact": r[2], "views": int(r[3])} for r in rows]


def catalogue_sizes(pool: PostgresPool) -> dict[str, int]:
    return {language: int(n) for language, n in pool.run("SELECT language, n FROM fact_counts ORDER BY language")}


def todays_cache_keys(client: redis.Redis, prefix: str, languages: tuple[str, ...], day: date) -> list[dict[str, Any]]:
    """Today's key of each language, its TTL in seconds and the fact it holds (None: not cached).

    The keys are known by name, so no SCAN walks a Redis that may hold other data.
    """
    keys = [today_key(prefix, language, day) for language in languages]
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.ttl(key)
        pipe.get(key)
    answers = pipe.execute()
    found = []
    for key, ttl, raw in zip(keys, answers[0::2], answers[1::2], strict=True):
        if raw is None:
            continue
        try:
            fact_id = json.loads(raw).get("fact_id")
        except (ValueError, AttributeError):
            fact_id = None
        found.append({"key": key, "ttl_s": int(ttl), "fact_id": fact_id})
    return found
