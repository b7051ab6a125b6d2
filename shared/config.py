"""Settings built from the environment when asked for, never at import time."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import parse_qs, unquote, urlsplit, urlunsplit

# Every default is one constant here, used by load_settings (the only maker of Settings).
DEFAULT_LANGUAGES = ("en", "de")  # the first is the default of the `language` parameter
DEFAULT_CACHE_PREFIX = "facts"
# Short on purpose: a request must fail with a 503 within a couple of seconds rather than hang.
CONNECT_TIMEOUT_S = 1.5
STATEMENT_TIMEOUT_MS = 1500
UPSTREAM_TIMEOUT_S = 1.0
# A pooled connection unused this long is not reused (closed when the pool next hands one out),
# and the server ends it at twice this (postgres.SERVER_IDLE_FACTOR), CPU or not: after a burst
# the connections go back to Postgres for whichever worker needs them, a worker starved during an
# overload at most about twice this long after it (the idle workers' sessions ended by the server).
# A steady load reconnects nothing (the most recently used connection is reused first).
POOL_IDLE_TIMEOUT_S = 5.0
# Migrating on first use runs on one of the pool's connections with this socket timeout (and no
# statement timeout): long enough for seeding on a small Cloud SQL tier, well inside the deployed
# function timeout (60 s).
MIGRATE_TIMEOUT_S = 30.0
# gunicorn threads per worker: measured on 2 cores (bench/server_config.py), one worker per CPU
# with 4 threads each beats fewer workers with more threads.
THREADS_PER_WORKER = 4
# functions-framework's CLI runs this many threads per CPU when THREADS is unset
# (functions_framework/_http/gunicorn.py): a pool sized for fewer would make its threads queue.
FRAMEWORK_THREADS_PER_CPU = 4


# libpq's names for how a connection uses TLS (`?sslmode=` in DATABASE_URL); prefer is libpq's default.
SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")


class ConfigError(ValueError):
    """A setting is missing or malformed; the message says how to fix it and holds no secret."""


FAST_PATHS_VALUES = {"on": True, "off": False}


def fast_paths_setting(environ: Mapping[str, str]) -> bool:
    """FACTS_FAST_PATHS=on|off (default on): whether shared/fast's speed-ups under pg8000,
    Werkzeug, logging and json are used (each still only where its library has the shape it was
    verified against)."""
    raw = environ.get("FACTS_FAST_PATHS", "").strip().lower() or "on"
    if raw not in FAST_PATHS_VALUES:
        raise ConfigError(f"FACTS_FAST_PATHS must be on or off, got {environ['FACTS_FAST_PATHS']!r}")
    return FAST_PATHS_VALUES[raw]


@dataclass(frozen=True)
class PostgresSettings:
    user: str
    database: str
    password: str | None = field(default=None, repr=False)
    host: str = "localhost"
    port: int = 5432
    unix_sock: str | None = None
    sslmode: str = "prefer"
    # The CA file that verifies the server's certificate (libpq's sslrootcert), e.g. Cloud SQL's
    # server CA; None: the system's CAs.
    sslrootcert: str | None = None

    def describe(self) -> str:
        where = self.unix_sock or f"{self.host}:{self.port}"
        return f"postgresql://{self.user}@{where}/{self.database}"


@dataclass(frozen=True)
class Settings:
    postgres: PostgresSettings
    redis_url: str = field(repr=False)
    languages: tuple[str, ...]
    connect_timeout_s: float
    statement_timeout_ms: int
    pool_size: int
    pool_idle_timeout_s: float
    migrate_timeout_s: float
    cache_prefix: str
    upstream_url: str | None
    upstream_timeout_s: float


@dataclass(frozen=True)
class ServerShape:
    """How one instance serves: gunicorn workers, threads per worker, Postgres connections per worker."""

    workers: int
    threads: int
    pool_size: int

    def shell(self) -> str:
        """The shape as shell assignments, for the deploy script (`python3 -m shared.config --shape`)."""
        return f"WORKERS={self.workers}\nTHREADS={self.threads}\nPOOL_SIZE={self.pool_size}\n"


def _whole(environ: Mapping[str, str], name: str, default: int) -> int:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) < 1:
        raise ConfigError(f"{name} must be a whole number of at least 1, got {environ[name]!r}")
    return int(raw)


def server_shape(environ: Mapping[str, str], cpus: int | None) -> ServerShape:
    """The one server shape, for the harness, the pool size and the deploy script: WORKERS (default
    one per CPU), THREADS (default THREADS_PER_WORKER) and FACTS_POOL_SIZE (default THREADS: each
    of a worker's threads holds at most one connection)."""
    threads = _whole(environ, "THREADS", THREADS_PER_WORKER)
    return ServerShape(
        workers=_whole(environ, "WORKERS", max(1, cpus or 1)),
        threads=threads,
        pool_size=_whole(environ, "FACTS_POOL_SIZE", threads),
    )


def served_threads(environ: Mapping[str, str], cpus: int | None) -> int:
    """The threads of the gunicorn worker this process serves in: THREADS, as every server of this
    project sets it (the harness, the deploy, the benchmark), else functions-framework's own default."""
    return _whole(environ, "THREADS", FRAMEWORK_THREADS_PER_CPU * max(1, cpus or 1))


def pool_size(environ: Mapping[str, str], cpus: int | None) -> int:
    """Postgres connections per worker: FACTS_POOL_SIZE (an operator's budget), else one per thread
    of the server, however it was started, so that no thread waits for a connection."""
    return _whole(environ, "FACTS_POOL_SIZE", served_threads(environ, cpus))


def mask_url(url: str) -> str:
    """The URL with any password replaced by ***, for logs and error bodies."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    if parts.password is None:
        return url
    userinfo = f"{parts.username}:***" if parts.username else ":***"
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, f"{userinfo}@{host}", parts.path, parts.query, parts.fragment))


def parse_database_url(url: str) -> PostgresSettings:
    """Parse `postgresql://user:password@host:port/db` or the socket form `postgresql://user@/db?host=/dir`,
    with libpq's `sslmode` and `sslrootcert` (a CA file) if given."""
    example = "postgresql://user:password@host:5432/dbname (or postgresql://user@/dbname?host=/socket/dir)"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ConfigError(f"DATABASE_URL is malformed ({exc}); expected {example}") from None
    if parts.scheme not in ("postgresql", "postgres"):
        raise ConfigError(f"DATABASE_URL must start with postgresql://; expected {example}")
    database = unquote(parts.path.lstrip("/"))
    if not parts.username or not database:
        raise ConfigError(f"DATABASE_URL needs a user and a database name; expected {example}")
    query = parse_qs(parts.query)
    socket_dir = query.get("host", [None])[0]
    unix_sock = None
    if socket_dir and socket_dir.startswith("/"):
        unix_sock = f"{socket_dir.rstrip('/')}/.s.PGSQL.{port or 5432}"
    elif not parts.hostname:
        raise ConfigError(f"DATABASE_URL names no host; expected {example}")
    sslmode = query.get("sslmode", ["prefer"])[0]
    if sslmode not in SSL_MODES:
        raise ConfigError(f"DATABASE_URL's sslmode must be one of {', '.join(SSL_MODES)}")
    sslrootcert = query.get("sslrootcert", [None])[0]
    _check_ca_file("DATABASE_URL's sslrootcert", sslrootcert)
    return PostgresSettings(
        user=unquote(parts.username),
        password=unquote(parts.password) if parts.password is not None else None,
        host=parts.hostname or "localhost",
        port=port or 5432,
        database=database,
        unix_sock=unix_sock,
        sslmode=sslmode,
        sslrootcert=sslrootcert,
    )


def _check_ca_file(setting: str, path: str | None) -> None:
    """A CA file named by a URL must be readable now: a missing one would otherwise fail every
    connection later with an error that names neither the file nor the setting."""
    if path is None:
        return
    if not os.path.isabs(path):
        raise ConfigError(f"{setting} must be an absolute path to a PEM file, got {path!r}")
    if not os.access(path, os.R_OK):
        raise ConfigError(f"{setting} names {path}, which does not exist or cannot be read")


def check_redis_url(url: str) -> str:
    """The URL, checked; redis-py reads its query (`rediss://...?ssl_ca_certs=/path/ca.pem` verifies
    the server against that CA file, as Memorystore's in-transit encryption needs)."""
    example = "redis://[:password@]host:6379/0, rediss://:password@host:6378/0?ssl_ca_certs=/path/ca.pem or unix:///path/to/redis.sock"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError as exc:
        raise ConfigError(f"REDIS_URL is malformed ({exc}); expected {example}") from None
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise ConfigError(f"REDIS_URL must start with redis://, rediss:// or unix://; expected {example}")
    if parts.scheme != "unix" and not parts.hostname:
        raise ConfigError(f"REDIS_URL names no host; expected {example}")
    _check_ca_file("REDIS_URL's ssl_ca_certs", parse_qs(parts.query).get("ssl_ca_certs", [None])[0])
    return url


def _required(environ: Mapping[str, str], name: str, example: str) -> str:
    value = environ.get(name, "").strip()
    if not value:
        raise ConfigError(
            f"{name} is not set. Set it to {example}, or run the functions through "
            "`python harness.py serve`, which starts Postgres and Redis for you."
        )
    return value


def _number(environ: Mapping[str, str], name: str, default: float) -> float:
    raw = environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if value <= 0:
        raise ConfigError(f"{name} must be positive, got {raw!r}")
    return value


def _upstream_url(url: str | None) -> str | None:
    if not url:
        return None
    if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).hostname:
        raise ConfigError("FACTS_UPSTREAM_URL must be an http(s) URL such as https://uselessfacts.jsph.pl/api/v2/facts")
    return url


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Build the settings from the environment (or the mapping given)."""
    env = os.environ if environ is None else environ
    postgres = parse_database_url(_required(env, "DATABASE_URL", "postgresql://user:password@host:5432/dbname"))
    redis_url = check_redis_url(_required(env, "REDIS_URL", "redis://host:6379/0"))
    languages = tuple(
        code.strip() for code in env.get("FACTS_LANGUAGES", ",".join(DEFAULT_LANGUAGES)).split(",") if code.strip()
    )
    if not languages:
        raise ConfigError("FACTS_LANGUAGES must name at least one language, e.g. 'en,de'")
    server_shape(env, os.cpu_count())  # a malformed WORKERS is refused here too, as the server would
    fast_paths_setting(env)  # refused here too; shared.fast is the switch's one reader
    return Settings(
        postgres=postgres,
        redis_url=redis_url,
        languages=languages,
        connect_timeout_s=_number(env, "FACTS_CONNECT_TIMEOUT", CONNECT_TIMEOUT_S),
        statement_timeout_ms=int(_number(env, "FACTS_STATEMENT_TIMEOUT_MS", STATEMENT_TIMEOUT_MS)),
        pool_size=pool_size(env, os.cpu_count()),
        pool_idle_timeout_s=_number(env, "FACTS_POOL_IDLE_TIMEOUT", POOL_IDLE_TIMEOUT_S),
        migrate_timeout_s=_number(env, "FACTS_MIGRATE_TIMEOUT", MIGRATE_TIMEOUT_S),
        cache_prefix=env.get("FACTS_CACHE_PREFIX") or DEFAULT_CACHE_PREFIX,
        upstream_url=_upstream_url(env.get("FACTS_UPSTREAM_URL")),
        upstream_timeout_s=_number(env, "FACTS_UPSTREAM_TIMEOUT", UPSTREAM_TIMEOUT_S),
    )


def seconds_above_zero(raw: str) -> float:
    """An argparse type for a command's --timeout: a finite number of seconds above 0 (0 or a
    negative one would reach the socket and end in a traceback, nan or inf never time out)."""
    try:
        seconds = float(raw)
    except ValueError:
        seconds = 0.0
    if not 0 < seconds < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number of seconds above 0, got {raw!r}")
    return seconds


def main(argv: list[str] | None = None) -> int:
    """`python3 -m shared.config --shape [--cpus N]`: the server shape as shell assignments."""
    parser = argparse.ArgumentParser(description="Print the server shape (WORKERS, THREADS, POOL_SIZE) for a shell.")
    parser.add_argument("--shape", action="store_true", required=True, help="print the shape")
    parser.add_argument("--cpus", type=int, default=os.cpu_count(), help="CPUs of an instance (default: here)")
    args = parser.parse_args(argv)
    try:
        sys.stdout.write(server_shape(os.environ, args.cpus).shell())
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
