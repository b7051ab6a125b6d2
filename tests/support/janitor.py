"""Per-test isolation: put the worker's database and cache back to the state after seeding.

Cheaper than cloning a template database per test (a few ms), and enough because tests only
add facts, count views, choose days and write cache keys.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis

from shared.postgres import StatementRunner, transaction


def baseline(db: StatementRunner) -> dict[str, int]:
    return {language: n for language, n in db.run("SELECT language, n FROM fact_counts")}


@dataclass(frozen=True)
class Janitor:
    """A worker's database and cache, and the state to put them back to: its seeded counts."""

    db: StatementRunner
    cache: redis.Redis
    prefix: str
    seeded_counts: dict[str, int]

    def reset(self) -> None:
        reset(self.db, self.cache, self.prefix, self.seeded_counts)


def reset(db: StatementRunner, cache: redis.Redis, prefix: str, counts: dict[str, int]) -> None:
    languages, sizes = list(counts), list(counts.values())
    with transaction(db):
        db.run("DELETE FROM daily_facts")  # a few rows: cheaper than TRUNCATE's new file and lock
        # The facts added since seeding: numbered after the seeded ones of their language, or of a
        # language seeded with none (the code counts every fact it adds in fact_counts). Index range
        # lookups on (language, seq): one statement over every fact took most of this reset's time.
        for language, seeded in counts.items():
            db.run("DELETE FROM facts WHERE language = :language AND seq > :n", language=language, n=seeded)
        db.run(
            "DELETE FROM facts WHERE language IN"
            " (SELECT language FROM fact_counts WHERE NOT language = ANY(CAST(:languages AS text[])))",
            languages=languages,
        )
        db.run("DELETE FROM fact_counts")
        db.run(
            "INSERT INTO fact_counts SELECT * FROM unnest(CAST(:languages AS text[]), CAST(:sizes AS int[]))",
            languages=languages,
            sizes=sizes,
        )
        # Views live in the facts' rows and in shards (shared/migrations/0003, 0005): the day shards go,
        # shard 0 and the rows are zeroed.
        db.run("DELETE FROM view_shards WHERE shard > 0")
        db.run("UPDATE view_shards SET views = 0 WHERE views <> 0")
        db.run("UPDATE facts SET row_views = 0, spread = false WHERE row_views <> 0 OR spread")
    keys = list(cache.scan_iter(match=f"{prefix}:*", count=1000))
    if keys:
        cache.delete(*keys)
