"""Verified TLS to both servers, as production is configured (docs/deploy.md): Postgres with
`sslmode=verify-full&sslrootcert=CA` (Cloud SQL's server CA) and Redis with
`rediss://...?ssl_ca_certs=CA` (Memorystore's in-transit encryption), against local servers that
speak only TLS with a certificate of the run's own CA (tests/support/tls_servers.py).

A server whose certificate the URL's CA did not sign, or whose name the certificate does not hold,
is refused: Postgres then answers a 503 with Retry-After, and the log says what TLS refused;
without Redis the functions carry on (the cache is an optimisation) and the log says the same.
No password reaches an answer or a log line.
"""

from __future__ import annotations

import logging
import re
from datetime import date

import pytest
import redis

from shared import instance
from shared.cache import today_key
from shared.config import load_settings

from .support.leaks import assert_no_password, rendered
from .support.tls_servers import changed

pytestmark = pytest.mark.usefixtures("fresh_instance")

RETRY_AFTER = "2"  # the README's promise for database_unavailable


@pytest.fixture
def use_urls(servers, random_client, monkeypatch):
    """Point the functions at other URLs. The worker's own servers answer one request first: the
    log of a database outage names a reason once until the database recovers, and a test before
    may have left the same reason behind."""

    def use(database_url: str, redis_url: str) -> None:
        for name, value in servers.environ().items():
            monkeypatch.setenv(name, value)
        instance.reset()
        assert random_client.get("/").status_code == 200
        monkeypatch.setenv("DATABASE_URL", database_url)
        monkeypatch.setenv("REDIS_URL", redis_url)
        instance.reset()

    return use


def _warnings(caplog: pytest.LogCaptureFixture, containing: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and containing in r.getMessage()]


def _assert_no_password(caplog, bodies, tls_servers) -> None:
    assert_no_password([*rendered(caplog.get_records("call")), *bodies], tls_servers.servers)


def test_both_servers_verified_serve_every_request_over_tls(tls_servers, use_urls, random_client, today_client):
    servers = tls_servers.servers
    use_urls(servers.database_url, servers.redis_url)
    assert random_client.get("/").status_code == 200
    today = today_client.get("/")
    assert today.status_code == 200, today.get_data(as_text=True)

    sessions = instance.state().store.pool.run(
        "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.application_name = 'facts-api'"
    )
    assert sessions and all(row == [True] for row in sessions), sessions
    cache = redis.Redis.from_url(servers.redis_url)
    try:
        key = today_key(load_settings().cache_prefix, "en", date.fromisoformat(today.json["date"]))
        assert cache.exists(key) == 1, "the day's fact was not cached in the TLS Redis"
    finally:
        cache.close()


@pytest.mark.parametrize("sslmode", ["verify-full", "verify-ca", "require"])
def test_a_postgres_certificate_from_another_ca_is_a_503_that_says_why(
    tls_servers, use_urls, random_client, today_client, caplog, sslmode
):
    # require with a CA file checks the chain as verify-ca does (libpq's rule).
    servers = tls_servers.servers
    stranger = str(tls_servers.stranger.cert_file)
    use_urls(changed(servers.database_url, sslmode=sslmode, sslrootcert=stranger), servers.redis_url)
    bodies = []
    for client in (random_client, today_client):
        response = client.get("/")
        bodies.append(response.get_data(as_text=True))
        assert response.status_code == 503, bodies[-1]
        assert response.headers["Retry-After"] == RETRY_AFTER
        assert response.json["error"]["code"] == "database_unavailable"
    assert _warnings(caplog, "certificate verify failed"), [r.getMessage() for r in caplog.records]
    _assert_no_password(caplog, bodies, tls_servers)


def test_verify_full_refuses_a_name_the_certificate_does_not_hold_and_verify_ca_does_not_check_it(
    tls_servers, use_urls, random_client, caplog
):
    servers = tls_servers.servers  # the certificate holds 127.0.0.1 only; localhost reaches the same server
    use_urls(changed(servers.database_url, host="localhost"), servers.redis_url)
    refused = random_client.get("/")
    assert refused.status_code == 503, refused.get_data(as_text=True)
    assert refused.headers["Retry-After"] == RETRY_AFTER
    assert _warnings(caplog, "Hostname mismatch, certificate is not valid for 'localhost'"), caplog.messages
    _assert_no_password(caplog, [refused.get_data(as_text=True)], tls_servers)

    use_urls(changed(servers.database_url, host="localhost", sslmode="verify-ca"), servers.redis_url)
    assert random_client.get("/").status_code == 200


@pytest.mark.parametrize(
    ("host", "ca", "refusal"),
    [
        (None, "stranger", "self-signed certificate in certificate chain|unable to get local issuer certificate"),
        ("localhost", "authority", "Hostname mismatch, certificate is not valid for 'localhost'"),
    ],
)
def test_a_redis_that_fails_verification_is_refused_and_the_functions_carry_on(
    tls_servers, use_urls, today_client, caplog, host, ca, refusal
):
    servers = tls_servers.servers
    with redis.Redis.from_url(servers.redis_url) as cache:
        cache.flushdb()  # a test before may have cached the day's fact there
    ca_file = getattr(tls_servers, ca).cert_file
    use_urls(servers.database_url, changed(servers.redis_url, host=host, ssl_ca_certs=str(ca_file)))
    response = today_client.get("/")
    assert response.status_code == 200, response.get_data(as_text=True)  # from Postgres alone
    assert instance.state().cache.ping() is False
    warnings = _warnings(caplog, "Redis unavailable")
    assert len(warnings) == 1 and re.search(f"TLS certificate refused: ({refusal})", warnings[0]), caplog.messages
    cache = redis.Redis.from_url(servers.redis_url)
    try:
        assert not cache.keys(f"{load_settings().cache_prefix}:today:*"), "the day's fact was cached anyway"
    finally:
        cache.close()
    _assert_no_password(caplog, [response.get_data(as_text=True)], tls_servers)


@pytest.mark.parametrize(("variable", "setting"), [("DATABASE_URL", "sslrootcert"), ("REDIS_URL", "ssl_ca_certs")])
def test_a_ca_file_that_is_not_there_is_a_503_naming_the_setting(
    tls_servers, use_urls, random_client, tmp_path, variable, setting
):
    servers = tls_servers.servers
    missing = str(tmp_path / "no-such-ca.pem")
    urls = {"DATABASE_URL": servers.database_url, "REDIS_URL": servers.redis_url}
    urls[variable] = changed(urls[variable], **{setting: missing})
    use_urls(urls["DATABASE_URL"], urls["REDIS_URL"])
    response = random_client.get("/")
    assert response.status_code == 503, response.get_data(as_text=True)
    assert response.json["error"]["code"] == "misconfigured"
    assert f"{variable}'s {setting} names {missing}, which does not exist" in response.json["error"]["message"]
    assert_no_password([response.get_data(as_text=True)], servers)
