"""Passwords must never reach a log line or an answer: find them in whatever text a test collected."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from urllib.parse import unquote, urlsplit

import pytest

from devkit.servers import Servers
from shared import logs


def passwords_of(servers: Servers) -> list[str]:
    """The passwords inside the worker's server URLs, as written and URL-decoded."""
    found = set()
    for url in (servers.database_url, servers.redis_url):
        password = urlsplit(url).password
        if password:
            found |= {password, unquote(password)}
    return sorted(found)


def rendered(records: Iterable[logging.LogRecord]) -> list[str]:
    """Each record as both real formatters write it (Cloud Logging JSON and the terminal line)."""
    cloud, console = logs.CloudJsonFormatter(), logs.ConsoleFormatter()
    return [line for record in records for line in (cloud.format(record), console.format(record))]


def assert_no_password(lines: Iterable[str], servers: Servers) -> None:
    passwords = passwords_of(servers)
    leaked = [line for line in lines if any(password in line for password in passwords)]
    if leaked:
        example = leaked[0][:300]
        for password in passwords:
            example = example.replace(password, "<PASSWORD>")
        raise AssertionError(f"{len(leaked)} line(s) hold a server password, e.g. {example!r}")


@pytest.fixture
def fault_log(servers: Servers, caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """After the test, no record logged while it ran (caplog: every logger) may hold a server password."""
    yield
    assert_no_password(rendered(caplog.get_records("setup") + caplog.get_records("call")), servers)
