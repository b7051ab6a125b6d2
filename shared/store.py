"""Fact queries against Postgres: each request's work is one prepared statement, one round trip."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from .postgres import PostgresPool

_COLUMNS = "fact_id, fact, language, source, views"
# `seq` is dense per language (1..n), so a uniform pick is one index lookup whatever the
# catalogue size; the uncorrelated subquery runs once per statement.
_PICK_SEQ = "(SELECT 1 + floor(random() * n)::integer FROM fact_counts WHERE language = :language)"

RANDOM_VIEW = f"""
UPDATE facts SET views = views + 1
WHERE language = :language AND seq = {_PICK_SEQ}
RETURNING {_COLUMNS}"""

RANDOM_PEEK = f"SELECT {_COLUMNS} FROM facts WHERE language = :language AND seq = {_PICK_SEQ}"

VIEW_BY_ID = f"UPDATE facts SET views = views + 1 WHERE fact_id = :fact_id RETURNING {_COLUMNS}"

PEEK_BY_ID = f"SELECT {_COLUMNS} FROM facts WHERE fact_id = :fact_id"

# The day's choice: the stored one if any, else a random fact inserted for the day. Concurrent
# first requests race on the primary key; ON CONFLICT DO UPDATE hands the losers the winner's row.
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
)"""

TODAY_VIEW = f"""{_DAY_CHOICE}
UPDATE facts f SET views = f.views + 1 FROM choice WHERE f.fact_id = choice.fact_id
RETURNING f.fact_id, f.fact, f.language, f.source, f.views"""

VIEW_EXTERNAL = f"SELECT {_COLUMNS} FROM view_external_fact(:fact_id, :fact, :language, :source)"

TODAY_PEEK = f"""{_DAY_CHOICE}
SELECT f.fact_id, f.fact, f.language, f.source, f.views FROM facts f JOIN choice USING (fact_id)"""


@dataclass(frozen=True)
class Fact:
    fact_id: str
    fact: str
    language: str
    source: str
    views: int

    def as_json(self) -> dict[str, Any]:
        return {
            "fact_id": self.fact_id,
            "fact": self.fact,
            "language": self.language,
            "source": self.source,
            "views": self.views,
        }


def _one(rows: list[list[Any]]) -> Fact | None:
    return Fact(*rows[0]) if rows else None


class FactStore:
    def __init__(self, pool: PostgresPool) -> None:
        self.pool = pool

    def random(self, language: str, count_view: bool = True) -> Fact | None:
        return _one(self.pool.run(RANDOM_VIEW if count_view else RANDOM_PEEK, language=language))

    def by_id(self, fact_id: str, count_view: bool = True) -> Fact | None:
        return _one(self.pool.run(VIEW_BY_ID if count_view else PEEK_BY_ID, fact_id=fact_id))

    def view_external(self, fact_id: str, fact: str, language: str, source: str) -> Fact | None:
        """Count a view of a fact from outside the catalogue, adding it on first sight."""
        return _one(self.pool.run(VIEW_EXTERNAL, fact_id=fact_id, fact=fact, language=language, source=source))

    def of_the_day(self, day: date, language: str, count_view: bool = True) -> Fact | None:
        """The day's fact, chosen now if it is the day's first request."""
        return _one(self.pool.run(TODAY_VIEW if count_view else TODAY_PEEK, day=day, language=language))

    def ping(self) -> bool:
        return self.pool.run("SELECT 1") == [[1]]
