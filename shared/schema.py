"""Versioned migrations, applied once per database under an advisory lock.

Instances that find the schema current do one cheap query and nothing else, so a cold start
never pays for migration or seeding work that is already done.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import pg8000.native

from . import catalogue

log = logging.getLogger(__name__)
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
MIGRATION_LOCK_KEY = 0x6D696772  # "migr"
_RECORD = "INSERT INTO schema_migrations (version, name) VALUES (:version, :name)"


class Migration(NamedTuple):
    version: int
    name: str
    apply: Callable[[pg8000.native.Connection], None]
    # False for steps that manage their own transaction (the catalogue import does).
    in_transaction: bool = True


def _sql_migration(path: Path) -> Migration:
    version = int(path.name.split("_", 1)[0])

    def apply(con: pg8000.native.Connection) -> None:
        con.run(path.read_text(encoding="utf-8"))

    return Migration(version, path.stem, apply)


def _seed_bundled_catalogue(con: pg8000.native.Connection) -> None:
    added = catalogue.import_facts(con, catalogue.bundled_facts())
    log.info("seeded the catalogue with %d bundled facts", added)


def migrations() -> list[Migration]:
    found = [_sql_migration(path) for path in sorted(MIGRATIONS_DIR.glob("[0-9]*.sql"))]
    # Seeding runs as its own step (not inside a transaction) because import_facts manages one.
    found.append(Migration(1000, "seed_bundled_catalogue", _seed_bundled_catalogue, in_transaction=False))
    return sorted(found)


def latest_version() -> int:
    return migrations()[-1].version


def current_version(con: pg8000.native.Connection) -> int:
    rows = con.run("SELECT to_regclass('schema_migrations') IS NOT NULL")
    if not rows[0][0]:
        return 0
    return int(con.run("SELECT coalesce(max(version), 0) FROM schema_migrations")[0][0])


class _Runner(Protocol):
    def run(self, sql: str, **params: Any) -> Any: ...


def missing_versions(runner: _Runner) -> set[int]:
    """Known migrations not applied yet: a set, not a max, because SQL migrations numbered below the
    seed step (1000) can come after it (0003 on a database seeded by an earlier version)."""
    known = {migration.version for migration in migrations()}
    if not runner.run("SELECT to_regclass('schema_migrations') IS NOT NULL")[0][0]:
        return known
    return known - {row[0] for row in runner.run("SELECT version FROM schema_migrations")}


def migrate(con: pg8000.native.Connection) -> list[str]:
    """Apply the missing migrations; returns their names. Safe when several instances start at once."""
    if not missing_versions(con):
        return []
    applied_now: list[str] = []
    con.run("SELECT pg_advisory_lock(:key)", key=MIGRATION_LOCK_KEY)
    try:
        con.run(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {row[0] for row in con.run("SELECT version FROM schema_migrations")}
        for migration in migrations():
            if migration.version in done:
                continue
            log.info("applying migration %s", migration.name)
            if migration.in_transaction:
                con.run("BEGIN")
            try:
                migration.apply(con)
                con.run(_RECORD, version=migration.version, name=migration.name)
                if migration.in_transaction:
                    con.run("COMMIT")
            except BaseException:
                if migration.in_transaction:
                    con.run("ROLLBACK")
                raise
            applied_now.append(migration.name)
    finally:
        con.run("SELECT pg_advisory_unlock(:key)", key=MIGRATION_LOCK_KEY)
    return applied_now
