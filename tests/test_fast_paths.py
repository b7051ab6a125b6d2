"""shared/fast: the switch, each fast path's check of its library's shape, and the stock fallback
when a library moved (faked here by an upgrade's version, or an attribute gone)."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import flask
import pg8000.core
import pg8000.native
import pytest

from shared import fast, logs, web
from shared.config import ConfigError, load_settings
from shared.fast import _shape
from shared.fast.one_trip import OneTripStatement
from shared.fast.werkzeug_response import PassThroughResponse
from shared.postgres import PostgresPool

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def fresh_choices(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every test decides again, switched on unless it says otherwise (so the shape checks run in
    either mode of the suite), and leaves the real libraries' choices behind it."""
    monkeypatch.setenv("FACTS_FAST_PATHS", "on")
    fast.reset()
    yield
    monkeypatch.undo()
    fast.reset()


def _upgraded(monkeypatch: pytest.MonkeyPatch, library: str, version: str) -> None:
    """Fake an upgrade of `library`: the version it reports (everything else is the real library)."""
    real = metadata.version
    if library == "python":
        monkeypatch.setattr(_shape.platform, "python_version", lambda: version)
    else:
        monkeypatch.setattr(_shape.metadata, "version", lambda name: version if name == library else real(name))


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "shared.fast" and r.levelno == logging.WARNING]


def test_every_fast_path_names_its_pin_what_it_saves_and_an_oracle_test_that_exists() -> None:
    for path in fast.CATALOGUE.values():
        assert path.pin[0] < path.pin[1] and path.saves and not re.search(r"\b\d", path.saves)  # figures: bench
        for oracle in re.findall(r"tests/\S+\.py", path.oracle):
            assert (ROOT / oracle).is_file(), oracle


def test_the_locked_versions_are_inside_the_pins() -> None:
    # requirements.txt (what is deployed) must get the fast paths: a lock outside a pin would
    # silently deploy the stock ones.
    locked = dict(re.findall(r"^([a-z0-9-]+)==(\S+)", (ROOT / "requirements.txt").read_text(), re.MULTILINE))
    for path in fast.CATALOGUE.values():
        if path.library != "python":
            assert _shape.within(locked[path.library], path.pin), (path.name, locked[path.library])


@pytest.mark.parametrize(
    ("version", "pin", "inside"),
    [("3.1.9", ("3.1", "3.2"), True), ("3.1", ("3.1", "3.2"), True), ("3.2.0", ("3.1", "3.2"), False),
     ("3.0.9", ("3.1", "3.2"), False), ("1.31.6rc1", ("1.31", "1.32"), True), ("unknown", ("1", "2"), False)],
)  # fmt: skip
def test_a_version_is_inside_a_pin_from_its_first_to_below_its_second(version: str, pin: tuple, inside: bool) -> None:
    assert _shape.within(version, pin) is inside


def _installed_as_locked() -> bool:
    """Whether the libraries the fast paths reach under are the lock's versions (the upgrade lane
    of the GitHub workflow installs newer ones over it)."""
    locked = dict(re.findall(r"^([a-z0-9-]+)==(\S+)", (ROOT / "requirements.txt").read_text(), re.MULTILINE))
    libraries = {path.library for path in fast.CATALOGUE.values()} - {"python"}
    return all(metadata.version(library) == locked[library] for library in libraries)


def test_by_default_every_fast_path_is_used_on_the_libraries_of_the_lock(monkeypatch, caplog) -> None:
    monkeypatch.delenv("FACTS_FAST_PATHS", raising=False)
    if not _installed_as_locked():
        # Newer releases: each fast path whose library moved is off, with one warning each; none fails.
        report = fast.report()
        assert len(_warnings(caplog)) == list(report.values()).count(False)
        return
    assert fast.report() == dict.fromkeys(fast.CATALOGUE, True)
    assert type(web.json_text_response(200, "{}")) is PassThroughResponse
    assert _warnings(caplog) == []


def test_switched_off_every_path_is_the_librarys_own(monkeypatch, caplog) -> None:
    monkeypatch.setenv("FACTS_FAST_PATHS", "off")
    used = fast.report()
    assert [name for name, on in used.items() if on] == []  # off is stock: nothing private touched
    response = web.json_text_response(200, '{"a":1}', {"Cache-Control": "no-store"})
    assert type(response) is flask.Response and response.get_data() == b'{"a":1}'
    alone = _alone_with_our_handler(monkeypatch, io.StringIO())
    assert fast.line_writer(alone, logs.LineHandler, logs.__file__) is None
    assert _warnings(caplog) == []
    assert load_settings({"DATABASE_URL": "postgresql://u@h/d", "REDIS_URL": "redis://h", "FACTS_FAST_PATHS": "off"})


def test_a_switch_that_is_neither_on_nor_off_is_refused_by_the_settings_and_turns_them_off_once(
    monkeypatch, caplog
) -> None:
    monkeypatch.setenv("FACTS_FAST_PATHS", "fast")
    with pytest.raises(ConfigError, match="FACTS_FAST_PATHS must be on or off, got 'fast'"):
        load_settings({"DATABASE_URL": "postgresql://u@h/d", "REDIS_URL": "redis://h", "FACTS_FAST_PATHS": "fast"})
    assert not fast.uses(fast.ONE_TRIP) and not fast.uses(fast.DIRECT_LINE)
    assert _warnings(caplog) == ["fast paths off: FACTS_FAST_PATHS must be on or off, got 'fast'"]


@pytest.mark.parametrize(
    ("library", "version", "path"),
    [("werkzeug", "3.2.0", fast.PASS_THROUGH_RESPONSE), ("pg8000", "1.32.0", fast.ONE_TRIP),
     ("python", "3.13.1", fast.DIRECT_LINE)],
)  # fmt: skip
def test_an_upgraded_library_gets_the_stock_path_and_one_warning(monkeypatch, caplog, library, version, path) -> None:
    _upgraded(monkeypatch, library, version)
    assert not fast.uses(path)
    assert not fast.uses(path)  # decided once
    assert _warnings(caplog) == [
        f"fast path {path} off, the stock path used instead: version {version} is outside the pin "
        f"(verified with {library} >={fast.CATALOGUE[path].pin[0]},<{fast.CATALOGUE[path].pin[1]})"
    ]


def test_a_missing_internal_gets_the_stock_path_and_one_warning(monkeypatch, caplog) -> None:
    monkeypatch.delattr(pg8000.core.CoreConnection, "prepare_statement")
    assert not fast.uses(fast.ONE_TRIP)
    assert _warnings(caplog) == [
        "fast path pg8000.one_trip off, the stock path used instead: CoreConnection has no prepare_statement "
        f"(verified with pg8000 >={fast.CATALOGUE[fast.ONE_TRIP].pin[0]},<{fast.CATALOGUE[fast.ONE_TRIP].pin[1]})"
    ]


def _alone_with_our_handler(monkeypatch: pytest.MonkeyPatch, stream: io.StringIO) -> logging.Logger:
    """A logger whose records reach only our handler, writing JSON lines to `stream` (until the test ends)."""
    logger = logging.getLogger("facts-test-fast-paths")
    monkeypatch.setattr(logger, "propagate", False)
    monkeypatch.setattr(logger, "handlers", [logs.LineHandler(stream, logs.CloudJsonFormatter())])
    logger.setLevel(logging.INFO)
    return logger


def test_a_stream_handler_that_moved_gets_the_stock_request_line_and_one_warning(monkeypatch, caplog) -> None:
    stream = io.StringIO()
    logger = _alone_with_our_handler(monkeypatch, stream)
    assert fast.line_writer(logger, logs.LineHandler, logs.__file__) is not None
    fast.reset()
    monkeypatch.setattr(logging.StreamHandler, "flush", lambda self: None)  # a StreamHandler that no longer flushes
    assert fast.line_writer(logger, logs.LineHandler, logs.__file__) is None
    logs.log_request("random_fact", "GET", "/", 200, 0.0, logger=logger)
    assert json.loads(stream.getvalue())["message"] == "GET / 200"  # written by the stock path
    assert _warnings(caplog) == [
        "fast path logging.direct_line off, the stock path used instead: a StreamHandler no longer writes "
        "format(record) + terminator and flushes once (verified with python >=3.11,<3.13)"
    ]


def test_a_shape_check_that_cannot_run_gets_the_stock_path_never_an_error(monkeypatch, caplog) -> None:
    def unreadable(_: object) -> str:
        raise OSError("could not get source code")

    monkeypatch.setattr(fast.one_trip.inspect, "getsource", unreadable)  # type: ignore[attr-defined]
    assert not fast.uses(fast.ONE_TRIP)
    assert "its shape could not be checked (OSError: could not get source code)" in _warnings(caplog)[0]


def test_werkzeug_moved_the_functions_answer_as_before(monkeypatch, caplog, random_client, today_client) -> None:
    """The fallback end to end: Werkzeug and pg8000 'upgraded', then both functions through
    functions-framework, on a fresh instance (its pool prepares the statements anew)."""
    from shared import instance

    _upgraded(monkeypatch, "werkzeug", "3.2.0")
    real = metadata.version
    monkeypatch.setattr(
        _shape.metadata, "version", lambda name: {"werkzeug": "3.2.0", "pg8000": "1.32.0"}.get(name) or real(name)
    )
    instance.reset()
    try:
        first, again = random_client.get("/"), random_client.get("/", query_string={"language": "de"})
        today = today_client.get("/")
        statements = [
            statement
            for conn in instance.state().store.pool._idle
            for statement in conn._prepared.values()  # type: ignore[attr-defined]
        ]
    finally:
        instance.reset()
    assert first.status_code == again.status_code == today.status_code == 200
    assert set(first.get_json()) == {"fact_id", "fact", "language", "source", "views"}
    assert first.get_json()["views"] == 1 and again.get_json()["language"] == "de"
    assert today.headers["ETag"] == f'W/"{today.get_json()["fact_id"]}-{today.get_json()["date"]}"'
    assert first.headers["Access-Control-Allow-Origin"] == "*" and first.headers["Cache-Control"] == "no-store"
    assert statements and all(isinstance(s, pg8000.native.PreparedStatement) for s in statements)
    assert sorted(m.split(" off,")[0] for m in _warnings(caplog)) == [
        f"fast path {fast.ONE_TRIP}",
        f"fast path {fast.PASS_THROUGH_RESPONSE}",
    ]


@pytest.mark.parametrize("sslmode", ["prefer", "disable"])  # a socket of ours / one pg8000 made (re-made)
def test_a_long_job_lifts_the_request_limits_on_a_connection_of_its_slot(servers, sslmode) -> None:
    from dataclasses import replace

    from shared.config import parse_database_url

    settings = replace(parse_database_url(servers.database_url), sslmode=sslmode)
    pool = PostgresPool(settings, 1, 0.3, statement_timeout_ms=200)
    try:
        with pool.long_job(timeout_s=10) as con:
            assert con.run("SELECT pg_sleep(0.5), 1")[0][1] == 1  # past both the socket and the statement limits
        assert pool.open_connections == 1
        with pytest.raises(Exception, match=r"statement timeout|did not answer"):
            pool.run("SELECT pg_sleep(0.25)")
        assert pool.run("SHOW statement_timeout") == [["200ms"]]
    finally:
        pool.close()


def test_the_one_trip_statement_is_the_pools_when_used(servers) -> None:
    from shared.config import parse_database_url

    pool = PostgresPool(parse_database_url(servers.database_url), 1, 5.0, statement_timeout_ms=1000)
    try:
        assert pool.run("SELECT 1") == [[1]]
        kinds = {type(s) for conn in pool._idle for s in conn._prepared.values()}  # type: ignore[attr-defined]
    finally:
        pool.close()
    assert kinds == {OneTripStatement if fast.uses(fast.ONE_TRIP) else pg8000.native.PreparedStatement}
