"""Settings from the environment: parsing, clear errors, and passwords that never show."""

from __future__ import annotations

import logging

import pytest

from shared.config import ConfigError, load_settings, mask_url, parse_database_url


def test_tcp_database_url():
    s = parse_database_url("postgresql://app:s%40cret@db.internal:6543/facts")
    assert (s.user, s.password, s.host, s.port, s.database, s.unix_sock) == (
        "app",
        "s@cret",
        "db.internal",
        6543,
        "facts",
        None,
    )


def test_socket_database_url_as_cloud_sql_uses():
    s = parse_database_url("postgresql://app:pw@/facts?host=/cloudsql/proj:region:inst")
    assert s.unix_sock == "/cloudsql/proj:region:inst/.s.PGSQL.5432"
    assert s.database == "facts"


def test_a_socket_directory_with_a_trailing_slash_and_a_port():
    s = parse_database_url("postgresql://app@:6000/facts?host=/run/postgresql-X/")
    assert s.unix_sock == "/run/postgresql-X/.s.PGSQL.6000"


def test_the_short_scheme_and_any_database_name_are_taken_as_written():
    # postgres:// is libpq's other spelling (Heroku and many tools write it); names are not trimmed.
    s = parse_database_url("postgres://app@db.internal/Xmas_facts")
    assert (s.user, s.password, s.host, s.port, s.database) == ("app", None, "db.internal", 5432, "Xmas_facts")


def test_sslmode_is_libpqs_prefer_unless_the_url_names_another():
    assert parse_database_url("postgresql://app:pw@db.internal/facts").sslmode == "prefer"
    assert parse_database_url("postgresql://app:pw@db.internal/facts?sslmode=verify-full").sslmode == "verify-full"
    with pytest.raises(ConfigError) as caught:
        parse_database_url("postgresql://app:hunter2@db.internal/facts?sslmode=on")
    assert "sslmode must be one of disable, allow, prefer, require, verify-ca, verify-full" in str(caught.value)
    assert "hunter2" not in str(caught.value)


@pytest.mark.parametrize(
    "url",
    [
        "mysql://a:b@h/d",
        "postgresql://h/d",
        "postgresql://u:hunter2@h:notaport/d",
        "postgresql://u:hunter2@h:5432/",
        "postgresql://u:hunter2@/d",
        "postgresql://u:hunter2@/d?host=relative/dir",
        "not a url",
    ],
)
def test_malformed_database_urls_say_what_is_expected_and_hide_the_password(url):
    with pytest.raises(ConfigError) as caught:
        parse_database_url(url)
    example = "postgresql://user:password@host:5432/dbname (or postgresql://user@/dbname?host=/socket/dir)"
    assert str(caught.value).endswith(f"; expected {example}")
    assert "hunter2" not in str(caught.value)


def test_missing_settings_name_the_variable_and_the_remedy():
    with pytest.raises(ConfigError, match=r"DATABASE_URL is not set.*harness\.py serve"):
        load_settings({})
    with pytest.raises(ConfigError, match="REDIS_URL is not set"):
        load_settings({"DATABASE_URL": "postgresql://u@h/d"})
    with pytest.raises(ConfigError, match="REDIS_URL must start with"):
        load_settings({"DATABASE_URL": "postgresql://u@h/d", "REDIS_URL": "http://h"})


def test_mask_url_hides_passwords_only():
    assert mask_url("postgresql://u:hunter2@h:5432/d") == "postgresql://u:***@h:5432/d"
    assert mask_url("redis://:hunter2@127.0.0.1:6379/0") == "redis://:***@127.0.0.1:6379/0"
    assert mask_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"


def test_a_function_without_configuration_answers_a_json_503(monkeypatch, caplog):
    import functions_framework

    from shared import instance
    from tests.support.harness_process import FUNCTIONS

    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("REDIS_URL", raising=False)
    instance.reset()
    try:
        client = functions_framework.create_app("random_fact", str(FUNCTIONS / "random_fact.py")).test_client()
        response = client.get("/")
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "30"  # a deploy takes minutes to fix, not seconds
        error = response.get_json()["error"]
        assert error["code"] == "misconfigured" and "DATABASE_URL" in error["message"]
        assert "Traceback" not in response.get_data(as_text=True)
        # The operator's log says it too, with the same reason.
        errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
        assert errors == [f"misconfigured: {error['message']}"]
    finally:
        instance.reset()


@pytest.mark.usefixtures("fresh_instance")
def test_the_first_configured_language_is_the_default(monkeypatch, random_client, today_client):
    monkeypatch.setenv("FACTS_LANGUAGES", "de,en")
    assert random_client.get("/").get_json()["language"] == "de"
    assert today_client.get("/").get_json()["language"] == "de"
    assert random_client.get("/?language=en").get_json()["language"] == "en"
    # Other parameters (a campaign tag, a cache buster) leave the default as it is.
    assert random_client.get("/?utm_source=mail").get_json()["language"] == "de"
