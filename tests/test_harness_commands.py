"""The harness's commands run in-process against this worker's servers (`--servers external`, the
URLs the suite set): invoke, import and migrate's refusals (devharness/commands.py), and how a
function is loaded and mounted (devharness/dispatcher.py). tests/test_harness.py runs them as the
command a user types."""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from werkzeug.test import Client

from devharness import cli, commands
from devharness.dispatcher import Dispatcher, load_function
from devharness.routes import Route
from shared import catalogue


def _invoke(*argv: str) -> argparse.Namespace:
    parsed = {"query": [], "method": "GET", "header": [], "data": None, "servers": "external"}
    options = dict(zip(argv[1::2], argv[2::2], strict=True))
    for option, value in options.items():
        key = option.removeprefix("--")
        parsed[key] = [*parsed[key], value] if isinstance(parsed[key], list) else value
    return argparse.Namespace(function=argv[0], **parsed)


@pytest.fixture(autouse=True)
def environment_kept() -> Any:
    """The commands point os.environ at the servers they run against (FACTS_CACHE_PREFIX too): put back
    this worker's own afterwards."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture
def text_logs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACTS_LOG_FORMAT", "text")


def test_invoke_prints_the_status_and_the_pretty_answer(servers: Any, text_logs: None, capsys: Any) -> None:
    assert commands.invoke(_invoke("random", "--query", "language=de")) == 0
    out = capsys.readouterr().out
    status, body = out.split("\n", 1)
    assert status == "HTTP 200"
    fact = json.loads(body)
    assert fact["language"] == "de" and fact["views"] == 1
    assert body == json.dumps(fact, ensure_ascii=False, indent=2) + "\n"


def test_invoke_finds_a_function_by_path_or_target_and_fails_on_an_error_status(
    servers: Any, text_logs: None, capsys: Any
) -> None:
    assert commands.invoke(_invoke("today_fact", "--header", "Accept : application/json")) == 0
    assert capsys.readouterr().out.startswith("HTTP 200\n{")
    assert commands.invoke(_invoke("today", "--query", "language=xx")) == 1
    out = capsys.readouterr().out
    assert out.startswith("HTTP 400\n") and json.loads(out.split("\n", 1)[1])["error"]["code"]
    assert commands.invoke(_invoke("random", "--method", "DELETE")) == 1
    assert capsys.readouterr().out.startswith("HTTP 405\n")


def test_invoke_refuses_an_unknown_function_and_malformed_pairs(servers: Any) -> None:
    known = "random, random_fact, today, today_fact"
    with pytest.raises(SystemExit, match=f"^unknown function 'nope'; known: {known}$"):
        commands.invoke(_invoke("nope"))
    with pytest.raises(SystemExit, match=r"^--query 'language' must look like key=value$"):
        commands.invoke(_invoke("random", "--query", "language"))
    with pytest.raises(SystemExit, match=r"^--header 'X-Token' must look like key:value$"):
        commands.invoke(_invoke("random", "--header", "X-Token"))


def test_pairs_split_at_the_first_separator_headers_trimmed() -> None:
    assert commands._parse_pairs([" a = b=c "], "=", "--query") == [("a", " b=c ")]
    assert commands._parse_pairs(["X-A : 1:2 ", "B:"], ":", "--header") == [("X-A", "1:2"), ("B", "")]
    assert commands._parse_pairs([], ":", "--header") == []


def test_import_adds_new_facts_once_and_says_how_many(servers: Any, tmp_path: Path, capsys: Any) -> None:
    facts = tmp_path / "facts.jsonl"
    facts.write_text(json.dumps({"fact": "Honey never spoils in a sealed jar."}) + "\n")
    args = argparse.Namespace(file=str(facts), language="en", source=None, servers="external", timeout=30.0)
    assert commands.import_file(args) == 0
    assert capsys.readouterr().out == f"imported 1 new facts from {facts}\n"
    assert commands.import_file(args) == 0
    assert capsys.readouterr().out == f"imported 0 new facts from {facts}\n"


def test_import_refuses_a_missing_or_bad_file(servers: Any, tmp_path: Path) -> None:
    missing = tmp_path / "nope.csv"
    with pytest.raises(SystemExit, match=f"^no such file: {missing}$"):
        commands.import_file(
            argparse.Namespace(file=str(missing), language="en", source=None, servers="external", timeout=30.0)
        )
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"language": "en"}\n')
    with pytest.raises(SystemExit, match=r"^import failed: "):
        commands.import_file(
            argparse.Namespace(file=str(bad), language="en", source=None, servers="external", timeout=30.0)
        )


def test_import_gives_up_on_a_database_that_never_answers_after_its_timeout(
    servers: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    facts = tmp_path / "facts.jsonl"
    facts.write_text(json.dumps({"fact": "Honey never spoils in a sealed jar."}) + "\n")
    with socket.create_server(("127.0.0.1", 0), backlog=4) as silent:  # connections queue, nothing answers
        port = silent.getsockname()[1]
        monkeypatch.setenv("DATABASE_URL", f"postgresql://facts:secret-word@127.0.0.1:{port}/facts")
        began = time.monotonic()
        assert cli.main(["import", str(facts), "--servers", "external", "--timeout", "0.5"]) == 2
        took = time.monotonic() - began
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "timed out" in err and "secret-word" not in err
    assert 0.5 <= took < 5  # the migration's check gives up after 0.5 s, not 10 or 300


def test_import_waits_for_another_import_no_longer_than_its_timeout(
    servers: Any, db: Any, tmp_path: Path, capsys: Any
) -> None:
    facts = tmp_path / "facts.jsonl"
    facts.write_text(json.dumps({"fact": "Honey never spoils in a sealed jar."}) + "\n")
    db.run("BEGIN")
    db.run("SELECT pg_advisory_xact_lock(:key)", key=catalogue.CATALOGUE_LOCK_KEY)  # another import, running
    try:
        began = time.monotonic()
        with pytest.raises(SystemExit) as failed:
            cli.main(["import", str(facts), "--servers", "external", "--timeout", "0.5"])
        took = time.monotonic() - began
    finally:
        db.run("ROLLBACK")
    assert 0.5 <= took < 5  # not 10 s, nor the default 300
    assert str(failed.value) == (
        "import failed: Postgres did not answer within --timeout 0.5 s, or the connection was lost;"
        " nothing was imported"
    )
    assert db.run("SELECT count(*) FROM facts WHERE fact = 'Honey never spoils in a sealed jar.'") == [[0]]


def test_migrate_against_external_servers_needs_a_database_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    with pytest.raises(SystemExit, match=r"^migrate --servers external needs DATABASE_URL$"):
        commands.migrate(argparse.Namespace(servers="external", timeout=5.0))


def test_serve_like_cloud_run_takes_no_workers_option() -> None:
    args = argparse.Namespace(like="cloud-run", workers=2, servers="external")
    with pytest.raises(
        SystemExit, match=r"^--workers does not apply to --like cloud-run: the deploy's WORKERS is used$"
    ):
        commands.serve(args)


def _route(folder: Path, name: str, text: str) -> Route:
    (folder / f"{name}.py").write_text(text)
    return Route(f"/{name}", name, folder / f"{name}.py")


OK = "import functions_framework\n\n@functions_framework.http\ndef {}(request):\n    return request.path\n"


def test_a_loaded_function_is_mounted_at_its_path_and_sees_the_root(tmp_path: Path) -> None:
    route = _route(tmp_path, "alpha", OK.format("alpha"))
    loaded = load_function(route)
    assert loaded.error is None
    assert loaded.state() == {"path": "/alpha", "target": "alpha", "source": "functions/alpha.py", "loaded": True}
    client = Client(Dispatcher([route], health=lambda: (200, {})))
    for path, seen in (("/alpha", b"/"), ("/alpha/", b"/"), ("/alpha/sub", b"/sub")):
        answer = client.get(path)
        assert (answer.status_code, answer.get_data()) == (200, seen), path  # no redirect to /alpha/


@pytest.mark.parametrize(
    ("text", "detail", "line"),
    [
        ("def alpha(:\n", "SyntaxError: invalid syntax (alpha.py, line 1)", 1),
        ("import functions_framework\n\n\nraise RuntimeError('no config')\n", "RuntimeError: no config", 4),
    ],
)
def test_a_function_that_fails_to_load_answers_its_error_with_the_line(
    tmp_path: Path, text: str, detail: str, line: int, caplog: pytest.LogCaptureFixture
) -> None:
    route = _route(tmp_path, "alpha", text)
    loaded = load_function(route)
    error = {"code": "function_failed_to_load", "message": detail, "source": "alpha.py", "line": line}
    assert loaded.error == error
    assert loaded.state() == {
        "path": "/alpha", "target": "alpha", "source": "functions/alpha.py", "loaded": False, "error": error,
    }  # fmt: skip
    with caplog.at_level(logging.ERROR, "facts.harness"):
        answer = Client(Dispatcher([route], health=lambda: (200, {}))).get("/alpha")
    assert (answer.status_code, answer.get_data()) == (500, _pretty({"error": error}))
    assert f"alpha.py failed to load: {detail}" in caplog.messages
    assert answer.headers["Access-Control-Allow-Origin"] == "*"


class GunicornStandIn:
    """Takes what `serve` hands gunicorn and returns at once: the server itself is run by
    tests/test_harness.py; here the wiring is checked."""

    made: ClassVar[list[GunicornStandIn]] = []

    def __init__(self, app_factory: Any, bind: str, reload: bool = False, shape: Any = None) -> None:
        self.app_factory, self.bind, self.reload, self.shape = app_factory, bind, reload, shape
        GunicornStandIn.made.append(self)

    def run(self) -> None:
        self.ran = True


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Runs `serve` with gunicorn's stand-in, as `served(threads, **args)`; puts SIGTERM's handler back."""
    monkeypatch.setattr(commands, "HarnessServer", GunicornStandIn)
    monkeypatch.delenv("FACTS_LOG_FORMAT", raising=False)
    monkeypatch.delenv("WORKERS", raising=False)
    GunicornStandIn.made.clear()
    previous = signal.getsignal(signal.SIGTERM)

    def serve(threads: int, **args: Any) -> GunicornStandIn:
        monkeypatch.setenv("THREADS", str(threads))
        options = {"like": "one-process", "workers": None, "reload": False, "servers": "external",
                   "host": "127.0.0.1", "port": 8123, **args}  # fmt: skip
        assert commands.serve(argparse.Namespace(**options)) == 0
        [server] = GunicornStandIn.made
        return server

    yield serve
    signal.signal(signal.SIGTERM, previous)


@pytest.mark.parametrize(("reload", "workers", "served_workers"), [(False, None, 1), (False, 3, 3), (True, 3, 1)])
def test_serve_hands_gunicorn_the_shape_and_the_dashboard_its_setup(
    servers: Any, served: Any, capsys: Any, reload: bool, workers: int | None, served_workers: int
) -> None:
    server = served(6, workers=workers, reload=reload)
    with pytest.raises(SystemExit) as stopped:  # SIGTERM before gunicorn runs: a clean exit, servers stopped
        signal.getsignal(signal.SIGTERM)(signal.SIGTERM, None)  # type: ignore[operator]
    assert stopped.value.code == 0
    assert (server.bind, server.reload, server.ran) == ("127.0.0.1:8123", reload, True)
    assert (server.shape.workers, server.shape.threads) == (served_workers, 6)
    assert os.environ["FACTS_LOG_FORMAT"] == "json"  # stderr is no terminal here
    app = server.app_factory()
    setup = app.dashboard.setup
    assert (setup.kind, setup.bind_host, setup.reload, setup.workers, setup.max_streams) == (
        "external", "127.0.0.1", reload, served_workers, 3,
    )  # fmt: skip
    assert setup.description  # which servers, as the dashboard shows them
    app.dashboard.requests.detach()
    base = "http://127.0.0.1:8123"
    assert capsys.readouterr().err.splitlines()[-6:] == [
        f"serving on {base}  (Ctrl-C stops the harness and the servers it started)",
        f"  {base}/random    -> random_fact (functions/random_fact.py)",
        f"  {base}/today     -> today_fact (functions/today_fact.py)",
        f"  {base}/healthz   -> Postgres and Redis status",
        f"  dashboard: open {base}/ in a browser (JSON clients get the route table there)",
        f"  {served_workers} worker(s) x 6 threads",
    ]


def _pretty(body: Any) -> bytes:
    return (json.dumps(body, ensure_ascii=False, indent=2) + "\n").encode()


def test_invoke_logs_as_text_quietly_and_prints_an_empty_answer_as_such(
    servers: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    monkeypatch.delenv("FACTS_LOG_FORMAT", raising=False)
    assert commands.invoke(_invoke("random", "--method", "HEAD")) == 0
    assert os.environ["FACTS_LOG_FORMAT"] == "text"  # stdout is for the answer; the log line goes to stderr as text
    out, err = capsys.readouterr()
    assert out == "HTTP 200\n\n"
    assert "starting servers" not in err  # quiet: nothing but the answer and the function's own line


def test_import_names_rows_without_a_source_as_asked_and_says_nothing_else(
    servers: Any, db: Any, tmp_path: Path, capsys: Any
) -> None:
    facts = tmp_path / "facts.jsonl"
    facts.write_text(json.dumps({"fact": "Octopuses have three hearts."}) + "\n")
    args = argparse.Namespace(file=str(facts), language="de", source="wiki", servers="external", timeout=30.0)
    assert commands.import_file(args) == 0
    assert db.run("SELECT language, source FROM facts WHERE fact = 'Octopuses have three hearts.'") == [["de", "wiki"]]
    out, err = capsys.readouterr()
    assert out == f"imported 1 new facts from {facts}\n" and "starting servers" not in err


ECHO = """import functions_framework

@functions_framework.http
def echo(request):
    seen = [request.method, request.path, request.query_string.decode(), request.headers.get("X-Tag")]
    return " ".join(seen) + " " + request.get_data(as_text=True)
"""


def test_invoke_hands_the_function_its_method_path_query_headers_and_body(
    servers: Any, text_logs: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: Any
) -> None:
    route = _route(tmp_path, "echo", ECHO)
    monkeypatch.setattr(commands, "discover", lambda: [Route("/Xecho", "echo", route.source)])
    args = _invoke("Xecho", "--method", "PUT", "--query", "a=1", "--header", "X-Tag: ü", "--data", "body ä")
    assert commands.invoke(args) == 0
    assert capsys.readouterr().out == "HTTP 200\nPUT / a=1 ü body ä\n"  # not JSON: printed as it is


class Terminal(io.StringIO):
    """stderr as a terminal: the harness then logs readable text."""

    def isatty(self) -> bool:
        return True


def test_serve_logs_text_to_a_terminal_and_holds_at_least_one_stream_slot(
    servers: Any, served: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stderr", Terminal())
    server = served(2)
    assert os.environ["FACTS_LOG_FORMAT"] == "text"
    app = server.app_factory()
    app.dashboard.requests.detach()
    assert app.dashboard.setup.max_streams == 1  # half of 2 threads: the other keeps answering the functions
