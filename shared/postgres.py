"""A small pool of pg8000 connections with statements prepared once per connection.

pg8000 connections are not thread-safe and functions-framework serves with several threads,
so each request borrows a connection for the duration of its statement. A connection unused for
a few seconds (FACTS_POOL_IDLE_TIMEOUT) is not used again: the pool closes it when it next hands
out a connection. Every gunicorn worker has its own pool, and after a burst one worker must not
sit on idle connections that a starved one needs.

No thread of ours closes them: on Cloud Run an instance gets no CPU once it has answered (and
a previous revision's instances none at all). The server ends them instead: each session is
opened with Postgres' idle_session_timeout at SERVER_IDLE_FACTOR times the pool's idle timeout.
"""

from __future__ import annotations

import contextlib
import functools
import math
import socket
import ssl
import struct
import threading
import time
import weakref
from collections import deque
from collections.abc import Iterator
from typing import Any, Protocol

import pg8000.native

from . import fast
from .config import POOL_IDLE_TIMEOUT_S, PostgresSettings

# SQLSTATE classes and codes after which the connection itself is unusable: lost, the server
# shutting down, or the session ended by idle_session_timeout (57P05) or its in-transaction twin (25P03).
_CONNECTION_LOST_CODES = ("08", "57P01", "57P02", "57P03", "57P05", "25P03")
# The server ends a session idle this many times the pool's idle timeout. Above 1, so the pool
# drops a connection first whenever its process has CPU (the server never ends a connection the
# pool would still hand out); at 2, a frozen instance's connections are back within 10 s by default.
SERVER_IDLE_FACTOR = 2.0
# Refused at connect time, and worth retrying later: class 53, insufficient resources
# (53300 too many clients, also the per-role and per-database connection limits), 28 bad
# credentials (a rotated secret), 3D no such database (not created yet).
_CONNECT_REFUSED_CODES = ("53", "28", "3D")


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


@functools.cache
def _tls_context(sslmode: str, sslrootcert: str | None = None) -> ssl.SSLContext:
    """The TLS context for libpq's `sslmode`, trusting `sslrootcert` (a CA file) only, or the
    system's CAs. As libpq: require checks the certificate against a CA file it is given (as
    verify-ca does), and only verify-full checks the server's name.

    Made once per process: loading CA certificates costs CPU that pg8000 would otherwise pay on
    every connection.
    """
    context = ssl.create_default_context(cafile=sslrootcert)
    context.check_hostname = sslmode == "verify-full"
    if sslmode in ("allow", "prefer") or (sslmode == "require" and sslrootcert is None):
        context.verify_mode = ssl.CERT_NONE  # encrypted, the certificate not checked (as libpq)
    return context


def _tls(settings: PostgresSettings) -> ssl.SSLContext | bool:
    """pg8000's ssl_context for the settings: False is no TLS (or TLS already settled by
    _socket_preferring_tls), a context requires it."""
    if settings.unix_sock:
        return False  # Postgres never speaks TLS on a Unix socket
    if settings.sslmode in ("disable", "allow", "prefer"):
        return False  # none, or negotiated on the socket _socket_preferring_tls hands to pg8000
    return _tls_context(settings.sslmode, settings.sslrootcert)


# SSLRequest: its length, then the code that asks the server whether it speaks TLS.
_SSL_REQUEST = struct.pack("!ii", 8, 80877103)


def _socket_preferring_tls(settings: PostgresSettings, timeout_s: float) -> socket.socket | None:
    """For libpq's prefer (and allow): a TCP socket, TLS if the server offers it, else plain; None
    for the other modes and for a Unix socket.

    pg8000 negotiates this itself when given no context, but then makes a context for every
    connection (the CA certificates loaded again); this uses the process's one, so a pool that
    reconnects after idling, or a cold instance filling its pool, does not load them each time.
    """
    if settings.unix_sock or settings.sslmode not in ("allow", "prefer"):
        return None
    try:
        sock = socket.create_connection((settings.host, settings.port), timeout_s)
    except OSError as exc:  # in pg8000's words, which say where
        message = f"Can't create a connection to host {settings.host} and port {settings.port} (timeout is {timeout_s})"
        raise pg8000.native.InterfaceError(message) from exc
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)  # as pg8000 does for its sockets
        sock.sendall(_SSL_REQUEST)
        if sock.recv(1) == b"S":
            return _tls_context(settings.sslmode).wrap_socket(sock, server_hostname=settings.host)
    except BaseException:
        sock.close()
        raise
    return sock  # the server said no (as pg8000, any answer but yes): go on in plain text


def connect(
    settings: PostgresSettings,
    timeout_s: float,
    statement_timeout_ms: int | None,
    idle_session_timeout_ms: int | None = None,
) -> pg8000.native.Connection:
    """Open one connection; StoreUnavailable if the server cannot be reached.

    The timeouts are the session's own (startup parameters): they hold on any server, Cloud SQL
    included, with no server configuration. idle_session_timeout needs Postgres 14 or later.
    """
    startup = {}
    if statement_timeout_ms:
        startup["statement_timeout"] = str(statement_timeout_ms)
    if idle_session_timeout_ms:
        startup["idle_session_timeout"] = str(idle_session_timeout_ms)
    sock = None
    try:
        sock = _socket_preferring_tls(settings, timeout_s)
        con = pg8000.native.Connection(
            user=settings.user,
            password=settings.password,
            host=settings.host,
            port=settings.port,
            database=settings.database,
            unix_sock=settings.unix_sock,
            sock=sock,
            ssl_context=_tls(settings),
            timeout=timeout_s,
            application_name="facts-api",
            startup_params=startup or None,
        )
    except Exception as exc:  # pg8000 raises InterfaceError, OSError or DatabaseError here
        if sock is not None:
            sock.close()
        if is_connection_lost(exc) or _sqlstate(exc).startswith(_CONNECT_REFUSED_CODES):
            raise StoreUnavailable(f"cannot connect to Postgres at {settings.describe()}: {_reason(exc)}") from None
        raise
    if sock is not None:
        _own_sockets[con] = sock
    return con


# The socket of each connection made on a socket of ours (sslmode prefer or allow, the default):
# its timeout is ours to change. pg8000 takes one only when it connects.
_own_sockets: weakref.WeakKeyDictionary[pg8000.native.Connection, socket.socket] = weakref.WeakKeyDictionary()


def set_socket_timeout(con: pg8000.native.Connection, timeout_s: float) -> bool:
    """Set the socket timeout of `con` where its socket is ours; False where only a new connection can."""
    sock = _own_sockets.get(con)
    if sock is None:
        return False
    sock.settimeout(timeout_s)
    return True


class StatementRunner(Protocol):
    """A pg8000 connection, or the pool: anything that runs a statement."""

    def run(self, sql: str, **params: Any) -> Any: ...


@contextlib.contextmanager
def transaction(con: StatementRunner) -> Iterator[None]:
    """BEGIN, then COMMIT when the block ends, or ROLLBACK when it raises (anything, Ctrl-C too)."""
    con.run("BEGIN")
    try:
        yield
    except BaseException:
        con.run("ROLLBACK")
        raise
    con.run("COMMIT")


def _reason(exc: BaseException) -> str:
    args = exc.args[0] if exc.args else None
    if isinstance(args, dict):
        return str(args.get("M", "error"))
    return exc.__class__.__name__ if not str(exc) else str(exc).splitlines()[0]


class PooledConnection:
    """A connection and the statements prepared on it, keyed by their SQL."""

    def __init__(self, con: pg8000.native.Connection) -> None:
        self.con = con
        self._prepared: dict[str, fast.Statement] = {}
        self.idle_since = time.monotonic()

    def run(self, sql: str, **params: Any) -> list[list[Any]]:
        statement = self._prepared.get(sql)
        if statement is None:
            statement = self._prepared[sql] = fast.prepare(self.con, sql)
        return statement.run(**params)

    def replace(self, con: pg8000.native.Connection) -> None:
        """Use `con` from now on; the old connection is closed, and its statements with it."""
        self.close()
        self.con, self._prepared = con, {}

    def close(self) -> None:
        # Closing a broken socket may fail; the connection is being thrown away anyway.
        with contextlib.suppress(Exception):
            self.con.close()


class PostgresPool:
    """Lazily made connections, reused across requests, re-made after a dropped connection, and
    not reused after `idle_timeout_s` unused; the server ends one unused for `server_idle_timeout_s`
    (by default SERVER_IDLE_FACTOR x `idle_timeout_s`) with no help from this process."""

    def __init__(
        self,
        settings: PostgresSettings,
        size: int,
        timeout_s: float,
        statement_timeout_ms: int,
        idle_timeout_s: float = POOL_IDLE_TIMEOUT_S,
        server_idle_timeout_s: float | None = None,
    ) -> None:
        self.settings = settings
        self._size = max(1, size)
        self._timeout_s = timeout_s
        self._statement_timeout_ms = statement_timeout_ms
        self._idle_timeout_s = idle_timeout_s
        server_idle_s = server_idle_timeout_s or SERVER_IDLE_FACTOR * idle_timeout_s
        self._server_idle_ms = max(1, math.ceil(server_idle_s * 1000))
        # Most recently used on the right: reused first, so the left end is what expires.
        self._idle: deque[PooledConnection] = deque()
        self._open = 0
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._waiting = 0  # threads waiting for a connection: a release notifies only when there are

    @property
    def open_connections(self) -> int:
        return self._open

    def _take_expired(self) -> list[PooledConnection]:
        """Remove the connections idle for too long (caller holds `_changed`); the caller closes them."""
        expired = []
        limit = time.monotonic() - self._idle_timeout_s
        while self._idle and self._idle[0].idle_since <= limit:
            expired.append(self._idle.popleft())
        self._open -= len(expired)
        if expired:
            self._changed.notify(len(expired))
        return expired

    def _acquire(self) -> tuple[PooledConnection, bool]:
        """A connection and whether it was reused from the pool (and so may have gone stale)."""
        now = time.monotonic()
        with self._lock:  # the common case, on the Condition's lock itself: an idle connection, none expired
            idle = self._idle
            if idle and idle[0].idle_since > now - self._idle_timeout_s:
                return idle.pop(), True
        return self._acquire_waiting(now + self._timeout_s)

    def _acquire_waiting(self, deadline: float) -> tuple[PooledConnection, bool]:
        """_acquire when no connection is idle (open one, or wait for one) or some have expired."""
        with self._changed:
            expired = self._take_expired()
            while not self._idle and self._open >= self._size:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._waiting += 1
                try:
                    self._changed.wait(remaining)
                finally:
                    self._waiting -= 1
            reused = self._idle.pop() if self._idle else None
            may_open = reused is None and self._open < self._size
            if may_open:
                self._open += 1
        for conn in expired:
            conn.close()
        if reused is not None:
            return reused, True
        if not may_open:
            raise StoreUnavailable("all Postgres connections of this worker are busy")
        try:
            con = connect(self.settings, self._timeout_s, self._statement_timeout_ms, self._server_idle_ms)
            return PooledConnection(con), False
        except BaseException:
            with self._changed:
                self._open -= 1
                self._changed.notify()
            raise

    def _release(self, conn: PooledConnection) -> None:
        conn.idle_since = time.monotonic()
        with self._lock:
            self._idle.append(conn)
            if self._waiting:
                self._changed.notify()

    def _discard(self, conn: PooledConnection) -> None:
        conn.close()
        with self._changed:
            self._open -= 1
            self._changed.notify()

    def _execute(self, conn: PooledConnection, sql: str, params: dict[str, Any]) -> list[list[Any]]:
        """Run on `conn`, then give it back to the pool, or throw it away if it broke."""
        try:
            rows = conn.run(sql, **params)
        except Exception as exc:
            if not is_connection_lost(exc):
                self._release(conn)
                if _timed_out(exc):
                    raise StoreUnavailable("Postgres did not answer in time") from None
                raise
            self._discard(conn)
            error = StoreUnavailable if _timed_out(exc) else _ConnectionLost
            raise error(f"Postgres connection failed: {_reason(exc)}") from None
        self._release(conn)
        return rows

    def run(self, sql: str, **params: Any) -> list[list[Any]]:
        """Run one prepared statement (autocommitted).

        A reused connection that turns out dead (the server restarted since, or ended the session
        for idling) is retried once on a fresh connection: the server closed it, so the statement
        never ran there.
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

    @contextlib.contextmanager
    def long_job(self, timeout_s: float) -> Iterator[pg8000.native.Connection]:
        """One of the pool's connections for a job longer than a request's limits (the migration):
        no statement timeout, and every socket read bounded by `timeout_s`; the pool's limits again
        when it is given back.

        It takes no server connection beyond the pool's. A migration on a connection of its own
        could never start when every slot of the server is held by the instances' pools, which
        traffic keeps warm (as in a cold burst of new instances).
        """
        conn, _ = self._acquire()
        reusable = False  # given back to the pool with its limits restored; otherwise closed
        try:
            try:
                self._set_limits(conn, timeout_s, "0")
                yield conn.con
            except Exception as exc:
                if not is_connection_lost(exc):
                    with contextlib.suppress(Exception):  # the job's own error is the one to raise
                        self._set_limits(conn, self._timeout_s, "DEFAULT")
                        reusable = True
                raise
            self._set_limits(conn, self._timeout_s, "DEFAULT")
            reusable = True
        finally:  # anything else (an interrupt half way through a statement): the session's state is unknown
            if reusable:
                self._release(conn)
            else:
                self._discard(conn)

    def _set_limits(self, conn: PooledConnection, socket_timeout_s: float, statement_timeout: str) -> None:
        """The socket timeout and the statement timeout of `conn`; DEFAULT is the session's own
        statement timeout, the one the pool gave at connect time."""
        if not set_socket_timeout(conn.con, socket_timeout_s):
            # A socket pg8000 made: the slot gets a new connection, the old one closed first so that
            # the job never holds more server connections than the pool.
            conn.close()
            conn.replace(connect(self.settings, socket_timeout_s, self._statement_timeout_ms, self._server_idle_ms))
        conn.con.run(f"SET statement_timeout = {statement_timeout}")

    def prefill(self, count: int) -> None:
        """Open `count` connections now (at most the pool's size), e.g. so a test's statements start together."""
        taken = [self._acquire()[0] for _ in range(min(count, self._size))]
        for conn in taken:
            self._release(conn)

    def drop_idle(self) -> None:
        """Close idle connections, e.g. after the server went away: they are all stale."""
        with self._changed:
            idle = list(self._idle)
            self._idle.clear()
            self._open -= len(idle)
            self._changed.notify(len(idle))
        for conn in idle:
            conn.close()

    def close(self) -> None:
        self.drop_idle()
