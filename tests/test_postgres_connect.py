"""connect(): over a Unix socket as on Cloud SQL, named facts-api, with the statement timeout asked for,
and TLS as the URL's sslmode says."""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from shared import postgres
from shared.config import parse_database_url
from shared.postgres import StoreUnavailable, connect

from .support.tls_front import TlsFront, relay


def test_a_connection_names_itself_and_carries_the_statement_timeout(servers):
    settings = parse_database_url(servers.database_url)
    with connect(settings, 5.0, statement_timeout_ms=1234) as con:
        assert con.run("SELECT current_setting('application_name'), current_setting('statement_timeout')") == [
            ["facts-api", "1234ms"]
        ]
    with connect(settings, 5.0, statement_timeout_ms=None) as con:
        assert con.run("SELECT current_setting('statement_timeout')") == [["0"]]  # migrations may take long


def test_the_socket_form_of_the_url_connects_over_the_socket(servers, db):
    directory = db.run("SELECT split_part(current_setting('unix_socket_directories'), ',', 1)")[0][0].strip()
    tcp = parse_database_url(servers.database_url)
    if not directory or not (Path(directory) / f".s.PGSQL.{tcp.port}").exists():
        pytest.skip(f"the server's socket ({directory!r}) is not on this machine ({servers.kind} servers)")
    password = f":{tcp.password}" if tcp.password else ""
    url = f"postgresql://{tcp.user}{password}@:{tcp.port}/{tcp.database}?host={directory}"
    settings = parse_database_url(url)
    assert settings.unix_sock == f"{directory}/.s.PGSQL.{tcp.port}"
    with connect(settings, 5.0, statement_timeout_ms=None) as con:
        # A socket connection has no client address; a TCP one would show 127.0.0.1.
        assert con.run("SELECT inet_client_addr() IS NULL") == [[True]]


_USES_TLS = "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"


@pytest.fixture(scope="session")
def tls_certificate_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the fronts' self-signed certificate is made, once per worker."""
    return tmp_path_factory.mktemp("tls-front")


@pytest.fixture
def tls_front(servers, tls_certificate_folder) -> Iterator[TlsFront]:
    """The worker's Postgres behind a TLS front (a self-signed certificate): the suite's servers offer no TLS."""
    settings = parse_database_url(servers.database_url)
    front = TlsFront((settings.host, settings.port), tls_certificate_folder)
    yield front
    front.close()


@pytest.mark.parametrize(
    ("sslmode", "uses_tls"),
    [
        ("disable", False),
        ("allow", True),
        ("prefer", True),
        ("require", True),
        ("verify-ca", None),
        ("verify-full", None),
    ],
)
def test_sslmode_decides_whether_the_connection_uses_tls_as_libpq_does(servers, tls_front, sslmode, uses_tls):
    settings = replace(parse_database_url(servers.database_url), host="127.0.0.1", port=tls_front.port, sslmode=sslmode)
    if uses_tls is None:  # the verify modes check the certificate, and a self-signed one fails
        with pytest.raises(StoreUnavailable, match=r"cannot connect to Postgres at .*CERTIFICATE_VERIFY_FAILED"):
            connect(settings, 5.0, statement_timeout_ms=None)
        return
    with connect(settings, 5.0, statement_timeout_ms=None) as con:
        assert con.run("SELECT 1") == [[1]]
    assert tls_front.used_tls == [uses_tls]


def test_a_unix_socket_never_asks_for_tls(servers, tls_front, tmp_path):
    # Postgres has no TLS on a Unix socket; asking costs a round trip and ~20 ms of certificates.
    settings = parse_database_url(servers.database_url)
    socket_dir = tmp_path / "socket"
    socket_dir.mkdir()
    relay = socket.socket(socket.AF_UNIX)
    relay.bind(str(socket_dir / ".s.PGSQL.5432"))  # the URL below names no port
    relay.listen()
    forward = threading.Thread(target=lambda: _forward_one(relay, tls_front.port), daemon=True)
    forward.start()
    url = servers.database_url.split("@")[0] + f"@/{settings.database}?host={socket_dir}&sslmode=require"
    with connect(parse_database_url(url), 5.0, statement_timeout_ms=None) as con:
        assert con.run("SELECT 1") == [[1]]
    forward.join(10)
    relay.close()
    assert tls_front.used_tls == [False]


def _forward_one(listener: socket.socket, port: int) -> None:
    """Relay one connection from a Unix socket to the TLS front, byte for byte."""
    client, _ = listener.accept()
    with client, socket.create_connection(("127.0.0.1", port), timeout=10) as front:
        relay(client, front)


def test_require_against_a_server_without_tls_is_unavailable_and_says_why(servers, db):
    if db.run("SHOW ssl")[0][0] == "on":
        pytest.skip("this run's Postgres offers TLS (external servers may); the TLS front covers that case")
    settings = replace(parse_database_url(servers.database_url), sslmode="require")
    with pytest.raises(StoreUnavailable, match=r"cannot connect to Postgres at .*: Server refuses SSL"):
        connect(settings, 5.0, statement_timeout_ms=None)


def test_prefer_loads_the_certificates_once_per_process_not_per_connection(servers, tls_front, monkeypatch):
    # ssl.create_default_context loads the system's CA certificates: ~20 ms of CPU each time. pg8000
    # makes one per connection when left to negotiate prefer itself; a pool reconnecting after
    # idling, or a cold instance filling its pool, paid it per connection.
    made: list[ssl.SSLContext] = []
    real = ssl.create_default_context
    monkeypatch.setattr(ssl, "create_default_context", lambda *a, **k: made.append(real(*a, **k)) or made[-1])
    postgres._tls_context.cache_clear()
    try:
        offering = replace(parse_database_url(servers.database_url), host="127.0.0.1", port=tls_front.port)
        plain = parse_database_url(servers.database_url)  # the suite's servers offer no TLS
        for settings in (offering, plain, offering, plain, offering):
            assert settings.sslmode == "prefer"
            with connect(settings, 5.0, statement_timeout_ms=None) as con:
                assert con.run("SELECT 1") == [[1]]
    finally:
        postgres._tls_context.cache_clear()  # not one made with the counting stand-in
    assert tls_front.used_tls == [True, True, True]
    assert len(made) == 1


def test_prefer_names_the_host_to_a_tls_server(servers, tls_front):
    # Poolers and proxies in front of Postgres route TLS connections by the name the client sends
    # (SNI), as libpq sends it. (An IP address is never sent: the name here must be a name.)
    settings = replace(parse_database_url(servers.database_url), host="localhost", port=tls_front.port)
    with connect(settings, 5.0, statement_timeout_ms=None) as con:
        assert con.run("SELECT 1") == [[1]]
    assert tls_front.used_tls == [True] and tls_front.server_names == ["localhost"]


def test_a_server_that_never_answers_the_tls_request_is_unavailable_within_the_timeout(servers):
    # A listener that accepts and then says nothing: a frozen Postgres looks like this to a client.
    silent = socket.create_server(("127.0.0.1", 0))
    try:
        settings = replace(parse_database_url(servers.database_url), host="127.0.0.1", port=silent.getsockname()[1])
        began = time.monotonic()
        with pytest.raises(StoreUnavailable, match=r"^cannot connect to Postgres at "):
            connect(settings, 0.5, statement_timeout_ms=None)
        assert time.monotonic() - began < 3  # the 0.5 s timeout, with room for a loaded machine
    finally:
        silent.close()
