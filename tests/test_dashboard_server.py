"""The dashboard's server side over real HTTP, and the bounds of its live log (no browser)."""

from __future__ import annotations

import json
import logging
import re
import socket
import threading
import time
from typing import Any
from urllib.parse import urlsplit

from devharness.dashboard import EventStream
from devharness.dispatcher import Dispatcher
from devharness.livelog import MAX_FIELD_CHARS, RequestLog
from shared import logs

from .support.harness_process import harness_server
from .support.plain_http import get as http_get
from .support.request_records import request_record
from .support.server_faults import require_control, stopped

# Generous: each line reaches the stream within a hub query (1 s) unless forwarding is broken.
STREAM_WAIT_S = 10.0
HELD_STREAM_S = 25.0  # how long the dashboard holds a live-log stream open (devharness.dashboard.STREAM_S)
# Room for a loaded machine (2 cores shared by several suites) above what a bound allows by design.
LOADED_MACHINE_S = 3.0
BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"


def test_a_browser_gets_the_page_at_the_root_and_api_clients_the_route_table(harness: str) -> None:
    status, headers, body = http_get(harness + "/", headers={"Accept": BROWSER_ACCEPT})
    assert status == 200 and headers["Content-Type"] == "text/html; charset=utf-8"
    assert b"/_dashboard/dashboard.js" in body
    assert "default-src 'self'" in headers["Content-Security-Policy"]  # nothing from elsewhere
    assert headers["Vary"] == "Accept" and "Access-Control-Allow-Origin" not in headers
    for accept in (None, "*/*", "application/json", "application/json, text/html;q=0.5"):
        status, headers, body = http_get(harness + "/", headers={"Accept": accept} if accept else {})
        assert status == 200 and headers["Content-Type"] == "application/json; charset=utf-8", accept
        assert [r["path"] for r in json.loads(body)["routes"]] == ["/random", "/today"]


def test_the_dashboard_is_read_only_and_answers_only_its_own_host(harness: str) -> None:
    port = urlsplit(harness).port
    for path in ("/_dashboard/api/servers", "/_dashboard/api/functions"):
        assert http_get(harness + path, method="POST")[0] == 405
        assert http_get(harness + path, method="DELETE")[0] == 405
        status, _, body = http_get(harness + path, headers={"Host": f"attacker.example:{port}"})  # DNS rebinding
        assert status == 403 and json.loads(body)["error"]["code"] == "host_not_allowed"
        assert http_get(harness + path, headers={"Host": f"localhost:{port}"})[0] == 200
    assert http_get(harness + "/", headers={"Accept": BROWSER_ACCEPT, "Host": "attacker.example"})[0] == 403
    started = time.monotonic()
    assert http_get(harness + "/_dashboard/api/events", method="HEAD")[0] == 200
    assert time.monotonic() - started < HELD_STREAM_S / 5  # no stream held open for a HEAD
    assert http_get(harness + "/_dashboard/../harness.py")[0] == 404
    assert http_get(harness + "/_dashboard/index.html")[0] == 404  # only the page's own assets


def _catalogue_grown_by_one(db: Any) -> dict[str, int]:
    """Add a fact as random does from the upstream API: the catalogue shown must be the stored one,
    not the bundled files' sizes."""
    db.run("SELECT * FROM view_external_fact('00000000000000ab', 'A fact this test adds.', 'en', 'test')")
    stored = {language: int(n) for language, n in db.run("SELECT language, count(*) FROM facts GROUP BY language")}
    assert stored == {"de": 30, "en": 7194}
    return stored


def test_the_servers_answer_has_health_data_and_no_password(harness: str, servers: Any, db: Any) -> None:
    catalogue = _catalogue_grown_by_one(db)
    http_get(harness + "/today")
    status, headers, body = http_get(harness + "/_dashboard/api/servers")
    assert status == 200 and "Access-Control-Allow-Origin" not in headers
    answer = json.loads(body)
    assert answer["kind"] == "external" and answer["status"] == "ok"
    assert answer["postgres"]["health"] == answer["redis"]["health"] == "ok"
    data = answer["data"]
    assert [row["language"] for row in data["today"]] == ["en"] and data["today"][0]["views"] == 1
    assert data["catalogue"] == catalogue
    assert [key["key"].rsplit(":", 2)[-2] for key in data["cache_keys"]] == ["en"]
    assert 0 < data["cache_keys"][0]["ttl_s"] <= 86400
    for url in (servers.database_url, servers.redis_url):
        password = urlsplit(url).password
        if password:
            assert password not in body.decode()


def _read_stream_until(sock: socket.socket, lines: list[str], done: Any, limit_s: float) -> list[str]:
    """Read the live log's raw lines into `lines` until `done(lines)` holds; fail after `limit_s`."""
    end = time.monotonic() + limit_s
    buffer = "\n".join(lines).encode()
    sock.settimeout(0.2)
    while not done(lines):
        assert time.monotonic() < end, f"not seen within {limit_s} s in the stream:\n" + "\n".join(lines)
        try:
            buffer += sock.recv(65536)
        except TimeoutError:
            continue
        lines[:] = buffer.decode(errors="replace").splitlines()
    return lines


def _events(lines: list[str]) -> list[dict[str, Any]]:
    return [json.loads(line[len("data: ") :]) for line in lines if line.startswith('data: {"time"')]


def _today_and_the_404(lines: list[str]) -> bool:
    events = _events(lines)
    return any(e["function"] == "today_fact" for e in events) and any(e["status"] == 404 for e in events)


def test_the_live_log_streams_request_lines_with_their_fields(harness: str) -> None:
    parts = urlsplit(harness)
    lines: list[str] = []
    with socket.create_connection((parts.hostname, parts.port), timeout=5) as sock:
        sock.sendall(f"GET /_dashboard/api/events HTTP/1.1\r\nHost: {parts.netloc}\r\n\r\n".encode())
        # The stream's first status event follows the backlog: from then on, lines arrive as they
        # happen (an event to wait for, not a pause to hope by).
        _read_stream_until(sock, lines, lambda seen: "event: status" in seen, STREAM_WAIT_S)
        http_get(harness + "/today?language=de")
        http_get(harness + "/no/such/path")
        _read_stream_until(sock, lines, _today_and_the_404, STREAM_WAIT_S)
    assert "text/event-stream; charset=utf-8" in "\n".join(lines[:10])
    events = _events(lines)
    today = [e for e in events if e["function"] == "today_fact"]
    assert today and today[-1]["path"] == "/today" and today[-1]["status"] == 200 and today[-1]["cache"] == "miss"
    assert any(e["function"] == "harness" and e["status"] == 404 for e in events)
    assert not any(e["path"].startswith("/_dashboard") for e in events)  # the page's own polling is not logged
    assert '"scope"' not in "\n".join(lines)  # one worker: its log is the whole log


def _first_status(base: str) -> dict[str, Any]:
    parts = urlsplit(base)
    lines: list[str] = []
    with socket.create_connection((parts.hostname, parts.port), timeout=5) as sock:
        sock.sendall(f"GET /_dashboard/api/events HTTP/1.1\r\nHost: {parts.netloc}\r\n\r\n".encode())
        _read_stream_until(sock, lines, lambda seen: "event: status" in seen, STREAM_WAIT_S)
        _read_stream_until(sock, lines, lambda seen: seen[seen.index("event: status") + 1 :], STREAM_WAIT_S)
    status_at = lines.index("event: status")
    return dict(json.loads(lines[status_at + 1][len("data: ") :]))


def test_with_several_workers_the_live_log_says_it_shows_one_worker_s_lines(servers: Any) -> None:
    with harness_server(servers.environ(), "--workers", "2") as (base, _):
        status = _first_status(base)
    assert re.fullmatch(r"worker \d+ only \(1 of 2\)", status["scope"]), status


def test_each_worker_holds_few_streams_and_the_functions_keep_answering(harness: str) -> None:
    parts = urlsplit(harness)
    streams = []
    try:
        for _ in range(8):  # more than the worker's slots (THREADS / 2 = 2)
            sock = socket.create_connection((parts.hostname, parts.port), timeout=5)
            sock.sendall(f"GET /_dashboard/api/events HTTP/1.1\r\nHost: {parts.netloc}\r\n\r\n".encode())
            streams.append(sock)
        statuses = [sock.recv(64).split(b" ")[1] for sock in streams]
        assert b"503" in statuses and b"200" in statuses
        started = time.monotonic()
        assert http_get(harness + "/random")[0] == 200
        assert time.monotonic() - started < HELD_STREAM_S / 5  # not held up until the streams end
    finally:
        for sock in streams:
            sock.close()


# --- the ring, without a server ---------------------------------------------------------------


def test_the_ring_keeps_the_last_lines_in_order_and_tells_a_late_reader_what_it_missed() -> None:
    ring = RequestLog(capacity=10)
    for n in range(25):
        ring.handle(request_record(n))
    answer = ring.read(after=3, wait_s=0)
    assert [e["seq"] for e in answer["events"]] == list(range(16, 26))
    assert [e["latency_ms"] for e in answer["events"]] == [float(n) for n in range(15, 25)]  # as they came
    assert answer["missed"] == 12 and answer["last"] == 25
    assert [e["seq"] for e in ring.read(after=23, wait_s=0)["events"]] == [24, 25]  # only what is after `after`
    assert ring.read(after=0, wait_s=0)["missed"] == 0  # a new reader takes the backlog as it is
    started = time.monotonic()
    assert ring.read(after=25, wait_s=0.3)["events"] == []  # waits at most wait_s for news
    assert 0.25 <= time.monotonic() - started < 0.3 + LOADED_MACHINE_S


def test_a_waiting_reader_gets_a_line_as_soon_as_it_is_logged() -> None:
    ring = RequestLog()
    logged_at: list[float] = []

    def log_a_line() -> None:
        logged_at.append(time.monotonic())
        ring.handle(request_record(1))

    threading.Timer(0.2, log_a_line).start()
    answer = ring.read(after=0, wait_s=60)
    returned = time.monotonic()
    assert [e["seq"] for e in answer["events"]] == [1]
    # Woken by the line itself, far sooner than wait_s: the margin is only for a loaded machine.
    assert returned - logged_at[0] < LOADED_MACHINE_S


def test_the_ring_keeps_request_lines_only_with_their_keys_trimmed() -> None:
    ring = RequestLog()
    ring.handle(logging.LogRecord("facts.harness", logging.ERROR, __file__, 1, "random_fact.py failed", None, None))
    partial = request_record(0)
    del partial.fields["status"]  # type: ignore[attr-defined]
    ring.handle(partial)  # fields, but not a request line
    assert ring.read(after=0, wait_s=0)["events"] == []
    ring.handle(request_record(7, path="/random" + "x" * 500, secret="not a request line key"))
    [event] = ring.read(after=0, wait_s=0)["events"]
    assert event["latency_ms"] == 7.0 and len(event["path"]) == MAX_FIELD_CHARS and "secret" not in event


def test_the_ring_collects_the_functions_and_the_harness_s_own_lines_once_attached() -> None:
    logs.configure()  # the level every request sets
    ring = RequestLog().attach()
    try:
        logs.log_request("today_fact", "GET", "/today", 200, time.perf_counter())
        dispatcher = Dispatcher([], health=lambda: (200, {}))
        dispatcher({"PATH_INFO": "/nowhere", "REQUEST_METHOD": "GET"}, lambda status, headers: None)
    finally:
        ring.detach()
    logs.log_request("today_fact", "GET", "/today", 200, time.perf_counter())  # detached: not kept
    events = ring.read(after=0, wait_s=0)["events"]
    assert [(e["function"], e["path"], e["status"]) for e in events] == [
        ("today_fact", "/today", 200),
        ("harness", "/nowhere", 404),
    ]


def test_the_ring_answers_a_reader_from_before_a_restart_from_the_start() -> None:
    ring = RequestLog()
    ring.handle(request_record(1))
    ring.handle(request_record(2))
    assert [e["seq"] for e in ring.read(after=500, wait_s=0)["events"]] == [1, 2]


def test_a_stream_gives_its_slot_back_once_closed() -> None:
    released: list[int] = []
    stream = EventStream(RequestLog(), 0, lambda: released.append(1), stopping=lambda: True)
    assert list(stream) == [b"retry: 1000\n\n"]  # a stopping worker ends the stream at once
    stream.close()
    stream.close()
    assert released == [1]


def test_a_stream_of_one_worker_among_several_says_so() -> None:
    ring = RequestLog()
    ring.handle(request_record(1))
    rounds = iter([False, True])
    stream = EventStream(ring, 0, lambda: None, stopping=lambda: next(rounds), scope="worker 7 only (1 of 2)")
    text = b"".join(stream).decode()
    assert '"seq": 1' in text and 'event: status\ndata: {"missed": 0, "scope": "worker 7 only (1 of 2)"}' in text


def test_with_redis_down_the_servers_answer_says_so_quickly_and_keeps_the_rest(
    harness: str, servers: Any, db: Any
) -> None:
    redis_server = require_control(servers, "redis")
    catalogue = _catalogue_grown_by_one(db)
    with stopped(redis_server):
        started = time.monotonic()
        status, _, body = http_get(harness + "/_dashboard/api/servers")
        # A stopped Redis refuses at once: milliseconds, or one 0.25 s timeout, with room for a loaded machine.
        assert time.monotonic() - started < 0.25 + LOADED_MACHINE_S
    answer = json.loads(body)
    assert status == 200 and answer["status"] == "degraded"
    assert answer["redis"]["health"] == "down" and answer["postgres"]["health"] == "ok"
    assert "Redis unavailable" in answer["data"]["redis_error"]
    assert answer["data"]["catalogue"] == catalogue
