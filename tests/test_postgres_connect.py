"""connect(): over a Unix socket as on Cloud SQL, named facts-api, with the statement timeout asked for."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.config import parse_database_url
from shared.postgres import connect


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
        pytest.skip(f"the server's socket ({directory!r}) is not on this machine ({servers.provider} servers)")
    password = f":{tcp.password}" if tcp.password else ""
    url = f"postgresql://{tcp.user}{password}@:{tcp.port}/{tcp.database}?host={directory}"
    settings = parse_database_url(url)
    assert settings.unix_sock == f"{directory}/.s.PGSQL.{tcp.port}"
    with connect(settings, 5.0, statement_timeout_ms=None) as con:
        # A socket connection has no client address; a TCP one would show 127.0.0.1.
        assert con.run("SELECT inet_client_addr() IS NULL") == [[True]]
