"""Per-instance state: settings, the Postgres pool, the Redis cache and the day's memo, made on first use.

Cloud Functions reuses an instance for many requests, so connections live here, module-global,
and are never opened at import time. What a function does not use is not even imported (random
never loads redis-py), which keeps cold starts short.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from . import schema
from .config import Settings, load_settings
from .facts import DayMemo
from .postgres import PostgresPool, StoreUnavailable, is_connection_lost
from .store import FactStore

if TYPE_CHECKING:
    from .cache import DayCache
    from .upstream import Upstream

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class InstanceState:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.clock: Clock = utc_now  # replaced by set_clock in tests of the day boundary
        pool = PostgresPool(
            settings.postgres,
            settings.pool_size,
            settings.connect_timeout_s,
            settings.statement_timeout_ms,
            settings.pool_idle_timeout_s,
        )
        self.store = FactStore(pool)
        self.day_memo = DayMemo()  # this instance's own; Redis (self.cache) is what the instances share
        self._cache: DayCache | None = None
        self._upstream: Upstream | None = None
        self._lock = threading.Lock()

    @property
    def cache(self) -> DayCache:
        if self._cache is None:
            with self._lock:
                if self._cache is None:
                    # redis-py is imported on first use: /random never needs it (a shorter cold start).
                    from .cache import DayCache

                    self._cache = DayCache(self.settings.redis_url, self.settings.cache_prefix)
        return self._cache

    @property
    def upstream(self) -> Upstream | None:
        if self.settings.upstream_url is None:
            return None
        if self._upstream is None:
            with self._lock:
                if self._upstream is None:
                    # Only where an upstream is configured (most instances have none).
                    from .upstream import Upstream

                    self._upstream = Upstream(self.settings.upstream_url, self.settings.upstream_timeout_s)
        return self._upstream

    def close(self) -> None:
        self.store.pool.close()
        if self._cache is not None:
            self._cache.close()


_lock = threading.Lock()
# Held only while one thread of this process migrates: the others answer 503 instead of queueing.
_migrating = threading.Lock()
_state: InstanceState | None = None
_schema_ready = False


def _schema_is_current(pool: PostgresPool) -> bool:
    # On a pooled connection: an instance that finds the schema current pays no extra connection.
    return not schema.missing_versions(pool)


def ensure_schema(instance_state: InstanceState) -> None:
    """Check the schema once per instance; migrate (and seed) only if it is behind.

    The deployment migrates before any instance starts; this is the fallback. While another
    instance (or thread) migrates, it raises MigrationInProgress, a 503 with Retry-After.
    """
    global _schema_ready
    if _schema_ready:
        return
    with _lock:
        if _schema_ready:
            return
        _schema_ready = _schema_is_current(instance_state.store.pool)
    if _schema_ready:
        return
    if not _migrating.acquire(blocking=False):
        raise schema.MigrationInProgress("the database schema is being migrated by another request")
    try:
        _migrate(instance_state)
        _schema_ready = True
    finally:
        _migrating.release()


def _migrate(instance_state: InstanceState) -> None:
    # On one of the pool's connections, with a longer socket timeout and no statement timeout:
    # migrating and seeding may outlast the requests' 1.5 s limits.
    try:
        with instance_state.store.pool.long_job(instance_state.settings.migrate_timeout_s) as con:
            schema.migrate(con, wait=False)
    except StoreUnavailable:
        raise
    except Exception as exc:
        if is_connection_lost(exc):
            raise StoreUnavailable(f"migrating the schema failed: {exc.__class__.__name__}") from None
        raise


def state(migrate: bool = True) -> InstanceState:
    """The instance's state (settings, pool, cache), built from the environment on first call.

    With `migrate`, the schema is also brought up to date on first use (nothing after that).
    """
    global _state
    current = _state
    if current is None:
        with _lock:
            if _state is None:
                _state = InstanceState(load_settings())
            current = _state
    if migrate:
        ensure_schema(current)
    return current


def reset() -> None:
    """Forget the instance state (closing connections), e.g. after the environment changed in a test."""
    global _state, _schema_ready
    with _lock:
        if _state is not None:
            _state.close()
        _state = None
        _schema_ready = False


def set_clock(clock: Clock) -> None:
    """Replace the clock of the current instance (tests of the day boundary)."""
    state().clock = clock
