"""The dashboard's WSGI app answered in-process (devharness/dashboard.py), every answer whole: the
Host check against DNS rebinding, the page and its two assets, the read-only JSON, the servers'
answer from this worker's real Postgres and Redis (no password), and the live log's stream limits.
tests/test_dashboard_server.py checks the same over real HTTP, through a harness process."""

from __future__ import annotations

import json
import socket
import time
from datetime import date
from typing import Any

import pytest
from werkzeug.test import Client

from devharness import dashboard, dashboard_data
from devharness.app import health
from devharness.dashboard import Dashboard, DashboardSetup, EventStream
from devharness.livelog import RequestLog
from shared import instance
from shared.facts import utc_day

from .support.request_records import request_record
from .support.server_faults import require_control, stopped

FUNCTIONS = [{"path": "/random", "state": "loaded"}]


def _dashboard(
    bind_host: str = "127.0.0.1", max_streams: int = 2, workers: int = 1, checks: Any = None, **more: Any
) -> Dashboard:
    setup = DashboardSetup(
        "external", "servers the test suite started", bind_host, workers=workers, max_streams=max_streams
    )
    checks = checks or (lambda: (200, {"status": "ok", "postgres": "ok", "redis": "ok"}))
    return Dashboard(setup, lambda: FUNCTIONS, checks, **more)


def _get(app: Any, path: str, host: str = "127.0.0.1:8080", method: str = "GET", **headers: str) -> Any:
    return Client(app).open(path, method=method, headers={"Host": host, **headers})


def _refused(answer: Any) -> bool:
    body = json.loads(answer.get_data())
    message = "the dashboard answers only requests addressed to the host the harness binds to"
    return (answer.status_code, body) == (403, {"error": {"code": "host_not_allowed", "message": message}})


@pytest.mark.parametrize(
    ("bind_host", "host", "allowed"),
    [
        ("127.0.0.1", "127.0.0.1:8080", True),
        ("127.0.0.1", "localhost:8080", True),
        ("127.0.0.1", "[::1]:8080", True),
        ("127.0.0.1", "attacker.example:8080", False),
        ("127.0.0.1", "", False),
        ("127.0.0.1", "[::1", False),  # not a host at all
        ("192.0.2.7", "192.0.2.7:8080", True),  # the host the harness binds to
        ("[fe80::1]", "[fe80::1]:8080", True),
        ("0.0.0.0", "attacker.example", True),  # noqa: S104 - serving every interface was the user's choice
        ("::", "anything", True),
        ("", "anything", True),
    ],
)
def test_the_dashboard_answers_only_its_own_host(bind_host: str, host: str, allowed: bool) -> None:
    app = _dashboard(bind_host)
    assert app.host_allowed({"HTTP_HOST": host}) is allowed
    answer = _get(app, "/_dashboard/api/functions", host=host)
    assert answer.status_code == 200 if allowed else _refused(answer)
    page = Client(app.page).get("/", headers={"Host": host})
    assert page.status_code == 200 if allowed else _refused(page)


def test_the_page_and_its_assets_with_their_security_headers() -> None:
    app = _dashboard()
    page = Client(app.page).get("/", headers={"Host": "127.0.0.1"})
    assert page.headers["Content-Type"] == "text/html; charset=utf-8" and page.headers["Vary"] == "Accept"
    assert page.get_data() == (dashboard.STATIC_DIR / "index.html").read_bytes()
    for name, content_type in (("dashboard.css", "text/css"), ("dashboard.js", "text/javascript")):
        asset = _get(app, f"/_dashboard/{name}")
        assert asset.get_data() == (dashboard.STATIC_DIR / name).read_bytes()
        assert asset.headers["Content-Type"] == f"{content_type}; charset=utf-8"
    for answer in (page, _get(app, "/_dashboard/dashboard.js")):
        assert {name: answer.headers[name] for name, _ in dashboard.PAGE_HEADERS} == dict(dashboard.PAGE_HEADERS)


def test_the_json_is_read_only_never_cached_and_only_what_exists() -> None:
    app = _dashboard()
    functions = _get(app, "/_dashboard/api/functions")
    assert json.loads(functions.get_data()) == {"functions": FUNCTIONS, "reload": False, "mode": "one-process"}
    assert functions.headers["X-Content-Type-Options"] == "nosniff"
    assert functions.headers["Cache-Control"] == "no-store"
    assert "Access-Control-Allow-Origin" not in functions.headers
    for method in ("POST", "PUT", "DELETE"):
        answer = _get(app, "/_dashboard/api/functions", method=method)
        body = {"error": {"code": "method_not_allowed", "message": "the dashboard is read-only"}}
        assert (answer.status_code, json.loads(answer.get_data())) == (405, body)
    long_name = "x" * 200
    missing = _get(app, f"/_dashboard/{long_name}")
    message = f"the dashboard has nothing at /_dashboard/{long_name[:80]}"
    assert (missing.status_code, json.loads(missing.get_data())["error"]) == (
        404,
        {"code": "not_found", "message": message},
    )
    assert _get(app, "/_dashboard/index.html").status_code == 404  # only the page's own assets
    assert _get(app, "/_dashboard/api/platform").get_data() == b'{"mode": "one-process"}'


def test_the_servers_answer_reads_this_workers_postgres_and_redis(servers: Any) -> None:
    answer = _get(_dashboard(), "/_dashboard/api/servers")
    body = json.loads(answer.get_data())
    assert answer.status_code == 200 and answer.headers["Cache-Control"] == "no-store"
    assert (body["kind"], body["description"], body["status"]) == ("external", "servers the test suite started", "ok")
    assert body["postgres"]["health"] == body["redis"]["health"] == "ok"
    assert body["redis"]["where"] == dashboard.redis_where(servers.redis_url)
    data = body["data"]
    assert data["languages"] == ["en", "de"] and len(data["day"]) == 10
    assert data["catalogue"]["en"] > 0 and "postgres_error" not in data and "redis_error" not in data


def test_a_redis_url_is_shown_without_password_or_query() -> None:
    assert dashboard.redis_where("redis://:s3cret@cache:6380/2?password=x") == "redis://:***@cache:6380/2"
    assert dashboard.redis_where("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"


@pytest.mark.parametrize(
    ("accept", "page"),
    [
        ("text/html,application/xhtml+xml,*/*;q=0.8", True),
        ("application/json", False),
        ("*/*", False),
        (None, False),
        ("application/json, text/html;q=0.5", False),
    ],
)
def test_only_a_browser_navigating_wants_the_page(accept: str | None, page: bool) -> None:
    assert dashboard.wants_page({"HTTP_ACCEPT": accept} if accept else {}) is page


@pytest.mark.parametrize(
    ("environ", "after"),
    [
        ({}, 0),
        ({"QUERY_STRING": "after=41"}, 41),
        ({"HTTP_LAST_EVENT_ID": "7", "QUERY_STRING": "after=41"}, 7),  # a reconnect's own last line
        ({"QUERY_STRING": "after=-5"}, 0),
        ({"QUERY_STRING": "after=x"}, 0),
        ({"HTTP_LAST_EVENT_ID": ""}, 0),
    ],
)
def test_a_stream_starts_after_the_last_line_the_browser_has(environ: dict[str, str], after: int) -> None:
    assert dashboard._after(environ) == after


def test_the_live_log_answers_head_without_a_stream_and_holds_at_most_its_slots() -> None:
    app = _dashboard(max_streams=1, requests=RequestLog())
    head = _get(app, "/_dashboard/api/events", method="HEAD")
    assert (head.status_code, head.headers["Content-Type"]) == (200, "text/event-stream; charset=utf-8")
    assert head.headers["Cache-Control"] == "no-store"
    captured: list[Any] = []
    environ = {"PATH_INFO": "/_dashboard/api/events", "REQUEST_METHOD": "GET", "HTTP_HOST": "127.0.0.1",
               "QUERY_STRING": "after=3"}  # fmt: skip
    stream = app(environ, lambda status, headers: captured.append((status, headers)))
    assert isinstance(stream, EventStream) and stream.after == 3 and stream.scope is None
    assert captured[0][0] == "200 OK"
    busy = _get(app, "/_dashboard/api/events")  # the one slot is this stream's
    body = {"error": {"code": "too_many_streams", "message": "every live-log slot of this worker is taken"}}
    assert (busy.status_code, json.loads(busy.get_data()), busy.headers["Retry-After"]) == (503, body, "2")
    stream.close()
    again = app(environ, lambda status, headers: None)
    assert isinstance(again, EventStream)
    again.close()
    assert _get(app, "/_dashboard/api/events", host="attacker.example").status_code == 403


def test_a_server_without_a_live_log_says_so_and_several_workers_scope_the_stream() -> None:
    missing = _get(_dashboard(), "/_dashboard/api/events")
    body = {"error": {"code": "no_log_stream", "message": "this server has no live log"}}
    assert (missing.status_code, json.loads(missing.get_data())) == (404, body)
    app = _dashboard(workers=3, requests=RequestLog())
    environ = {"PATH_INFO": "/_dashboard/api/events", "REQUEST_METHOD": "GET", "HTTP_HOST": "127.0.0.1"}
    stream = app(environ, lambda status, headers: None)
    assert isinstance(stream, EventStream) and stream.scope is not None
    assert stream.scope.startswith("worker ") and stream.scope.endswith(" only (1 of 3)")
    stream.close()


def _servers_answer() -> tuple[Any, dict[str, Any]]:
    answer = _get(_dashboard(checks=health), "/_dashboard/api/servers")  # /healthz's own checks
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    return answer, json.loads(answer.get_data())


def test_the_servers_answer_names_where_each_server_is_and_what_it_holds(servers: Any) -> None:
    settings = instance.state().settings
    instance.state().store.of_the_day(utc_day(instance.state().clock()), "en")
    _, body = _servers_answer()
    assert body["postgres"] == {"where": settings.postgres.describe(), "health": "ok"}
    assert body["redis"] == {"where": dashboard.redis_where(settings.redis_url), "health": "ok",
                             "key_prefix": settings.cache_prefix}  # fmt: skip
    data, pool = body["data"], instance.state().store.pool
    assert [row["language"] for row in data["today"]] == ["en"]
    assert data["today"] == dashboard_data.todays_facts(pool, date.fromisoformat(data["day"]))
    assert data["most_viewed"] == dashboard_data.most_viewed(pool) and len(data["most_viewed"]) == 1
    assert data["cache_keys"] == []  # of_the_day counts in Postgres; only /today caches


@pytest.mark.usefixtures("fresh_instance")
def test_with_redis_down_the_answer_says_so_and_keeps_postgres_s_data(servers: Any) -> None:
    with stopped(require_control(servers, "redis")):
        assert health() == (200, {"status": "degraded", "postgres": "ok", "redis": "down"})
        _, body = _servers_answer()
    assert (body["status"], body["redis"]["health"], body["postgres"]["health"]) == ("degraded", "down", "ok")
    assert body["data"]["redis_error"] == "Redis unavailable (ConnectionError)"
    assert "cache_keys" not in body["data"] and "postgres_error" not in body["data"]
    assert body["data"]["catalogue"]["en"] > 0


@pytest.mark.usefixtures("fresh_instance")
def test_with_postgres_down_the_answer_says_so_and_keeps_redis_s_data(servers: Any) -> None:
    with stopped(require_control(servers, "postgres")):
        assert health() == (503, {"status": "down", "postgres": "down", "redis": "ok"})
        _, body = _servers_answer()
    assert (body["status"], body["postgres"]["health"], body["redis"]["health"]) == ("down", "down", "ok")
    assert body["data"]["postgres_error"].startswith("Postgres unavailable (")
    assert body["data"]["cache_keys"] == []
    assert not {"today", "most_viewed", "catalogue"} & body["data"].keys()


@pytest.mark.usefixtures("fresh_instance")
def test_a_configuration_error_is_named_without_its_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "mysql://app:hunter22@db/facts")
    answer, body = _servers_answer()
    assert answer.status_code == 200
    assert set(body) == {"kind", "description", "error"} and "DATABASE_URL" in body["error"]
    assert "hunter22" not in answer.get_data().decode()


class StubPlatform:
    """serve --like cloud-run's platform as the panel reads it (its own tests: test_cloud_run_platform.py)."""

    def view(self) -> dict[str, Any]:
        return {"mode": "cloud-run", "revision": 3}

    def evict(self, name: str) -> bool:
        return False

    def fault(self, server: str, action: str) -> str:
        raise ValueError("no faults here")


def _nosniff_error(answer: Any, status: int, code: str) -> None:
    assert (answer.status_code, json.loads(answer.get_data())["error"]["code"]) == (status, code)
    assert answer.headers["X-Content-Type-Options"] == "nosniff"


def test_every_refusal_is_nosniff_json_and_head_reads_like_get() -> None:
    app = _dashboard()
    _nosniff_error(_get(app, "/_dashboard/api/functions", method="POST"), 405, "method_not_allowed")
    _nosniff_error(_get(app, "/_dashboard/nothing"), 404, "not_found")
    _nosniff_error(_get(app, "/_dashboard/api/functions", host="evil.example"), 403, "host_not_allowed")
    _nosniff_error(_get(app, "/_dashboard/api/events"), 404, "no_log_stream")
    head = _get(app, "/_dashboard/api/functions", method="HEAD")
    assert (head.status, head.get_data()) == ("200 OK", b"")


def test_the_platform_panel_and_its_buttons_are_reached_through_the_dashboard() -> None:
    app = _dashboard(platform=StubPlatform())
    assert json.loads(_get(app, "/_dashboard/api/platform").get_data()) == {"mode": "cloud-run", "revision": 3}
    evict = Client(app).post("/_dashboard/api/platform/evict", json={"instance": "x"}, headers={"Host": "127.0.0.1"})
    _nosniff_error(evict, 404, "no_such_instance")  # the platform's own answer, not the read-only 405
    without = Client(_dashboard()).post("/_dashboard/api/platform/fault", json={}, headers={"Host": "127.0.0.1"})
    _nosniff_error(without, 409, "not_cloud_run")


def test_a_host_is_matched_without_regard_to_case() -> None:
    assert _dashboard("Xeon.local").host_allowed({"HTTP_HOST": "XEON.local:8080"}) is True
    assert _dashboard("Xeon.local").host_allowed({"HTTP_HOST": "eon.local:8080"}) is False
    assert _dashboard("127.0.0.1").host_allowed({}) is False  # no Host at all


def test_text_wildcards_want_the_page_too() -> None:
    assert dashboard.wants_page({"HTTP_ACCEPT": "text/*"}) is True  # a media range, not a literal type


def test_a_stream_sets_its_send_timeout_and_answers_its_own_headers() -> None:
    app = _dashboard(requests=RequestLog(), workers=2)
    sock, other = socket.socketpair()
    captured: list[Any] = []
    environ = {"PATH_INFO": "/_dashboard/api/events", "REQUEST_METHOD": "GET", "HTTP_HOST": "127.0.0.1",
               "gunicorn.socket": sock}  # fmt: skip
    try:
        stream = app(environ, lambda status, headers: captured.append((status, headers)))
        assert sock.gettimeout() == dashboard.SEND_TIMEOUT_S
    finally:
        sock.close()
        other.close()
    stream_headers = [("Content-Type", "text/event-stream; charset=utf-8"), ("Cache-Control", "no-store")]
    assert captured == [("200 OK", stream_headers)]
    assert isinstance(stream, EventStream) and stream.scope is not None and stream.scope.endswith("(1 of 2)")
    stream.close()
    head_status: list[str] = []
    assert app({**environ, "REQUEST_METHOD": "HEAD"}, lambda status, headers: head_status.append(status)) == []
    assert head_status == ["200 OK"]


def _rounds(count: int) -> Any:
    rounds = iter([False] * count + [True])
    return lambda: next(rounds)


def test_a_stream_sends_each_line_once_its_status_when_it_changes_and_idles_between() -> None:
    ring = RequestLog()
    ring.handle(request_record(1, path="/random?ä=ü"))
    ring.handle(request_record(2))
    chunks = list(EventStream(ring, 0, lambda: None, _rounds(2)))
    assert chunks[0] == b"retry: 1000\n\n"
    lines = chunks[1].decode().split("\n")
    events = [json.loads(line[len("data: ") :]) for line in lines if line.startswith('data: {"time')]
    assert [e["seq"] for e in events] == [1, 2] and events[0]["path"] == "/random?ä=ü"
    assert "ä=ü".encode() in chunks[1]  # UTF-8 as it is, not \\u escapes
    first = chunks[1].decode()
    assert first.count("id: ") == 2 and "\n\nid: 2\n" in first  # one event after the other, nothing between
    assert first.endswith('event: status\ndata: {"missed": 0}\n\n')  # no scope: one worker's log is all
    assert chunks[2] == b": idle\n\n"  # the same status is not sent again


def test_an_idle_stream_wakes_about_once_a_second() -> None:
    stream = iter(EventStream(RequestLog(), 0, lambda: None, _rounds(3)))
    next(stream)
    next(stream)  # the first round: its status
    started = time.monotonic()
    assert next(stream) == b": idle\n\n"
    assert 0.9 <= time.monotonic() - started < 1.9  # the ring's 1 s wait, not more: a closed tab frees its thread


def test_a_stream_ends_after_its_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dashboard, "STREAM_BYTES", 300)
    ring = RequestLog()
    for n in range(3):
        ring.handle(request_record(n))
    chunks = list(EventStream(ring, 0, lambda: None, lambda: False))  # never stopping: ends by its byte bound
    assert len(chunks) == 2 and len(chunks[1]) > 300


def test_a_reader_is_told_exactly_how_many_lines_it_missed() -> None:
    ring = RequestLog(capacity=10)
    for n in range(1, 26):
        ring.handle(request_record(n))
    assert ring.read(after=25, wait_s=0) == {"events": [], "last": 25, "missed": 0}  # up to date: none missed
    assert ring.read(after=20, wait_s=0)["missed"] == 0  # its lines are all still in the ring
    assert ring.read(after=1, wait_s=0)["missed"] == 14  # lines 2-15 were dropped before it asked
    assert ring.read(after=0, wait_s=0)["missed"] == 0  # a new reader takes the backlog as it is
    first = ring.read(after=24, wait_s=0)["events"][0]
    assert first["time"] == pytest.approx(time.time(), abs=60) and first["seq"] == 25


def test_a_stream_counts_every_chunk_toward_its_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    ring = RequestLog()
    ring.handle(request_record(1))
    data = list(EventStream(ring, 0, lambda: None, _rounds(1)))[1]
    monkeypatch.setattr(dashboard, "STREAM_BYTES", len(data) + 5)  # the data, then one idle comment passes it
    chunks = list(EventStream(ring, 0, lambda: None, _rounds(3)))
    assert chunks == [b"retry: 1000\n\n", data, b": idle\n\n"]
