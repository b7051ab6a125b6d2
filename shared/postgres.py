"""A small pool of pg8000 connections with statements prepared once per connection.

pg8000 connections are not thread-safe and functions-framework serves with several threads,
so each request borrows a connection for the duration of its statement.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from typing import Any

import pg8000.native

from .config import PostgresSettings

# SQLSTATE classes and codes after which the connection itself is unusable.
_CONNECTION_LOST_CODES = ("08", "57P01", "57P02", "57P03")


class StoreUnavailable(RuntimeError):
    """Postgres cannot be reached or answered too slowly; the caller should try again shortly."""


class _ConnectionLost(StoreUnavailable):
    """The server closed the connection (a restart aborts what was in flight): safe to retry once."""


def _sqlstate(exc: BaseException) -> str:
    args = exc.args[0] if exc.args else None
    return args.get("C", "") if isinstance(args, dict) else ""


def is_connection_lost(exc: BaseException) -> bool:
    """True when the connection that raised `exc` can no longer be used."""
    if isinstance(exc, (pg8000.native.InterfaceError, OSError)):
        return True
    return _sqlstate(exc).startswith(_CONNECTION_LOST_CODES)


def _timed_out(exc: BaseException) -> bool:
    return _sqlstate(exc) == "57014" or isinstance(exc.__cause__ or exc, TimeoutError)


def connect(settings: PostgresSettings, timeout_s: float, statement_timeout_ms: int | None) -> pg8000.native.Connection:
    """Open one connection; StoreUnavailable if the server cannot be reached."""
    startup = {"statement_timeout": str(statement_timeout_ms)} if statement_timeout_ms else None
    try:
        return pg8000.native.Connection(
            user=settings.user,
            password=settings.password,
            host=settings.host,
            port=settings.port,
            database=settings.database,
            unix_sock=settings.unix_sock,
            timeout=timeout_s,
            application_name="facts-api",
            startup_params=startup,
        )
    except Exception as exc:  # pg8000 raises InterfaceError, OSError or DatabaseError here
        if is_connection_lost(exc) or _sqlstate(exc).startswith(("28", "3D")):
            raise StoreUnavailable(f"cannot connect to Postgres at {settings.describe()}: {_reason(exc)}") from None
        raise


def _reason(exc: BaseException) -> str:
    args = exc.args[0] if exc.args else None
    if isinstance(args, dict):
        return str(args.get("M", "error"))
    return exc.__class__.__name__ if not str(exc) else str(exc).splitlines()[0]


class PooledConnection:
    """A connection and the statements prepared on it, keyed by their SQL."""

    def __init__(self, con: pg8000.native.Connection) -> None:
        self.con = con
        self._prepared: dict[str, Any] = {}

    def run(self, sql: str, **params: Any) -> list[list[Any]]:
        statement = self._prepared.get(sql)
        if statement is None:
            statement = self._prepared[sql] = self.con.prepare(sql)
        return statement.run(**params)

    def close(self) -> None:
        # Closing a broken socket may fail; the connection is being thrown away anyway.
        with contextlib.suppress(Exception):
            self.con.close()


class PostgresPool:
    """Lazily made connections, reused across requests, re-made after a dropped connection."""

    def __init__(self, settings: PostgresSettings, size: int, timeout_s: float, statement_timeout_ms: int) -> None:
        self.settings = settings
        self._size = max(1, size)
        self._timeout_s = timeout_s
        self._statement_timeout_ms = statement_timeout_ms
        self._idle: queue.LifoQueue[PooledConnection] = queue.LifoQueue()
        self._open = 0
        self._lock = threading.Lock()

    def _acquire(self) -> tuple[PooledConnection, bool]:
        """A connection and whether it was reused from the pool (and so may have gone stale)."""
        try:
            return self._idle.get_nowait(), True
        except queue.Empty:
            pass
        with self._lock:
            may_open = self._open < self._size
            if may_open:
                self._open += 1
        if not may_open:
            try:
                return self._idle.get(timeout=self._timeout_s), True
            except queue.Empty:
                raise StoreUnavailable("all Postgres connections are busy") from None
        try:
            return PooledConnection(connect(self.settings, self._timeout_s, self._statement_timeout_ms)), False
        except BaseException:
            with self._lock:
                self._open -= 1
            raise

    def _discard(self, conn: PooledConnection) -> None:
        conn.close()
        with self._lock:
            self._open -= 1

    def _execute(self, conn: PooledConnection, sql: str, params: dict[str, Any]) -> list[list[Any]]:
        """Run on `conn`, then give it back to the pool, or throw it away if it broke."""
        try:
            rows = conn.run(sql, **params)
        except Exception as exc:
            if not is_connection_lost(exc):
                self._idle.put(conn)
                if _timed_out(exc):
                    raise StoreUnavailable("Postgres did not answer in time") from None
                raise
            self._discard(conn)
            error = StoreUnavailable if _timed_out(exc) else _ConnectionLost
            raise error(f"Postgres connection failed: {_reason(exc)}") from None
        self._idle.put(conn)
        return rows

    def run(self, sql: str, **params: Any) -> list[list[Any]]:
        """Run one prepared statement (autocommitted).

        A reused connection that turns out dead (the server restarted since) is retried once on a
        fresh connection: the server closed it, so the statement never ran there.
        """
        conn, reused = self._acquire()
        try:
            return self._execute(conn, sql, params)
        except _ConnectionLost:
            if not reused:
                raise
            self.drop_idle()  # the server went away: the other idle connections are stale too
        conn, _ = self._acquire()
        return self._execute(conn, sql, params)

    def drop_idle(self) -> None:
        """Close idle connections, e.g. after the server went away: they are all stale."""
        while True:
            try:
                conn = self._idle.get_nowait()
            except queue.Empty:
                return
            self._discard(conn)

    def close(self) -> None:
        self.drop_idle()
