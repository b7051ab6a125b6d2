"""Per-instance state: settings, the Postgres pool and the Redis cache, made on first use.

Cloud Functions reuses an instance for many requests, so connections live here, module-global,
and are never opened at import time.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from . import schema
from .cache import DayCache
from .config import Settings, load_settings
from .postgres import PostgresPool, connect
from .store import FactStore
from .upstream import Upstream

Clock = Callable[[], datetime]


@dataclass
class Services:
    settings: Settings
    store: FactStore
    cache: DayCache
    clock: Clock
    upstream: Upstream | None = None


_lock = threading.Lock()
_services: Services | None = None
_schema_ready = False


def utc_now() -> datetime:
    return datetime.now(UTC)


def ensure_schema(settings: Settings) -> None:
    """Migrate (and seed) on a dedicated connection without statement timeout; once per instance."""
    global _schema_ready
    if _schema_ready:
        return
    with _lock:
        if _schema_ready:
            return
        con = connect(settings.postgres, settings.connect_timeout_s, statement_timeout_ms=None)
        try:
            schema.migrate(con)
        finally:
            con.close()
        _schema_ready = True


def services(migrate: bool = True) -> Services:
    """The instance's services, built from the environment on first call.

    With `migrate`, the schema is also brought up to date on first use (one cheap check after that).
    """
    global _services
    current = _services
    if current is None:
        with _lock:
            if _services is None:
                settings = load_settings()
                pool = PostgresPool(
                    settings.postgres, settings.pool_size, settings.connect_timeout_s, settings.statement_timeout_ms
                )
                upstream = (
                    Upstream(settings.upstream_url, settings.upstream_timeout_s) if settings.upstream_url else None
                )
                cache = DayCache(settings.redis_url, settings.cache_prefix)
                _services = Services(settings, FactStore(pool), cache, utc_now, upstream)
            current = _services
    if migrate:
        ensure_schema(current.settings)
    return current


def reset(clock: Clock | None = None) -> None:
    """Forget the instance state (closing connections), e.g. after the environment changed in a test."""
    global _services, _schema_ready
    with _lock:
        if _services is not None:
            _services.store.pool.close()
            _services.cache.close()
        _services = None
        _schema_ready = False
    if clock is not None:
        set_clock(clock)


def set_clock(clock: Clock) -> None:
    """Replace the clock of the current instance (tests of the day boundary)."""
    services().clock = clock
