"""A scratch Postgres (and Redis) of our own: empty, with the max_connections we ask for, and an
app role that owns the database without being a superuser, as on Cloud SQL. The tests' empty
databases and the benchmark's scale-out rehearsal start it; the functions connect as the app role.

Also the sampler that counts the app role's sessions in pg_stat_activity (the connection budget).
"""

from __future__ import annotations

import contextlib
import secrets
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pg8000.native

from devkit.servers.embedded import embedded_servers

APP_ROLE = "facts_app"


def connect_url(url: str) -> pg8000.native.Connection:
    parts = urlsplit(url)
    return pg8000.native.Connection(
        parts.username or "postgres", host=parts.hostname or "127.0.0.1", port=parts.port or 5432,
        password=parts.password, database=parts.path.lstrip("/"), timeout=30,
    )  # fmt: skip


def with_user(url: str, user: str, password: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, f"{user}:{password}@{parts.hostname}:{parts.port}", parts.path, "", ""))


@contextlib.contextmanager
def scratch_servers(max_connections: int) -> Iterator[tuple[str, str, str]]:
    """An empty Postgres allowing `max_connections` (and Redis): (admin URL, app URL, Redis URL).

    The app role owns the database (it migrates) but is not a superuser, as on Cloud SQL.
    """
    with tempfile.TemporaryDirectory(prefix="facts-scratch-") as folder:
        Path(folder).chmod(0o755)  # the unprivileged server user (when we are root) must enter it
        with embedded_servers(Path(folder), durable=False, max_connections=max_connections) as servers:
            password = secrets.token_hex(12)
            with connect_url(servers.database_url) as con:
                con.run(f"CREATE ROLE {APP_ROLE} LOGIN PASSWORD {pg8000.native.literal(password)}")
                con.run(f"ALTER DATABASE facts OWNER TO {APP_ROLE}")
            yield servers.database_url, with_user(servers.database_url, APP_ROLE, password), servers.redis_url


class ConnectionSampler:
    """The functions' connections (the app role's backends) sampled from pg_stat_activity."""

    def __init__(self, admin_url: str, interval_s: float = 0.02) -> None:
        self._admin_url = admin_url
        self._interval_s = interval_s
        self._stop = threading.Event()
        self.peak = 0
        self.samples = 0
        # The client ports of the backends in the latest sample: the instances' ends of the sessions.
        self.current: frozenset[int] = frozenset()
        self._thread = threading.Thread(target=self._sample, name="pg-sampler", daemon=True)

    def __enter__(self) -> ConnectionSampler:
        # A superuser, so it can always connect; but it counts in the total like any connection.
        self._con = connect_url(self._admin_url)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)
        self._con.close()

    def _sample(self) -> None:
        query = "SELECT client_port FROM pg_stat_activity WHERE usename = :role AND backend_type = 'client backend'"
        while not self._stop.wait(self._interval_s):
            ports = frozenset(int(row[0]) for row in self._con.run(query, role=APP_ROLE))
            self.current = ports
            self.peak = max(self.peak, len(ports))
            self.samples += 1
