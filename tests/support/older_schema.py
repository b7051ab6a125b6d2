"""A database as an earlier release left it, made by the code's own schema.migrate()."""

from __future__ import annotations

import pg8000.native
import pytest

from shared import schema

SEED_STEP = 1000  # the version of the migration that seeds the bundled catalogue


def migrate_as_released_before(
    con: pg8000.native.Connection, monkeypatch: pytest.MonkeyPatch, version: int
) -> list[str]:
    """Apply the migrations numbered below `version`, and record the seed step without seeding (the
    test inserts the facts it needs); returns the names applied."""
    every = schema.migrations()
    released = [m for m in every if m.version < version] + [
        m._replace(apply=lambda con: None) for m in every if m.version == SEED_STEP
    ]
    with monkeypatch.context() as older_code:
        older_code.setattr(schema, "migrations", lambda: released)
        return schema.migrate(con)
