"""Servers the user points at: DATABASE_URL and REDIS_URL for the harness, FACTS_TEST_DATABASE_URL and
FACTS_TEST_REDIS_URL for the tests.

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

from devkit.servers.protocol import Servers
from shared.config import DEFAULT_CACHE_PREFIX, ConfigError, check_redis_url, parse_database_url
from shared.postgres import connect

# Which variables name the servers: the harness reads the functions' own; the tests read their own
# pair, so that only a variable meant for tests sends a test run to someone's servers.
HARNESS_URL_VARIABLES = ("DATABASE_URL", "REDIS_URL")
TEST_URL_VARIABLES = ("FACTS_TEST_DATABASE_URL", "FACTS_TEST_REDIS_URL")


def configured_urls(variables: tuple[str, str] = HARNESS_URL_VARIABLES) -> tuple[str, str] | None:
    database_url, redis_url = (os.environ.get(name) for name in variables)
    return (database_url, redis_url) if database_url and redis_url else None


def _require_urls(variables: tuple[str, str]) -> tuple[str, str]:
    urls = configured_urls(variables)
    if urls is None:
        raise ConfigError(f"the external servers need both {variables[0]} and {variables[1]} set")
    check_redis_url(urls[1])
    return urls


def with_database(url: str, database: str) -> str:
    """The same server URL, naming another database."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, parts.fragment))


@contextmanager
def external_servers() -> Iterator[Servers]:
    """The configured servers as they are (the harness)."""
    database_url, redis_url = _require_urls(HARNESS_URL_VARIABLES)
    settings = parse_database_url(database_url)
    # Keep the caller's key prefix: the harness re-exports these settings to its functions.
    prefix = os.environ.get("FACTS_CACHE_PREFIX") or DEFAULT_CACHE_PREFIX
    description = f"external Postgres {settings.describe()} and Redis (key prefix {prefix})"
    yield Servers(database_url, redis_url, "external", description, cache_prefix=prefix)


@contextmanager
def isolated_external_servers(namespace: str) -> Iterator[Servers]:
    """A database and a key prefix of our own on the servers the test variables name (a test worker)."""
    began = time.perf_counter()
    database_url, redis_url = _require_urls(TEST_URL_VARIABLES)
    admin = parse_database_url(database_url)
    database = f"facts_test_{namespace}_{secrets.token_hex(3)}"
    with connect(admin, 5.0, statement_timeout_ms=None) as con:
        con.run(f'CREATE DATABASE "{database}"')
    prefix = f"facts-test:{database}"
    try:
        yield Servers(
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
