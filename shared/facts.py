"""What the two functions do, apart from HTTP: pick a fact, or find the day's fact."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

from .catalogue import fact_id
from .store import FIELD_TYPES, STORED_FIELDS, Fact, FactStore

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


class DayChoice(tuple[str, ...]):
    """What is fixed about the day's fact once chosen: all of the Fact but its views (its stored
    fields, in its order), cached in Redis as an object of those fields."""

    __slots__ = ()

    def __new__(cls, *values: str) -> DayChoice:
        if len(values) != len(STORED_FIELDS):
            raise TypeError(f"a day's choice has the fields {', '.join(STORED_FIELDS)}; got {len(values)} values")
        return super().__new__(cls, values)

    @classmethod
    def of(cls, fact: Fact) -> DayChoice:
        return cls(*(getattr(fact, name) for name in STORED_FIELDS))

    @property
    def fact_id(self) -> str:
        return self[_FACT_ID]

    def as_cached(self) -> dict[str, str]:
        return dict(zip(STORED_FIELDS, self, strict=True))

    @classmethod
    def from_cached(cls, value: dict[str, Any]) -> DayChoice | None:
        """None for an entry without every field (one written by an older version, or foreign)."""
        fields = [value.get(name) for name in STORED_FIELDS]
        typed = all(isinstance(field, FIELD_TYPES[name]) for name, field in zip(STORED_FIELDS, fields, strict=True))
        return cls(*fields) if typed else None  # type: ignore[arg-type]

    def with_views(self, views: int) -> Fact:
        return Fact(**self.as_cached(), views=views)


_FACT_ID = STORED_FIELDS.index("fact_id")


class DayMemo:
    """The instance's memo of the day's choice per (language, date), taken from Redis hits.

    A choice never changes once made, so an instance that has seen Redis answer it stops asking
    Redis: a warm instance's /today is one Postgres statement. Only a Redis hit fills the memo, so
    Redis stays the shared cache that cold instances read first, and an instance whose own write
    filled Redis still asks it again (which is how caching resumes after Redis comes back). The
    caller has Postgres confirm a remembered choice, and forgets it when Postgres does not.
    """

    def __init__(self) -> None:
        self._known: dict[tuple[str, date], DayChoice] = {}
        self._lock = threading.Lock()  # writers only: a reader sees the old dict or the new one

    def get(self, language: str, day: date) -> DayChoice | None:
        return self._known.get((language, day))

    def remember(self, language: str, day: date, choice: DayChoice) -> None:
        with self._lock:
            # Only the latest day's choices are kept, so the memo never grows past one per language.
            kept = {key: value for key, value in self._known.items() if key[1] >= day}
            kept[(language, day)] = choice
            self._known = kept

    def forget(self, language: str, day: date) -> None:
        with self._lock:
            self._known = {key: value for key, value in self._known.items() if key != (language, day)}


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
    store: FactStore, cache: DayCache, memo: DayMemo, language: str, now: datetime, count_view: bool = True
) -> DayFact | None:
    """The day's fact: remembered by the instance (`memo`) or cached in Redis, else chosen or read
    in Postgres and cached."""
    day = utc_day(now)
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
    choice = DayChoice.of(fact)
    cache.put(language, day, choice.as_cached(), seconds_until_utc_midnight(now))
    return DayFact(fact, day, cache_hit=False)
