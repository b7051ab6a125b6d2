"""Fact queries against Postgres: each request's work is one prepared statement, one round trip."""

from __future__ import annotations

from datetime import date
from typing import Any, NamedTuple, get_type_hints

from .json_text import string
from .postgres import PostgresPool

# A fact's views are its own row's count (`facts.row_views`: random views, upstream views and a day's
# first views) plus its shards' in `view_shards` (migrations/0003, 0005): the day's fact has shards
# 1..DAY_SHARDS-1, one of them chosen at random per /today view, so the views of the day do not all
# queue on one row's lock; shard 0 holds what releases before 0005 counted there (read, never
# written). `fact_views` is the read path for totals.
DAY_SHARDS = 16  # counters of a day's fact: its row and its day shards
_RANDOM_DAY_SHARD = f"(SELECT 1 + floor(random() * {DAY_SHARDS - 1})::smallint)"
# The total a view answers: its counter's new count plus the others as of the statement's snapshot.
# It includes this view; it may miss views still in flight on other counters; and it never goes
# below an answer given before this statement began (those are committed, so in the snapshot).
_SHARDS_SUM = "(SELECT CAST(coalesce(sum(o.views), 0) AS bigint) FROM view_shards o WHERE o.fact_id = {}{})"
_OTHER_SHARDS = _SHARDS_SUM.format("v.fact_id", " AND o.shard <> v.shard")
_ROW_AND_SHARDS = "f.row_views + " + _SHARDS_SUM.format("f.fact_id", "")
# `seq` is dense per language (1..n), so a uniform pick is one index lookup whatever the
# catalogue size; the uncorrelated subquery runs once per statement.
_PICK_SEQ = "(SELECT 1 + floor(random() * n)::integer FROM fact_counts WHERE language = :language)"


class Fact(NamedTuple):  # a tuple: made from a row with no __init__ per field, unlike a frozen dataclass
    """A fact as answered: its shape, stated once. The SQL below, the JSON (as_json, json_text),
    the day's choice and its cache form (facts.DayChoice) are made from these fields; views is the
    count, every other field a column of `facts` (a new one: its migration, then here).
    tests/test_fact_shape.py holds openapi.json and docs/contract.md to it."""

    fact_id: str
    fact: str
    language: str
    source: str
    views: int

    def as_json(self) -> dict[str, Any]:
        return self._asdict()

    def json_text(self, **more: str) -> str:
        """as_json() and then `more` as compact JSON text, written directly: on every response,
        the keys and their order are known, so no general encoder needs to walk them."""
        text = "".join(
            [
                key + (str(int(value)) if number else string(value))  # type: ignore[call-overload, arg-type]
                for (key, number), value in zip(_JSON_KEYS, self, strict=True)
            ]
        )
        for key, value in more.items():
            text += f",{string(key)}:{string(value)}"
        return text + "}"


FIELD_TYPES: dict[str, type] = get_type_hints(Fact)
STORED_FIELDS = tuple(name for name in Fact._fields if name != "views")  # the columns of `facts`
# Each field's JSON key with what comes before it, and whether its value is a number.
_JSON_KEYS = tuple(
    (("," if index else "{") + string(name) + ":", FIELD_TYPES[name] is int) for index, name in enumerate(Fact._fields)
)
_COLUMNS = ", ".join(f"f.{name}" for name in STORED_FIELDS)

# One row of one table; only a fact with counts in shards (`spread`, migrations/0005) sums them.
RANDOM_VIEW = f"""
UPDATE facts f SET row_views = f.row_views + 1
WHERE f.language = :language AND f.seq = {_PICK_SEQ}
RETURNING {_COLUMNS}, CASE WHEN f.spread THEN {_ROW_AND_SHARDS} ELSE f.row_views END"""

RANDOM_PEEK = f"""
SELECT {_COLUMNS}, {_ROW_AND_SHARDS}
FROM facts f WHERE f.language = :language AND f.seq = {_PICK_SEQ}"""

# The day's choice: the stored one if any, else a random fact inserted for the day. Concurrent
# first requests race on the primary key; ON CONFLICT DO UPDATE hands the losers the winner's row.
# The chosen fact's day shards are made here (a no-op once they exist), so the statements below
# that count a known day's fact always find them.
_DAY_CHOICE = f"""
WITH existing AS (
    SELECT fact_id FROM daily_facts WHERE day = :day AND language = :language
), inserted AS (
    INSERT INTO daily_facts (day, language, fact_id)
    SELECT :day, :language, f.fact_id FROM facts f
    WHERE f.language = :language AND f.seq = {_PICK_SEQ} AND NOT EXISTS (SELECT 1 FROM existing)
    ON CONFLICT (day, language) DO UPDATE SET fact_id = daily_facts.fact_id
    RETURNING fact_id
), choice AS (
    SELECT fact_id FROM existing UNION ALL SELECT fact_id FROM inserted
), shards AS (
    INSERT INTO view_shards (fact_id, shard)
    SELECT choice.fact_id, s.shard FROM choice CROSS JOIN generate_series(1, {DAY_SHARDS - 1}) AS s (shard)
    ON CONFLICT DO NOTHING
)"""

# A day's first requests (and those of an instance that does not know the choice yet) count in the
# fact's row; the others use the statement after this one.
TODAY_VIEW = f"""{_DAY_CHOICE}
UPDATE facts f SET row_views = f.row_views + 1 FROM choice WHERE f.fact_id = choice.fact_id
RETURNING {_COLUMNS}, {_ROW_AND_SHARDS}"""

TODAY_PEEK = f"""{_DAY_CHOICE}
SELECT {_COLUMNS}, {_ROW_AND_SHARDS} FROM facts f JOIN choice USING (fact_id)"""

# Counting a view of the day's fact when the instance already knows which it is: one day shard at
# random, and only if `fact_id` is still the day's choice (Postgres stays the truth, so a stale memo
# or cache entry answers no rows and the caller asks TODAY_VIEW).
KNOWN_DAY_VIEW = f"""
UPDATE view_shards v SET views = v.views + 1
FROM daily_facts d JOIN facts f USING (fact_id)
WHERE d.day = :day AND d.language = :language AND d.fact_id = :fact_id
  AND v.fact_id = d.fact_id AND v.shard = {_RANDOM_DAY_SHARD}
RETURNING f.row_views + v.views + {_OTHER_SHARDS}"""

KNOWN_DAY_PEEK = f"""
SELECT {_ROW_AND_SHARDS} FROM daily_facts d JOIN facts f USING (fact_id)
WHERE d.day = :day AND d.language = :language AND d.fact_id = :fact_id"""

# The function's parameters are its own (migrations/0002): a new column changes it in its migration.
VIEW_EXTERNAL = f"SELECT {', '.join(Fact._fields)} FROM view_external_fact(:fact_id, :fact, :language, :source)"

# The one read path of view totals, a relation (fact_id, views) over the counter shards: the
# dashboard joins it (devharness/dashboard_data.py), VIEW_TOTAL picks one fact's row of it.
VIEW_TOTALS = "SELECT fact_id, views FROM fact_views"
VIEW_TOTAL = f"SELECT views FROM ({VIEW_TOTALS}) t WHERE fact_id = :fact_id"


def _one(rows: list[list[Any]]) -> Fact | None:
    return Fact._make(rows[0]) if rows else None


class FactStore:
    def __init__(self, pool: PostgresPool) -> None:
        self.pool = pool

    def random(self, language: str, count_view: bool = True) -> Fact | None:
        return _one(self.pool.run(RANDOM_VIEW if count_view else RANDOM_PEEK, language=language))

    def view_external(self, fact_id: str, fact: str, language: str, source: str) -> Fact | None:
        """Count a view of a fact from outside the catalogue, adding it on first sight."""
        return _one(self.pool.run(VIEW_EXTERNAL, fact_id=fact_id, fact=fact, language=language, source=source))

    def of_the_day(self, day: date, language: str, count_view: bool = True) -> Fact | None:
        """The day's fact, chosen now if it is the day's first request."""
        return _one(self.pool.run(TODAY_VIEW if count_view else TODAY_PEEK, day=day, language=language))

    def known_day_views(self, day: date, language: str, fact_id: str, count_view: bool = True) -> int | None:
        """Views of the day's fact `fact_id` (counting this one); None when it is not the day's choice."""
        statement = KNOWN_DAY_VIEW if count_view else KNOWN_DAY_PEEK
        rows = self.pool.run(statement, day=day, language=language, fact_id=fact_id)
        return int(rows[0][0]) if rows else None

    def views(self, fact_id: str) -> int | None:
        """A fact's views: the one read path for a count (None for an unknown fact)."""
        rows = self.pool.run(VIEW_TOTAL, fact_id=fact_id)
        return int(rows[0][0]) if rows else None

    def all_views(self) -> dict[str, int]:
        """Every fact's views, by fact id."""
        return {str(fact_id): int(views) for fact_id, views in self.pool.run(VIEW_TOTALS)}

    def ping(self) -> bool:
        return self.pool.run("SELECT 1") == [[1]]
