"""Servers the user points at with DATABASE_URL and REDIS_URL.

For tests, each worker gets its own database and its own Redis key prefix, removed afterwards,
so nothing else on those servers is touched.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

import redis

from shared.config import DEFAULT_CACHE_PREFIX, ConfigError, check_redis_url, parse_database_url
from shared.postgres import connect

from .servers import ProvidedServers


def configured_urls() -> tuple[str, str] | None:
    database_url, redis_url = os.environ.get("DATABASE_URL"), os.environ.get("REDIS_URL")
    return (database_url, redis_url) if database_url and redis_url else None


def _require_urls() -> tuple[str, str]:
    urls = configured_urls()
    if urls is None:
        raise ConfigError("the external services need both DATABASE_URL and REDIS_URL set")
    check_redis_url(urls[1])
    return urls


def with_database(url: str, database: str) -> str:
    """The same server URL, naming another database."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, parts.fragment))


@contextmanager
def external_servers() -> Iterator[ProvidedServers]:
    """The configured servers as they are (the harness)."""
    database_url, redis_url = _require_urls()
    settings = parse_database_url(database_url)
    # Keep the caller's key prefix: the harness re-exports these settings to its functions.
    prefix = os.environ.get("FACTS_CACHE_PREFIX") or DEFAULT_CACHE_PREFIX
    description = f"external Postgres {settings.describe()} and Redis (key prefix {prefix})"
    yield ProvidedServers(database_url, redis_url, "external", description, cache_prefix=prefix)


@contextmanager
def isolated_external_servers(namespace: str) -> Iterator[ProvidedServers]:
    """A database and a key prefix of our own on the configured servers (a test worker)."""
    began = time.perf_counter()
    database_url, redis_url = _require_urls()
    admin = parse_database_url(database_url)
    database = f"facts_test_{namespace}_{secrets.token_hex(3)}"
    with connect(admin, 5.0, statement_timeout_ms=None) as con:
        con.run(f'CREATE DATABASE "{database}"')
    prefix = f"facts-test:{database}"
    try:
        yield ProvidedServers(
            with_database(database_url, database),
            redis_url,
            "external",
            f"external Postgres {admin.describe()} (database {database}) and Redis (prefix {prefix})",
            startup_s=time.perf_counter() - began,
            cache_prefix=prefix,
        )
    finally:
        client = redis.Redis.from_url(redis_url)
        try:
            keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
            if keys:
                client.delete(*keys)
        finally:
            client.close()
        with connect(admin, 5.0, statement_timeout_ms=None) as con:
            con.run(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
