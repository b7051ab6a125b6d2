"""shared/fast: the switch, each fast path's check of its library's shape, and the stock fallback
when a library moved (faked here by an upgrade's version, or an attribute gone)."""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import re
from collections.abc import Callable, Iterator
from importlib import metadata
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import flask
import pg8000.converters
import pg8000.core
import pg8000.native
import pytest
from werkzeug.datastructures import Headers

from shared import fast, logs, web
from shared.config import ConfigError, load_settings
from shared.fast import _shape, werkzeug_response
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


def _upgraded(monkeypatch: pytest.MonkeyPatch, library: str, version: str | None) -> None:
    """Fake an upgrade of `library`: the version it reports, None for a copy without its dist-info
    (everything else is the real library)."""
    real = metadata.version

    def reported(name: str) -> str:
        if name != library:
            return real(name)
        if version is None:
            raise metadata.PackageNotFoundError(name)
        return version

    if library == "python":
        monkeypatch.setattr(_shape.platform, "python_version", lambda: version)
    else:
        monkeypatch.setattr(_shape.metadata, "version", reported)


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "shared.fast" and r.levelno == logging.WARNING]


def _fallback(path: str, difference: str) -> str:
    """The one warning of a fast path that found its library moved."""
    entry = fast.CATALOGUE[path]
    return (
        f"fast path {path} off, the stock path used instead: {difference} "
        f"(verified with {entry.library} >={entry.pin[0]},<{entry.pin[1]})"
    )


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
     ("3.0.9", ("3.1", "3.2"), False), ("1.31.6rc1", ("1.31", "1.32"), True), ("unknown", ("1", "2"), False),
     ("3.2", ("3.1", "3.2"), False)],
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
     ("python", "3.13.1", fast.DIRECT_LINE), ("werkzeug", None, fast.PASS_THROUGH_RESPONSE)],
)  # fmt: skip
def test_an_upgraded_library_gets_the_stock_path_and_one_warning(monkeypatch, caplog, library, version, path) -> None:
    _upgraded(monkeypatch, library, version)
    assert fast.uses(path) is False
    assert fast.uses(path) is False  # decided once, and a bool as report() promises
    assert _warnings(caplog) == [_fallback(path, f"version {version or 'unknown'} is outside the pin")]


def test_each_fast_path_checks_its_library_once_and_keeps_its_choice(monkeypatch) -> None:
    checks: list[str] = []
    for name, path in fast.CATALOGUE.items():

        def counted(shape: Callable[[], str | None] = path.shape, name: str = name) -> str | None:
            checks.append(name)
            return shape()

        monkeypatch.setitem(fast.CATALOGUE, name, dataclasses.replace(path, shape=counted))
    first = fast.report()
    assert fast.report() == first and all(fast.uses(name) is first[name] for name in fast.CATALOGUE)
    for name, path in fast.CATALOGUE.items():  # a library outside its pin is not looked at closer
        assert checks.count(name) == _shape.within(_shape.version_of(path.library), path.pin), name


class _Built(flask.Response):
    """flask.Response, knowing when its __init__ is done (a fake below moves something after it)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.built = True


class _HeadersElsewhere(_Built):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.headers = SimpleNamespace(pairs=[*self.headers.items()])  # type: ignore[assignment]


class _HeadersAsLists(_Built):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.headers._list = [list(pair) for pair in self.headers._list]  # type: ignore[misc]


class _ClosersElsewhere(_Built):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._on_close = ()  # type: ignore[assignment]


class _NoLengthSwitch(_Built):
    def __getattribute__(self, name: str) -> Any:
        if name == "automatically_set_content_length" and vars(self).get("built"):
            raise AttributeError(name)
        return super().__getattribute__(name)


class _HeadersFromRequest(_Built):
    def get_wsgi_headers(self, request_environ: Any) -> Headers:
        return super().get_wsgi_headers(request_environ)


class _BodyFromRequest(_Built):
    def get_app_iter(self, request_environ: Any) -> Any:
        return super().get_app_iter(request_environ)


class _CopiedOtherwise(Headers):
    def copy(self) -> _CopiedOtherwise:
        return type(self)(self.items())


_RENAMED = "('self', 'request_environ'), not ('self', 'environ')"


@pytest.mark.parametrize(
    ("response", "headers", "reason"),
    [(_HeadersElsewhere, Headers, "Headers keeps no _list of pairs"),
     (_HeadersAsLists, Headers, "Headers keeps no _list of pairs"),
     (_ClosersElsewhere, Headers, "a response keeps no _on_close list"),
     (_NoLengthSwitch, Headers, "_NoLengthSwitch has no automatically_set_content_length"),
     (_HeadersFromRequest, Headers, f"_HeadersFromRequest.get_wsgi_headers takes {_RENAMED}"),
     (_BodyFromRequest, Headers, f"_BodyFromRequest.get_app_iter takes {_RENAMED}"),
     (_Built, _CopiedOtherwise, "Headers.copy no longer copies _list")],
)  # fmt: skip
def test_each_internal_the_pass_through_response_uses_is_checked_and_named_when_it_moved(
    monkeypatch, caplog, response: type[flask.Response], headers: type[Headers], reason: str
) -> None:
    """A Werkzeug inside the pin that moved one of the internals: the stock response, and the
    warning says which (each check stands alone: the others pass on these fakes)."""
    _upgraded(monkeypatch, "werkzeug", fast.CATALOGUE[fast.PASS_THROUGH_RESPONSE].pin[0])
    monkeypatch.setattr(werkzeug_response, "flask", SimpleNamespace(Response=response))
    monkeypatch.setattr(werkzeug_response, "Headers", headers)
    assert fast.uses(fast.PASS_THROUGH_RESPONSE) is False
    assert type(web.json_text_response(200, "{}")) is flask.Response
    assert _warnings(caplog) == [_fallback(fast.PASS_THROUGH_RESPONSE, reason)]


def test_the_pass_through_responses_checks_pass_on_an_unmoved_werkzeug(monkeypatch) -> None:
    # The fakes above each differ from this one in one internal only.
    monkeypatch.setattr(werkzeug_response, "flask", SimpleNamespace(Response=_Built))
    assert werkzeug_response.shape_difference() is None


class _ConnectionWithoutItsMethods:
    __init__ = pg8000.core.CoreConnection.__init__


class _SocketsRenamed(pg8000.core.CoreConnection):
    def __init__(self) -> None:
        self._sock_file = None
        self._raw_sock = None
        self._client_encoding = "utf8"  # until the server's ParameterStatus says client_encoding = x
        self._transaction_status, self.py_types = None, {}


class _ColumnsRenamed(pg8000.native.PreparedStatement):
    def __init__(self) -> None:
        self.statement, self.make_vals, self.name_bin, self.input_funcs = "", None, b"", []
        self.columns = None


class _ContextOfCols(pg8000.core.Context):
    def __init__(self, statement: str, stream: Any = None, cols: Any = None, input_funcs: Any = None) -> None:
        super().__init__(statement, stream, cols, input_funcs)


def _params_of(types: Any, values: Any) -> Any:
    return pg8000.converters.make_params(types, values)


class _ParamsMaker:
    """make_params as a callable object, which has no __qualname__ of its own."""

    def __call__(self, types: Any, values: Any) -> Any:
        return pg8000.converters.make_params(types, values)

    def __repr__(self) -> str:
        return "a params maker"


@pytest.mark.parametrize(
    ("internal", "moved", "reason"),
    [("CoreConnection", _ConnectionWithoutItsMethods, "_ConnectionWithoutItsMethods has no handle_messages, "
                                                      "prepare_statement"),
     ("CoreConnection", _SocketsRenamed, "_SocketsRenamed.__init__ no longer sets _sock, _usock"),
     ("PreparedStatement", _ColumnsRenamed, "_ColumnsRenamed.__init__ no longer sets cols"),
     ("Context", _ContextOfCols, "_ContextOfCols takes ('statement', 'stream', 'cols', 'input_funcs'), not "
                                 "('statement', 'stream', 'columns', 'input_funcs')"),
     ("make_params", _params_of, "_params_of takes ('types', 'values'), not ('py_types', 'values')"),
     ("make_params", _ParamsMaker(), "a params maker takes ('types', 'values'), not ('py_types', 'values')"),
     ("IN_FAILED_TRANSACTION", b"F", "IN_FAILED_TRANSACTION is no longer b'E'")],
)  # fmt: skip
def test_each_internal_of_pg8000_the_one_trip_uses_is_checked_and_named_when_it_moved(
    monkeypatch, internal: str, moved: Any, reason: str
) -> None:
    from shared.fast import one_trip

    assert one_trip.shape_difference() is None  # each fake below differs from the real pg8000 in one internal
    monkeypatch.setattr(one_trip, internal, moved)
    assert one_trip.shape_difference() == reason


def _writes_without_terminator(handler: logging.StreamHandler, record: logging.LogRecord) -> None:  # type: ignore[type-arg]
    handler.stream.write(handler.format(record))
    handler.flush()


def _flushes_twice(handler: logging.StreamHandler, record: logging.LogRecord) -> None:  # type: ignore[type-arg]
    handler.stream.write(handler.format(record) + handler.terminator)
    handler.flush()
    handler.flush()


class _LoggerWithoutDisabled(logging.Logger):
    """A Logger that keeps `disabled` on its class, not on each logger (as a release might)."""

    disabled = False  # type: ignore[assignment]

    def __init__(self, name: str) -> None:
        super().__init__(name)
        del self.disabled


_UNFAITHFUL_STREAM = "a StreamHandler no longer writes format(record) + terminator and flushes once"


@pytest.mark.parametrize(
    ("owner", "name", "moved", "reason"),
    [(logging.Handler, "handleError", None, "StreamHandler has no handleError"),
     (logging, "getLogRecordFactory", None, "logging has no getLogRecordFactory"),
     (logging.StreamHandler, "emit", _writes_without_terminator, _UNFAITHFUL_STREAM),
     (logging.StreamHandler, "emit", _flushes_twice, _UNFAITHFUL_STREAM),
     (logging, "Logger", _LoggerWithoutDisabled, "a Logger keeps its handlers, filters, propagate, parent or disabled "
                                                 "elsewhere")],
)  # fmt: skip
def test_each_part_of_logging_the_direct_line_uses_is_checked_and_named_when_it_moved(
    monkeypatch, owner: Any, name: str, moved: Any, reason: str
) -> None:
    from shared.fast import direct_line

    assert direct_line.shape_difference() is None  # each fake below differs from the real logging in one part
    # Only parts that logging does not call while it logs are taken away, and only for the check.
    with monkeypatch.context() as moving:
        if moved is None:
            moving.delattr(owner, name)
        else:
            moving.setattr(owner, name, moved)
        difference = direct_line.shape_difference()
    assert difference == reason


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
    assert _warnings(caplog) == [_fallback(fast.DIRECT_LINE, _UNFAITHFUL_STREAM)]


class _CompiledConnection:
    """A pg8000 built to machine code (as mypyc builds some libraries): the methods are there, but its
    __init__ has no bytecode to read the attributes it sets off."""

    handle_messages = prepare_statement = None
    __init__ = object.__init__


def test_a_shape_check_that_cannot_run_gets_the_stock_path_never_an_error(monkeypatch, caplog) -> None:
    monkeypatch.setattr(fast.one_trip, "CoreConnection", _CompiledConnection)  # type: ignore[attr-defined]
    assert not fast.uses(fast.ONE_TRIP)
    warning = "its shape could not be checked (TypeError: don't know how to disassemble wrapper_descriptor objects)"
    assert warning in _warnings(caplog)[0]


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


def test_the_one_trip_statement_is_the_pools_when_used(servers) -> None:
    from shared.config import parse_database_url

    pool = PostgresPool(parse_database_url(servers.database_url), 1, 5.0, statement_timeout_ms=1000)
    try:
        assert pool.run("SELECT 1") == [[1]]
        kinds = {type(s) for conn in pool._idle for s in conn._prepared.values()}  # type: ignore[attr-defined]
    finally:
        pool.close()
    assert kinds == {OneTripStatement if fast.uses(fast.ONE_TRIP) else pg8000.native.PreparedStatement}
