"""Versioned migrations, applied once per database under an advisory lock.

The deployment runs them as a step of its own (`python -m shared.schema`, or
`python harness.py migrate`) before any instance starts. Instances that find the schema current
do one cheap query and nothing else; one that finds it behind migrates (the fallback for local
use), and one that finds another migrating is told to come back later (MigrationInProgress).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import pg8000.native

from . import catalogue
from .config import ConfigError, PostgresSettings, parse_database_url, seconds_above_zero
from .postgres import StatementRunner, StoreUnavailable, connect, transaction

log = logging.getLogger(__name__)
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
MIGRATION_LOCK_KEY = 0x6D696772  # "migr"
_RECORD = "INSERT INTO schema_migrations (version, name) VALUES (:version, :name)"


class MigrationInProgress(StoreUnavailable):
    """Another connection holds the migration lock: the schema is being brought up to date."""


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


def missing_versions(runner: StatementRunner) -> set[int]:
    """Known migrations not applied yet: a set, not a max, because SQL migrations numbered below the
    seed step (1000) can come after it (0003 on a database seeded by an earlier version)."""
    known = {migration.version for migration in migrations()}
    if not runner.run("SELECT to_regclass('schema_migrations') IS NOT NULL")[0][0]:
        return known
    return known - {row[0] for row in runner.run("SELECT version FROM schema_migrations")}


def migrate(con: pg8000.native.Connection, wait: bool = True) -> list[str]:
    """Apply the missing migrations; returns their names. Safe when several instances start at once.

    With `wait`, wait for another migrator to finish (then usually find nothing to do); without,
    raise MigrationInProgress at once, so that a request is answered instead of held.
    """
    if not missing_versions(con):
        return []
    applied_now: list[str] = []
    if wait:
        con.run("SELECT pg_advisory_lock(:key)", key=MIGRATION_LOCK_KEY)
    elif not con.run("SELECT pg_try_advisory_lock(:key)", key=MIGRATION_LOCK_KEY)[0][0]:
        raise MigrationInProgress("the database schema is being migrated by another instance")
    try:
        con.run(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        missing = missing_versions(con)  # again, under the lock: another migrator may have applied some
        for migration in migrations():
            if migration.version not in missing:
                continue
            log.info("applying migration %s", migration.name)
            with transaction(con) if migration.in_transaction else contextlib.nullcontext():
                migration.apply(con)
                con.run(_RECORD, version=migration.version, name=migration.name)
            applied_now.append(migration.name)
    finally:
        con.run("SELECT pg_advisory_unlock(:key)", key=MIGRATION_LOCK_KEY)
    return applied_now


def migrate_database(settings: PostgresSettings, timeout_s: float) -> list[str]:
    """Bring the database up to date on a connection of its own (no statement timeout; every
    socket read bounded by `timeout_s`), waiting for any other migrator."""
    with connect(settings, timeout_s, statement_timeout_ms=None) as con:
        return migrate(con, wait=True)


def main(argv: list[str] | None = None) -> int:
    """`python -m shared.schema`: the deployment's migration step, against DATABASE_URL."""
    parser = argparse.ArgumentParser(prog="python -m shared.schema", description=main.__doc__)
    parser.add_argument(
        "--timeout", type=seconds_above_zero, default=300.0, help="seconds any one step may take (default 300)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    url = os.environ.get("DATABASE_URL", "").strip()
    if not url:
        print("migrate: DATABASE_URL is not set (postgresql://user:password@host:5432/dbname)", file=sys.stderr)
        return 2
    try:
        applied = migrate_database(parse_database_url(url), args.timeout)
    except (ConfigError, StoreUnavailable) as exc:
        print(f"migrate: {exc}", file=sys.stderr)
        return 2
    version = latest_version()
    print(f"applied: {', '.join(applied)}" if applied else f"schema current (version {version}): nothing to do")
    return 0


if __name__ == "__main__":
    sys.exit(main())
