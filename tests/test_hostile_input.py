"""Hostile input through the real harness (`harness.py serve`, gunicorn) over raw sockets.

Every request is written byte for byte, so malformed input reaches the server untouched. What
reaches the functions must get a JSON answer, an error with the one error shape (4xx) or a normal
answer, never a 5xx, never a traceback, in the body or in the harness log. Input that is not valid
HTTP/1.1 at all (raw non-ASCII bytes in the request target, control characters in a header, a
lowercase method) is refused by gunicorn with its own 400 before any function sees it: those
cases only have to be a 400 without a traceback.
"""

from __future__ import annotations

import json
import re
import socket
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from devkit.servers.waiting import wait_until

JSON_TYPE = "application/json; charset=utf-8"
TIMEOUT_S = 10.0
MAX_ANSWER_BYTES = 4 * 1024 * 1024
FACT_KEYS = {"fact_id", "fact", "language", "source", "views"}
KB, MB = 1024, 1024 * 1024


# --- raw HTTP -------------------------------------------------------------------------------


@dataclass
class Answer:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes
    raw: bytes

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


def _address(base: str) -> tuple[str, int]:
    parts = urlsplit(base)
    assert parts.hostname == "127.0.0.1" and parts.port, base
    return parts.hostname, parts.port


def build(
    method: bytes = b"GET", target: bytes = b"/random", headers: Sequence[bytes] = (), body: bytes = b""
) -> bytes:
    """One HTTP/1.1 request, exactly these bytes (plus Host and Connection: close)."""
    head = [method + b" " + target + b" HTTP/1.1", b"Host: 127.0.0.1", b"Connection: close", *headers]
    return b"\r\n".join(head) + b"\r\n\r\n" + body


def exchange(base: str, request: bytes, *, half_close: bool = False) -> Answer:
    """Send `request`, read the answer until the server closes; everything bounded by TIMEOUT_S."""
    deadline = time.monotonic() + TIMEOUT_S
    data = b""
    with socket.create_connection(_address(base), timeout=TIMEOUT_S) as sock:
        sock.sendall(request)
        if half_close:  # tell the server no more bytes are coming (a body shorter than announced)
            sock.shutdown(socket.SHUT_WR)
        while len(data) <= MAX_ANSWER_BYTES:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no complete answer within {TIMEOUT_S} s; got {data[:300]!r}")
            sock.settimeout(remaining)
            try:
                chunk = sock.recv(64 * KB)
            except TimeoutError:
                raise AssertionError(f"no complete answer within {TIMEOUT_S} s; got {data[:300]!r}") from None
            except ConnectionResetError:
                if b"\r\n\r\n" in data:
                    break  # the server answered, then reset a connection we still had bytes queued on
                raise
            if not chunk:
                break
            data += chunk
    head, sep, body = data.partition(b"\r\n\r\n")
    assert sep, f"not an HTTP answer: {data[:300]!r}"
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    version, status, *_ = status_line.split(" ", 2)
    assert version.startswith("HTTP/1."), status_line
    headers: dict[str, str] = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if "content-length" in headers:
        length = int(headers["content-length"])
        if len(body) >= length:
            body = body[:length]
    return Answer(int(status), headers, body, data)


def send(
    base: str,
    method: bytes = b"GET",
    target: bytes = b"/random",
    headers: Sequence[bytes] = (),
    body: bytes = b"",
    *,
    half_close: bool = False,
) -> Answer:
    return exchange(base, build(method, target, headers, body), half_close=half_close)


# --- what every answer must look like -------------------------------------------------------


def assert_no_traceback(answer: Answer) -> None:
    assert b"Traceback" not in answer.raw
    assert answer.status < 500, f"{answer.status}: {answer.raw[:500]!r}"


def assert_json(answer: Answer, *statuses: int, head: bool = False) -> Any:
    """A function's (or the harness's) own answer: JSON, one error shape, never a 5xx."""
    assert_no_traceback(answer)
    assert answer.status in statuses, f"{answer.status} not in {statuses}: {answer.raw[:500]!r}"
    if answer.status in (204, 304) or head:
        assert answer.body == b""
        return None
    assert answer.header("Content-Type") == JSON_TYPE, answer.raw[:500]
    payload = json.loads(answer.body.decode("utf-8"))
    if 400 <= answer.status < 500:
        assert set(payload) == {"error"}, payload
        error = payload["error"]
        assert isinstance(error["code"], str) and error["code"], payload
        assert isinstance(error["message"], str) and error["message"], payload
        assert len(error["message"]) < 300, "the bad input is shortened, never echoed whole"
    return payload


def assert_error(answer: Answer, status: int, code: str) -> dict[str, Any]:
    error = assert_json(answer, status)["error"]
    assert error["code"] == code, error
    assert answer.header("Access-Control-Allow-Origin") == "*"
    assert answer.header("Cache-Control") == "no-store"
    return error


def assert_fact(answer: Answer, language: str = "en", *statuses: int) -> dict[str, Any] | None:
    body = assert_json(answer, *(statuses or (200,)))
    if body is not None:
        assert set(body) in (FACT_KEYS, FACT_KEYS | {"date"}), body
        assert body["language"] == language, body
    return body


def assert_refused_by_http_server(answer: Answer) -> None:
    """Not valid HTTP/1.1: gunicorn answers its own 400 (431 for an oversized header) before any function runs."""
    assert_no_traceback(answer)
    assert answer.status in (400, 431), answer.raw[:500]
    assert answer.header("Access-Control-Allow-Origin") is None, "a function answered; expected the HTTP server"


# --- the harness log ------------------------------------------------------------------------


def _marker(harness: str) -> bytes:
    """A request the harness logs as a 404: once its line is in the log, so are the lines before it."""
    marker = f"/hostile-input-marker-{uuid.uuid4().hex}".encode()
    assert_json(send(harness, target=marker), 404)
    return marker


@pytest.fixture(scope="module")
def harness_log_marks(harness: str, harness_log: Path) -> Iterator[list[tuple[str, bytes]]]:
    """Whatever the tests send, the harness logs no traceback for it. Each test leaves a marker
    request after its own (test id, marker path); the log is read once, after the module, as a
    line reaches it up to a flush interval late (0.25 s), and waiting that long after each of
    150 tests cost the suite over 40 s. A traceback is reported with the test whose requests
    came before it."""
    start = harness_log.stat().st_size
    marks: list[tuple[str, bytes]] = []
    yield marks

    def written_with_every_marker() -> bytes:
        with open(harness_log, "rb") as log:
            log.seek(start)
            written = log.read()
        missing = [test_id for test_id, marker in marks if marker not in written]
        assert not missing, f"the harness log does not show the marker requests after {missing}"
        return written

    # Each gunicorn worker writes its own lines, a flush interval late at most: wait for every marker.
    written = wait_until(written_with_every_marker, TIMEOUT_S, "every marker request in the harness log")
    # The markers may be out of order by a flush, so a traceback is named by the first marker after
    # it: the test it belongs to, or the one after.
    after = sorted((written.find(marker), test_id) for test_id, marker in marks)
    tracebacks = [found.start() for found in re.finditer(rb"Traceback", written)]
    tests = list(dict.fromkeys(next((t for at, t in after if at > i), "the last test") for i in tracebacks))
    assert not tracebacks, f"tracebacks in the harness log, near the requests of {tests}:\n" + written[
        tracebacks[0] : tracebacks[0] + 4000
    ].decode("utf-8", "replace")


@pytest.fixture(autouse=True)
def no_traceback_in_harness_log(
    request: pytest.FixtureRequest, harness: str, harness_log_marks: list[tuple[str, bytes]]
) -> Iterator[None]:
    yield
    harness_log_marks.append((request.node.nodeid, _marker(harness)))


@pytest.fixture(params=[b"/random", b"/today"], ids=["random", "today"])
def function(request: pytest.FixtureRequest) -> bytes:
    return request.param


# --- very long query strings: the request line has no limit, so they reach the function --------


def test_100kb_query_with_an_unknown_parameter_is_answered(harness, function):
    assert_fact(send(harness, target=function + b"?language=de&pad=" + b"a" * (100 * KB)), "de")


def test_1mb_query_is_answered(harness, function):
    assert_fact(send(harness, target=function + b"?" + b"x" * MB))


def test_1mb_query_of_many_pairs_is_answered(harness):
    assert_fact(send(harness, target=b"/random?" + b"a=1&" * (MB // 4) + b"language=de"), "de")


def test_1mb_language_value_is_a_short_400(harness, function):
    error = assert_error(send(harness, target=function + b"?language=" + b"x" * MB), 400, "unsupported_language")
    assert error["supported_languages"] == ["en", "de"]


def test_100kb_percent_encoded_language_value_is_a_short_400(harness, function):
    assert_error(send(harness, target=function + b"?language=" + b"%41" * (33 * KB)), 400, "unsupported_language")


def test_1mb_of_repeated_language_is_a_400(harness, function):
    assert_error(send(harness, target=function + b"?" + b"language=en&" * (MB // 12)), 400, "invalid_parameter")


# --- repeated and empty parameters ----------------------------------------------------------


@pytest.mark.parametrize(
    "query, code",
    [
        (b"language=en&language=en", "invalid_parameter"),
        (b"language=en&language=de", "invalid_parameter"),
        (b"language=&language=", "invalid_parameter"),
        (b"language&language", "invalid_parameter"),
        (b"language=", "unsupported_language"),
        (b"language", "unsupported_language"),
        (b"language==en", "unsupported_language"),
        (b"language=de;language=en", "unsupported_language"),
        (b"language=+en", "unsupported_language"),
    ],
)
def test_repeated_or_empty_language_is_a_400(harness, function, query, code):
    assert_error(send(harness, target=function + b"?" + query), 400, code)


@pytest.mark.parametrize(
    "query, language",
    [
        (b"", "en"),
        (b"&&&", "en"),
        (b"=", "en"),
        (b"=de", "en"),
        (b"&=&==&", "en"),
        (b"language=de&", "de"),
        (b"&&language=de&&", "de"),
        (b"LANGUAGE=de", "en"),
        (b"language[]=de", "en"),
        (b"x=1&x=2&x=&x", "en"),
        (b"language=de&Language=xx&lang=fr", "de"),
    ],
)
def test_empty_pairs_and_other_names_are_ignored(harness, function, query, language):
    assert_fact(send(harness, target=function + b"?" + query), language)


# --- broken percent-encoding and invalid UTF-8 ----------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        b"%",
        b"%%",
        b"%zz",
        b"%C3%28",
        b"%FF",
        b"%FF%FE",
        b"%ED%A0%80",
        b"%E2%82",
        b"%C0%AF",
        b"%00",
        b"d%",
        b"%e",
        b"e%6",
        b"%25",
    ],
    ids=lambda v: v.decode(),
)
def test_broken_percent_encoding_in_language_is_a_400(harness, function, value):
    error = assert_error(send(harness, target=function + b"?language=" + value), 400, "unsupported_language")
    assert error["supported_languages"] == ["en", "de"]


@pytest.mark.parametrize(
    "query, language",
    [
        (b"language=e%6E", "en"),
        (b"language=%64%65", "de"),
        (b"lang%75age=de", "de"),
        (b"%zz=1&language=de", "de"),
        (b"%C3%28=%FF&language=de", "de"),
        (b"%=%&language=de&%", "de"),
    ],
)
def test_percent_encoding_elsewhere_in_the_query(harness, function, query, language):
    assert_fact(send(harness, target=function + b"?" + query), language)


@pytest.mark.parametrize(
    "target, status",
    [
        (b"/random/%zz", 200),
        (b"/random/%C3%28/%FF", 200),
        (b"/random/../../etc/passwd", 200),
        (b"/random/%00", 200),
        (b"/%zz", 404),
        (b"/%C3%28", 404),
        (b"/random%FF", 404),
        (b"/healthz%", 404),
    ],
)
def test_broken_percent_encoding_in_the_path(harness, target, status):
    body = assert_json(send(harness, target=target), status)
    if status == 404:
        assert body["error"]["code"] == "not_found"


@pytest.mark.parametrize(
    "header",
    [
        b"Accept: text/\xff\xfe",
        b"User-Agent: \xc3\x28\xa0\xa1",
        b"X-Cloud-Trace-Context: \xff\xfe/1;o=1",
        b'If-None-Match: W/"\xc3\x28"',
        b"Accept-Language: \xed\xa0\x80",
    ],
)
def test_invalid_utf8_in_header_values_reaches_the_function(harness, function, header):
    # obs-text (0x80-0xFF) is allowed in header values, so these reach the function.
    assert_fact(send(harness, target=function, headers=[header]))


@pytest.mark.parametrize(
    "target",
    [
        b"/random?language=\xc3\x28",
        b"/today?language=\xff\xfe",
        b"/random?\xed\xa0\x80=1",
        b"/random/\xff",
        b"/today?language=e n",
    ],
)
def test_raw_bytes_outside_printable_ascii_in_the_target_are_refused_by_the_http_server(harness, target):
    # RFC 9112 3.2: the request target is printable ASCII (a space ends it); gunicorn refuses anything else.
    assert_refused_by_http_server(exchange(harness, build(target=target)))


# --- unknown methods ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "method", [b"FOO", b"PROPFIND", b"MKCOL", b"LOCK", b"PURGE", b"QUERY", b"TRACE", b"CONNECT", b"M-SEARCH", b"BREW"]
)
def test_unknown_methods_get_405_with_allow_and_count_no_view(harness, function, method, db):
    answer = send(harness, method, function + b"?language=de", [b"Content-Length: 5"], b"hello")
    error = assert_error(answer, 405, "method_not_allowed")
    assert method.decode() in error["message"]
    assert answer.header("Allow") == "GET, HEAD, OPTIONS"
    assert db.run("SELECT coalesce(sum(views), 0) FROM fact_views")[0][0] == 0


@pytest.mark.parametrize("target", [b"/", b"/healthz", b"/openapi.json"])
def test_other_methods_on_harness_routes_get_405_with_allow(harness, target):
    for method in (b"PROPFIND", b"DELETE"):
        answer = send(harness, method, target)
        assert_error(answer, 405, "method_not_allowed")
        assert answer.header("Allow") == "GET, HEAD"


def test_unknown_paths_are_a_json_404_whatever_the_method(harness):
    assert_error(send(harness, b"PROPFIND", b"/nope"), 404, "not_found")


@pytest.mark.parametrize("method", [b"get", b"Get", b"A" * 25, b"G\x01T", b"GE(T"])
def test_malformed_methods_are_refused_by_the_http_server(harness, method):
    assert_refused_by_http_server(exchange(harness, build(method=method)))


# --- bodies on GET --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers, body",
    [
        ([b"Content-Length: 11"], b"hello world"),
        ([b"Content-Type: application/json", b"Content-Length: 18"], b'{"language": "de"}'),
        ([b"Content-Type: application/x-www-form-urlencoded", b"Content-Length: 11"], b"language=de"),
        ([b"Content-Type: application/json", b"Content-Length: 9"], b'{"broken"'),
        ([b"Content-Type: multipart/form-data; boundary=zz", b"Content-Length: 12"], b"--zz\r\ngarbag"),
        ([b"Content-Length: 0"], b""),
        ([f"Content-Length: {MB}".encode()], b"\x00\xff" * (MB // 2)),
        ([b"Transfer-Encoding: chunked"], b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"),
        ([b"Transfer-Encoding: chunked"], b'5;ext=1;x="y"\r\nhello\r\n0\r\n\r\n'),
        ([b"Transfer-Encoding: chunked", b"Trailer: X-Foo"], b"5\r\nhello\r\n0\r\nX-Foo: bar\r\n\r\n"),
        ([b"Transfer-Encoding: chunked"], b"0\r\n\r\n"),
        ([b"Transfer-Encoding: chunked"], b"100000\r\n" + b"x" * 0x100000 + b"\r\n0\r\n\r\n"),
    ],
    ids=[
        "plain",
        "json-language",
        "form-language",
        "broken-json",
        "broken-multipart",
        "empty",
        "1mb-binary",
        "chunked",
        "chunk-extensions",
        "chunked-trailer",
        "chunked-empty",
        "chunked-1mb",
    ],
)
def test_a_body_on_get_is_ignored(harness, function, headers, body):
    # The language comes from the query only: a body saying `language=de` changes nothing.
    assert_fact(send(harness, b"GET", function, headers, body), "en")


@pytest.mark.parametrize(
    "headers, body",
    [
        ([b"Transfer-Encoding: chunked"], b"zz\r\nhello\r\n0\r\n\r\n"),
        ([b"Transfer-Encoding: chunked"], b"-5\r\nhello\r\n0\r\n\r\n"),
        ([b"Transfer-Encoding: chunked"], b"5\r\nhello world\r\n0\r\n\r\n"),
        ([b"Transfer-Encoding: chunked"], b"5;a=\x01\r\nhello\r\n0\r\n\r\n"),
        ([b"Transfer-Encoding: chunked"], b"5\r\nhel"),
        ([b"Transfer-Encoding: chunked"], b"5\r\nhello\r\n0\r\n"),
    ],
    ids=["bad-size", "negative-size", "chunk-longer-than-size", "control-char-extension", "truncated", "no-terminator"],
)
@pytest.mark.parametrize("method", [b"GET", b"HEAD", b"OPTIONS", b"POST"])
def test_a_broken_chunked_body_is_a_400(harness, function, method, headers, body, db):
    answer = send(harness, method, function, headers, body, half_close=True)
    error = assert_json(answer, 400, head=method == b"HEAD")
    if error is not None:
        assert error["error"]["code"] == "invalid_body"
    assert answer.header("Content-Type") == JSON_TYPE
    assert db.run("SELECT coalesce(sum(views), 0) FROM fact_views")[0][0] == 0


def test_a_body_shorter_than_its_content_length_is_answered(harness, function):
    # A GET's body means nothing to the functions: the fact is answered and counted, once.
    answer = send(harness, b"GET", function, [b"Content-Length: 100"], b"short", half_close=True)
    assert assert_fact(answer)["views"] == 1


@pytest.mark.parametrize("method, status", [(b"HEAD", 200), (b"OPTIONS", 204), (b"DELETE", 405)])
def test_a_body_on_other_methods(harness, function, method, status):
    answer = send(harness, method, function, [b"Content-Type: application/json", b"Content-Length: 2"], b"{}")
    assert_json(answer, status, head=method == b"HEAD")


@pytest.mark.parametrize(
    "headers",
    [
        [b"Content-Length: 5", b"Transfer-Encoding: chunked"],
        [b"Content-Length: abc"],
        [b"Content-Length: -1"],
        [b"Content-Length: 5", b"Content-Length: 6"],
        [b"Transfer-Encoding: chunked, gzip"],
        [b"X-Big: " + b"a" * (100 * KB)],
    ],
    ids=["cl-and-te", "cl-not-a-number", "cl-negative", "cl-twice", "te-not-chunked-last", "100kb-header"],
)
def test_conflicting_framing_is_refused_by_the_http_server(harness, headers):
    assert_refused_by_http_server(send(harness, b"GET", b"/random", headers, b"hello", half_close=True))


# --- odd Accept headers: the answer is JSON whatever the client asks for ----------------------


@pytest.mark.parametrize(
    "accept",
    [
        b"text/html",
        b"application/xml",
        b"*/*;q=0",
        b"application/json;q=0",
        b"text/html, application/xml;q=0.9, */*;q=0",
        b"garbage",
        b";;;,,,q=zz/@@",
        b"application/json; charset=ebcdic",
        b"",
        b"*/*;q=NaN, text/*;q=-1, application/*;q=1e309",
        b"text/html;q=0.1, " * 450,
    ],
    ids=[
        "html",
        "xml",
        "nothing",
        "not-json",
        "browser",
        "garbage",
        "punctuation",
        "odd-charset",
        "empty",
        "odd-q",
        "8kb",
    ],
)
def test_odd_accept_headers_still_get_json(harness, function, accept):
    answer = send(
        harness,
        target=function,
        headers=[b"Accept: " + accept, b"Accept-Charset: klingon", b"Accept-Encoding: br;q=zz, gzip;q=2"],
    )
    assert_fact(answer)
    assert answer.header("Content-Encoding") is None


@pytest.mark.parametrize("accept", [b"text/html", b"application/xml", b"*/*;q=0"])
def test_errors_are_json_whatever_the_accept_header(harness, function, accept):
    assert_error(
        send(harness, target=function + b"?language=xx", headers=[b"Accept: " + accept]), 400, "unsupported_language"
    )
    assert_error(send(harness, b"PUT", function, [b"Accept: " + accept]), 405, "method_not_allowed")


def test_control_characters_in_accept_are_refused_by_the_http_server(harness):
    assert_refused_by_http_server(send(harness, headers=[b"Accept: \x01\x02garbage"]))


# --- odd If-None-Match on /today ------------------------------------------------------------


@pytest.mark.parametrize(
    "value, status",
    [
        (b"*", 304),  # "*" matches any current representation (RFC 9110, 13.1.2)
        (b"W/", 200),
        (b'"', 200),
        (b'W/"', 200),
        (b",,,,", 200),
        (b'"a", W/"b", *', 200),  # "*" inside a list is not the wildcard: nothing here matches
        (b'W/W/W/"x"', 200),
        (b'W/"a", ' * 1000, 200),
        (b'"' + b"0" * 8000 + b'"', 200),
    ],
    ids=["star", "weak-only", "quote", "weak-quote", "commas", "list-with-star", "weak-weak", "1000-tags", "8kb-tag"],
)
def test_odd_if_none_match_gets_the_answer_its_match_decides(harness, value, status):
    answer = send(harness, target=b"/today", headers=[b"If-None-Match: " + value])
    assert_fact(answer, "en", status)
    assert answer.header("ETag") and answer.header("Cache-Control") == "no-cache"
