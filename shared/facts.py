"""What the two functions do, apart from HTTP: pick a fact, or find the day's fact."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING

from .catalogue import fact_id
from .store import Fact, FactStore

if TYPE_CHECKING:
    from .cache import DayCache
    from .upstream import Upstream


def utc_day(now: datetime) -> date:
    return now.astimezone(UTC).date()


def seconds_until_utc_midnight(now: datetime) -> int:
    """Whole seconds left in the UTC day (at least 1), the TTL of the day's cache entry."""
    now_utc = now.astimezone(UTC)
    midnight = datetime.combine(now_utc.date() + timedelta(days=1), time.min, tzinfo=UTC)
    return max(1, int((midnight - now_utc).total_seconds()))


@dataclass(frozen=True)
class DayFact:
    fact: Fact
    day: date
    cache_hit: bool


def random_fact(
    store: FactStore, language: str, count_view: bool = True, upstream: Upstream | None = None
) -> Fact | None:
    """A random fact: from the upstream API when one is configured and answers, else the catalogue."""
    if upstream is not None and count_view:
        fetched = upstream.random_fact(language)
        if fetched is not None:
            return store.view_external(fact_id(fetched.fact), fetched.fact, language, fetched.source)
    return store.random(language, count_view)


def fact_of_the_day(
    store: FactStore, cache: DayCache, language: str, now: datetime, count_view: bool = True
) -> DayFact | None:
    """The day's fact: from the cache when it holds it, else chosen or read in Postgres and cached."""
    day = utc_day(now)
    cached = cache.get(language, day)
    if cached is not None:
        fact = store.by_id(str(cached["fact_id"]), count_view)
        if fact is not None:
            return DayFact(fact, day, cache_hit=True)
    fact = store.of_the_day(day, language, count_view)
    if fact is None:
        return None
    cache.put(
        language,
        day,
        {"fact_id": fact.fact_id, "fact": fact.fact, "language": language},
        seconds_until_utc_midnight(now),
    )
    return DayFact(fact, day, cache_hit=False)
