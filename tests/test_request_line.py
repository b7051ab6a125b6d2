"""One typed request line: every line the functions and the harness log has its keys, typed as
shared.request_line says, and only that module (the keys) and shared/logs.py (the one maker and
the formatters) spell the keys out."""

from __future__ import annotations

import ast
import json
import logging
from pathlib import Path
from typing import Any, get_type_hints

import pytest
from flask.testing import FlaskClient

from devharness.dispatcher import Dispatcher
from shared import logs, request_line
from shared.request_line import REQUEST_LINE_KEYS, TRACE_KEY, RequestLine, is_request_line

ROOT = Path(__file__).resolve().parents[1]
# The code that makes, formats or forwards lines (tests may spell a key to check it).
SOURCE_FOLDERS = ("shared", "devharness", "devkit", "functions")
KEY_OWNER = ROOT / "shared" / "request_line.py"
KEY_READERS = (KEY_OWNER, ROOT / "shared" / "logs.py")
# Keys that read as no other word of the code: a literal of one elsewhere is a second list.
DISTINCT_KEYS = ("latency_ms", TRACE_KEY)


def _request_lines(records: list[logging.LogRecord]) -> list[dict[str, Any]]:
    return [r.fields for r in records if is_request_line(getattr(r, "fields", None))]  # type: ignore[attr-defined]


def _assert_typed(line: dict[str, Any]) -> None:
    types = get_type_hints(RequestLine)
    required = RequestLine.__required_keys__
    assert required <= line.keys() <= set(REQUEST_LINE_KEYS), line
    for key, value in line.items():
        assert type(value) is types[key], (key, value)  # get_type_hints drops NotRequired


def test_the_keys_are_the_typed_dict_s_in_its_order() -> None:
    assert REQUEST_LINE_KEYS == ("function", "method", "path", "status", "latency_ms", "cache", TRACE_KEY)
    assert RequestLine.__required_keys__ == {"function", "method", "path", "status", "latency_ms"}


@pytest.mark.parametrize("path", ["/", "/?language=xx"])
def test_a_function_s_line_is_a_typed_request_line(
    today_client: FlaskClient, caplog: pytest.LogCaptureFixture, path: str
) -> None:
    logs.configure()  # the level every request sets (caplog.set_level would undo it afterwards)
    today_client.get(path, headers={"X-Cloud-Trace-Context": "0af7651916cd43dd8448eb211c80319c/1;o=1"})
    [line] = _request_lines(caplog.records)
    _assert_typed(line)
    assert line["function"] == "today_fact" and line[TRACE_KEY].endswith("0af7651916cd43dd8448eb211c80319c")


def test_the_harness_s_own_paths_log_the_same_line(caplog: pytest.LogCaptureFixture) -> None:
    logs.configure()  # the level every request sets (caplog.set_level would undo it afterwards)
    dispatcher = Dispatcher([], health=lambda: (200, {}))
    answered: list[str] = []
    dispatcher({"PATH_INFO": "/nowhere", "REQUEST_METHOD": "GET"}, lambda status, headers: answered.append(status))
    [line] = _request_lines(caplog.records)
    _assert_typed(line)
    assert (line["function"], line["path"], line["status"], answered) == ("harness", "/nowhere", 404, ["404 NOT FOUND"])


def test_the_one_maker_leaves_out_what_does_not_apply(caplog: pytest.LogCaptureFixture) -> None:
    logs.configure()  # the level every request sets (caplog.set_level would undo it afterwards)
    logs.log_request("random_fact", "GET", "/", 200, 0.0, trace_header="not a trace")
    [line] = _request_lines(caplog.records)
    assert set(line) == RequestLine.__required_keys__


def test_every_key_reaches_both_formats() -> None:
    line = {"function": "today_fact", "method": "GET", "path": "/today", "status": 200, "latency_ms": 1.5,
            "cache": "hit", TRACE_KEY: "projects/p/traces/t"}  # fmt: skip
    assert set(line) == set(REQUEST_LINE_KEYS), "a key was added: give it a value here"
    record = logging.LogRecord("facts.requests", logging.INFO, __file__, 1, "GET /today 200", None, None)
    record.fields = line
    entry = json.loads(logs.CloudJsonFormatter().format(record))
    assert {key: entry[key] for key in line} == line
    console = logs.ConsoleFormatter().format(record)
    assert "GET /today -> 200 1.5 ms [today_fact] cache=hit" in console


def _key_literals(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [
        f"{path.relative_to(ROOT)}:{node.lineno} {node.value!r}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and node.value in DISTINCT_KEYS
    ]


def test_only_request_line_py_lists_the_keys() -> None:
    found = [
        literal
        for folder in SOURCE_FOLDERS
        for path in sorted((ROOT / folder).rglob("*.py"))
        if path not in KEY_READERS
        for literal in _key_literals(path)
    ]
    assert not found, f"request-line keys spelled outside shared/request_line.py and logs.py: {found}"
    assert _key_literals(KEY_OWNER), "the scan must see the keys where they are listed"
    assert request_line.TRACE_KEY in REQUEST_LINE_KEYS


def test_other_fields_are_no_request_line() -> None:
    assert not is_request_line({"status": 200}) and not is_request_line(None)
