"""What the two functions do, apart from HTTP: pick a fact, or find the day's fact."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

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


@dataclass(frozen=True)
class DayChoice:
    """What is fixed about the day's fact once chosen: all but its views."""

    fact_id: str
    fact: str
    language: str
    source: str

    def as_cached(self) -> dict[str, str]:
        return {"fact_id": self.fact_id, "fact": self.fact, "language": self.language, "source": self.source}

    @classmethod
    def from_cached(cls, value: dict[str, Any]) -> DayChoice | None:
        """None for an entry without every field (one written by an older version, or foreign)."""
        fields = [value.get(name) for name in ("fact_id", "fact", "language", "source")]
        return cls(*fields) if all(isinstance(field, str) for field in fields) else None  # type: ignore[arg-type]

    def with_views(self, views: int) -> Fact:
        return Fact(self.fact_id, self.fact, self.language, self.source, views)


def pick_random(
    store: FactStore, language: str, count_view: bool = True, upstream: Upstream | None = None
) -> Fact | None:
    """A random fact: from the upstream API when one is configured and answers, else the catalogue."""
    if upstream is not None and count_view:
        fetched = upstream.fetch_random(language)
        if fetched is not None:
            return store.view_external(fact_id(fetched.fact), fetched.fact, language, fetched.source)
    return store.random(language, count_view)


def fact_of_the_day(
    store: FactStore, cache: DayCache, language: str, now: datetime, count_view: bool = True
) -> DayFact | None:
    """The day's fact: remembered by the instance or cached in Redis, else chosen or read in Postgres and cached."""
    day = utc_day(now)
    memo = cache.memo
    choice: DayChoice | None = memo.get(language, day)
    remembered = choice is not None
    if not remembered:
        cached = cache.get(language, day)
        choice = DayChoice.from_cached(cached) if cached is not None else None
    if choice is not None:
        views = store.known_day_views(day, language, choice.fact_id, count_view)
        if views is not None:
            if not remembered:
                memo.remember(language, day, choice)
            return DayFact(choice.with_views(views), day, cache_hit=True)
        if remembered:
            memo.forget(language, day)
    fact = store.of_the_day(day, language, count_view)
    if fact is None:
        return None
    choice = DayChoice(fact.fact_id, fact.fact, fact.language, fact.source)
    cache.put(language, day, choice.as_cached(), seconds_until_utc_midnight(now))
    return DayFact(fact, day, cache_hit=False)
