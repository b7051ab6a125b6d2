"""The connection forms production uses against a Postgres that stops answering (frozen: its
sockets stay open, nothing answers): the Cloud SQL socket form (`?host=/socket/dir`) and the TLS
modes `require` and `verify-full`. On each, the client's own timeout bounds the request: a pooled
connection's statement and a new connection's start-up (the TLS handshake included) both give up,
the function answers 503 with Retry-After, and it answers 200 again once the server is thawed.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from devkit.servers.waiting import wait_until
from shared import instance
from shared.config import parse_database_url

from .support.bounded import answer_within
from .support.tls_servers import changed

pytestmark = pytest.mark.usefixtures("fresh_instance")

RETRY_AFTER = "2"  # the README's promise for database_unavailable
TIMEOUT_S = 1.0  # the client's timeout in these tests (FACTS_CONNECT_TIMEOUT), shorter than the default
# A timed-out request takes one timeout (a pooled statement, or a new connection's start-up); three
# leave a loaded machine its margin and still fail at once where nothing bounds the wait.
LIMIT_S = 3 * TIMEOUT_S


def _socket_form(servers: Any) -> tuple[str, Any]:
    postgres = servers.postgres
    if postgres is None or not hasattr(postgres, "socket_dir"):
        pytest.skip(f"{servers.kind} servers have no Unix socket of ours to reach and freeze")
    tcp = parse_database_url(servers.database_url)
    url = f"postgresql://{tcp.user}:{tcp.password}@:{postgres.port}/{tcp.database}?host={postgres.socket_dir}"
    assert parse_database_url(url).unix_sock, url
    return url, postgres


@pytest.fixture(params=["socket", "require", "verify-full"])
def form(request) -> tuple[str, str, Any]:
    """(DATABASE_URL, REDIS_URL, the Postgres server to freeze) for the form."""
    if request.param == "socket":
        servers = request.getfixturevalue("servers")
        url, postgres = _socket_form(servers)
        return url, servers.redis_url, postgres
    tls = request.getfixturevalue("tls_servers").servers
    return changed(tls.database_url, sslmode=request.param), tls.redis_url, tls.postgres


def test_a_frozen_postgres_is_a_bounded_503_on_every_form_and_recovers(form, random_client, today_client, monkeypatch):
    database_url, redis_url, postgres = form
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("FACTS_CONNECT_TIMEOUT", str(TIMEOUT_S))
    instance.reset()
    assert random_client.get("/").status_code == 200  # the pool now holds a connection of this form
    postgres.freeze()
    try:
        # The pooled connection's statement times out first (and the connection is thrown away);
        # the next request opens a new one, whose start-up must time out too.
        for client in (random_client, today_client, random_client):
            began = time.monotonic()
            response = answer_within(client.get, LIMIT_S)
            assert response.status_code == 503, response.get_data(as_text=True)
            assert response.headers["Retry-After"] == RETRY_AFTER
            assert response.json["error"]["code"] == "database_unavailable"
            assert time.monotonic() - began >= TIMEOUT_S * 0.9, "answered before the timeout: the server was not frozen"
    finally:
        postgres.thaw()

    def answers() -> None:
        assert random_client.get("/").status_code == 200
        assert today_client.get("/").status_code == 200

    wait_until(answers, 10, "the functions to answer after the thaw")
