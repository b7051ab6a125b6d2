"""The dashboard's server side over real HTTP, and the bounds of its live log (no browser)."""

from __future__ import annotations

import json
import logging
import socket
import time
from typing import Any
from urllib.parse import urlsplit

import pytest

from devharness import logstream
from devharness.dashboard import EventStream

from .support.plain_http import get as http_get

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


def test_the_servers_answer_has_health_data_and_no_password(harness: str, servers: Any) -> None:
    http_get(harness + "/today")
    status, headers, body = http_get(harness + "/_dashboard/api/servers")
    assert status == 200 and "Access-Control-Allow-Origin" not in headers
    answer = json.loads(body)
    assert answer["kind"] == "external" and answer["status"] == "ok"
    assert answer["postgres"]["health"] == answer["redis"]["health"] == "ok"
    data = answer["data"]
    assert [row["language"] for row in data["today"]] == ["en"] and data["today"][0]["views"] == 1
    assert data["catalogue"] == {"de": 30, "en": 7193}
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
        # The stream's first answer from the hub is a status event: it has asked the hub, and from
        # then on the workers forward request lines (an event to wait for, not a pause to hope by).
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


def test_each_worker_holds_few_streams_and_the_functions_keep_answering(harness: str) -> None:
    parts = urlsplit(harness)
    streams = []
    try:
        for _ in range(8):  # more than every worker's slots together (2 workers x 2)
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


# --- the bounds, without a server -------------------------------------------------------------


def _record(n: int) -> logging.LogRecord:
    record = logging.LogRecord("facts.requests", logging.INFO, __file__, 1, "GET /random 200", None, None)
    record.fields = {"function": "random_fact", "method": "GET", "path": "/random" + "x" * 500, "status": 200,
                     "latency_ms": float(n)}  # fmt: skip
    return record


def test_the_hub_keeps_a_bounded_backlog_and_tells_a_late_reader_what_it_missed() -> None:
    with logstream.LogHub(capacity=10) as hub:
        hub.add([{"n": n} for n in range(25)], pid=1, dropped=3)
        answer = hub.read(after=3, wait_s=0)
        assert [e["seq"] for e in answer["events"]] == list(range(16, 26))
        assert answer["missed"] == 12 and answer["dropped"] == 3 and answer["last"] == 25
        started = time.monotonic()
        assert hub.read(after=25, wait_s=0.3)["events"] == []  # waits at most wait_s for news
        assert 0.25 <= time.monotonic() - started < 0.3 + LOADED_MACHINE_S
        assert logstream.query_hub(hub.address, 24, 0)["events"][0]["seq"] == 25  # over its socket


def test_a_forwarder_never_blocks_and_counts_what_it_drops() -> None:
    with logstream.LogHub() as hub:
        forwarder = logstream.LogForwarder(hub.address, queue_size=5)
        forwarder.handle(_record(0))
        assert forwarder._queue.qsize() == 0  # nobody watches: nothing is kept
        hub.address.watched_until.value = time.time() + 30
        hub.close()  # the hub is gone: the sender cannot deliver
        started = time.monotonic()
        for n in range(2000):
            forwarder.handle(_record(n))
        assert time.monotonic() - started < LOADED_MACHINE_S  # takes milliseconds; blocking would hang
        assert forwarder.dropped >= 1900


def test_forwarded_lines_reach_the_hub_trimmed() -> None:
    with logstream.LogHub() as hub:
        forwarder = logstream.LogForwarder(hub.address)
        hub.address.watched_until.value = time.time() + 30
        forwarder.handle(_record(7))
        answer = hub.read(after=0, wait_s=5)
        assert len(answer["events"]) == 1
        event = answer["events"][0]
        assert event["latency_ms"] == 7.0 and len(event["path"]) == logstream.MAX_FIELD_CHARS


def test_a_stream_gives_its_slot_back_once_closed() -> None:
    released: list[int] = []
    with logstream.LogHub() as hub:
        stream = EventStream(hub.address, 0, lambda: released.append(1), stopping=lambda: True)
        assert list(stream) == [b"retry: 1000\n\n"]  # a stopping worker ends the stream at once
        stream.close()
        stream.close()
    assert released == [1]


def test_the_hub_answers_a_reader_from_before_a_restart_from_the_start() -> None:
    with logstream.LogHub() as hub:
        hub.add([{"n": 1}, {"n": 2}])
        assert [e["seq"] for e in hub.read(after=500, wait_s=0)["events"]] == [1, 2]


def test_with_redis_down_the_servers_answer_says_so_quickly_and_keeps_the_rest(harness: str, servers: Any) -> None:
    if servers.redis is None:
        pytest.skip(f"{servers.kind} servers are not ours to stop; run with --servers=embedded or containers")
    servers.redis.stop()
    try:
        started = time.monotonic()
        status, _, body = http_get(harness + "/_dashboard/api/servers")
        # A stopped Redis refuses at once: milliseconds, or one 0.25 s timeout, with room for a loaded machine.
        assert time.monotonic() - started < 0.25 + LOADED_MACHINE_S
    finally:
        servers.redis.start()
    answer = json.loads(body)
    assert status == 200 and answer["status"] == "degraded"
    assert answer["redis"]["health"] == "down" and answer["postgres"]["health"] == "ok"
    assert "Redis unavailable" in answer["data"]["redis_error"]
    assert answer["data"]["catalogue"] == {"de": 30, "en": 7193}
