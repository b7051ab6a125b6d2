"""Settings read from the environment: every variable by its name, the limits of each value, the
words of each error. Pure parsing: no servers needed."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

import pytest

from shared.config import (
    THREADS_PER_WORKER,
    ConfigError,
    PostgresSettings,
    ServerShape,
    check_redis_url,
    load_settings,
    mask_url,
    seconds_above_zero,
    server_shape,
)

BASE = {"DATABASE_URL": "postgresql://app:pw@db.internal:5432/facts", "REDIS_URL": "redis://cache.internal:6379/0"}


def test_each_tuning_variable_is_read_by_its_documented_name() -> None:
    settings = load_settings(
        {
            **BASE,
            "FACTS_CONNECT_TIMEOUT": "2.5",
            "FACTS_STATEMENT_TIMEOUT_MS": "700",
            "FACTS_POOL_SIZE": "3",
            "FACTS_POOL_IDLE_TIMEOUT": "9",
            "FACTS_MIGRATE_TIMEOUT": "11",
            "FACTS_UPSTREAM_TIMEOUT": "0.5",
            "FACTS_UPSTREAM_URL": "https://facts.example/api",
            "FACTS_CACHE_PREFIX": "facts-staging",
        }
    )
    assert (settings.connect_timeout_s, settings.statement_timeout_ms, settings.pool_size) == (2.5, 700, 3)
    assert (settings.pool_idle_timeout_s, settings.migrate_timeout_s, settings.upstream_timeout_s) == (9, 11, 0.5)
    assert (settings.upstream_url, settings.cache_prefix) == ("https://facts.example/api", "facts-staging")
    assert load_settings(BASE).cache_prefix == "facts"


def test_an_empty_number_means_its_default() -> None:
    assert load_settings({**BASE, "FACTS_CONNECT_TIMEOUT": ""}).connect_timeout_s == 1.5


@pytest.mark.parametrize(
    "raw, message",
    [
        ("0", "FACTS_CONNECT_TIMEOUT must be positive, got '0'"),
        ("-1", "FACTS_CONNECT_TIMEOUT must be positive, got '-1'"),
        ("soon", "FACTS_CONNECT_TIMEOUT must be a number, got 'soon'"),
    ],
)
def test_a_number_must_be_a_positive_number(raw: str, message: str) -> None:
    with pytest.raises(ConfigError) as refused:
        load_settings({**BASE, "FACTS_CONNECT_TIMEOUT": raw})
    assert str(refused.value) == message


def test_the_server_shape_is_one_worker_per_cpu_with_four_threads_each_holding_one_connection() -> None:
    assert server_shape({}, cpus=2) == ServerShape(workers=2, threads=THREADS_PER_WORKER, pool_size=THREADS_PER_WORKER)
    assert server_shape({}, cpus=None).workers == 1  # unknown: one CPU
    assert server_shape({"THREADS": "7"}, cpus=3) == ServerShape(3, 7, 7)  # the pool follows the threads
    assert server_shape({"WORKERS": "5", "THREADS": "2", "FACTS_POOL_SIZE": "3"}, cpus=3) == ServerShape(5, 2, 3)
    assert server_shape({"WORKERS": " ", "THREADS": ""}, cpus=2) == ServerShape(2, 4, 4)  # empty: the default


def test_the_pool_has_a_connection_for_each_thread_of_the_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.cpu_count", lambda: 16)
    assert load_settings({**BASE, "THREADS": "6"}).pool_size == 6
    # THREADS unset: functions-framework's CLI runs 4 threads per CPU in its one worker.
    assert load_settings(BASE).pool_size == 64


@pytest.mark.parametrize("name", ["WORKERS", "THREADS", "FACTS_POOL_SIZE"])
@pytest.mark.parametrize("raw", ["0", "-2", "two", "2.5"])
def test_a_bad_shape_value_names_the_variable_and_what_it_must_be(name: str, raw: str) -> None:
    with pytest.raises(ConfigError) as refused:
        server_shape({name: raw}, cpus=2)
    assert str(refused.value) == f"{name} must be a whole number of at least 1, got {raw!r}"
    with pytest.raises(ConfigError, match=name):
        load_settings({**BASE, name: raw})


def test_the_shape_prints_as_shell_assignments_for_the_deploy_script() -> None:
    env = {**os.environ, "WORKERS": "", "THREADS": "3"}
    done = subprocess.run([sys.executable, "-m", "shared.config", "--shape", "--cpus", "2"], env=env,
                          capture_output=True, text=True, timeout=30)  # fmt: skip
    assert (done.returncode, done.stdout) == (0, "WORKERS=2\nTHREADS=3\nPOOL_SIZE=3\n")
    refused = subprocess.run([sys.executable, "-m", "shared.config", "--shape"], env={**env, "WORKERS": "many"},
                             capture_output=True, text=True, timeout=30)  # fmt: skip
    assert refused.returncode == 2 and "WORKERS must be a whole number" in refused.stderr and not refused.stdout


@pytest.mark.parametrize("url", ["redis://h:6379/0", "rediss://h:6380/0", "unix:///run/redis.sock"])
def test_redis_urls_over_tcp_tls_or_a_socket_are_accepted(url: str) -> None:
    assert check_redis_url(url) == url


EXAMPLE = (
    "redis://[:password@]host:6379/0, rediss://:password@host:6378/0?ssl_ca_certs=/path/ca.pem "
    "or unix:///path/to/redis.sock"
)


@pytest.mark.parametrize(
    "url, message",
    [
        ("http://h:6379/0", f"REDIS_URL must start with redis://, rediss:// or unix://; expected {EXAMPLE}"),
        ("redis:///0", f"REDIS_URL names no host; expected {EXAMPLE}"),
        ("redis://h:99999/0", f"REDIS_URL is malformed (Port out of range 0-65535); expected {EXAMPLE}"),
    ],
)
def test_a_bad_redis_url_says_what_is_expected(url: str, message: str) -> None:
    with pytest.raises(ConfigError) as refused:
        check_redis_url(url)
    assert str(refused.value) == message


@pytest.mark.parametrize("url", ["ftp://facts.example/api", "https:///api", "facts.example/api"])
def test_the_upstream_must_be_an_http_url_with_a_host(url: str) -> None:
    with pytest.raises(ConfigError) as refused:
        load_settings({**BASE, "FACTS_UPSTREAM_URL": url})
    assert str(refused.value) == (
        "FACTS_UPSTREAM_URL must be an http(s) URL such as https://uselessfacts.jsph.pl/api/v2/facts"
    )


def test_a_list_of_no_languages_is_refused() -> None:
    with pytest.raises(ConfigError) as refused:
        load_settings({**BASE, "FACTS_LANGUAGES": " , "})
    assert str(refused.value) == "FACTS_LANGUAGES must name at least one language, e.g. 'en,de'"


@pytest.mark.parametrize(
    "name, example",
    [("DATABASE_URL", "postgresql://user:password@host:5432/dbname"), ("REDIS_URL", "redis://host:6379/0")],
)
def test_a_missing_url_names_an_example_and_the_harness(name: str, example: str) -> None:
    with pytest.raises(ConfigError) as refused:
        load_settings({key: value for key, value in BASE.items() if key != name})
    assert str(refused.value) == (
        f"{name} is not set. Set it to {example}, or run the functions through "
        "`python harness.py serve`, which starts Postgres and Redis for you."
    )


@pytest.mark.parametrize(
    "url, masked",
    [
        ("redis://:pw@h:6379/0", "redis://:***@h:6379/0"),  # a password without a user
        ("postgresql://app:pw@/facts?host=/cloudsql/x", "postgresql://app:***@/facts?host=/cloudsql/x"),  # no host
        ("redis://h:99999/0", "redis://h:99999/0"),  # no password: as it is
        ("http://[::1/", "<unparseable URL>"),
    ],
)
def test_a_masked_url_keeps_everything_but_the_password(url: str, masked: str) -> None:
    assert mask_url(url) == masked


def test_a_database_is_described_by_its_socket_or_its_host_and_port() -> None:
    assert PostgresSettings(user="app", database="facts", host="db", port=6543).describe() == (
        "postgresql://app@db:6543/facts"
    )
    assert PostgresSettings(user="app", database="facts", unix_sock="/s/.s.PGSQL.5432").describe() == (
        "postgresql://app@/s/.s.PGSQL.5432/facts"
    )


def test_a_commands_timeout_is_a_finite_number_of_seconds_above_zero() -> None:
    assert seconds_above_zero("0.5") == 0.5 and seconds_above_zero("300") == 300.0
    for raw in ("0", "-1", "nan", "inf", "", "soon"):
        with pytest.raises(argparse.ArgumentTypeError, match=f"^must be a number of seconds above 0, got {raw!r}$"):
            seconds_above_zero(raw)
