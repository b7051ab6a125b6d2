"""shared/web.py's contract, around a stub handler: no servers needed, so these run in milliseconds."""

from __future__ import annotations

import io
import json
from typing import Any

import flask
import pytest
from werkzeug.datastructures import Headers
from werkzeug.test import EnvironBuilder

from shared import logs, web
from shared.fast.werkzeug_response import PassThroughResponse
from shared.postgres import StoreUnavailable

SUPPORTED = ("en", "de")


def _request(
    method: str = "GET", query: str | dict[str, str] = "", headers: dict[str, str] | None = None, **environ: Any
) -> flask.Request:
    built = EnvironBuilder(method=method, query_string=query, headers=headers).get_environ()
    built.update(environ)
    return flask.Request(built)


def _ok(request: flask.Request) -> flask.Response:
    return web.json_response(200, {"ok": True})


def _error(response: flask.Response) -> dict[str, Any]:
    return json.loads(response.get_data())["error"]


def test_a_body_is_compact_utf8_json_with_its_text_unescaped() -> None:
    response = web.json_response(200, {"fact": "Grüße, 猫", "n": [1, 2]})
    assert response.get_data() == '{"fact":"Grüße, 猫","n":[1,2]}'.encode()


def test_every_json_response_carries_the_common_headers_then_its_own() -> None:
    common = [
        ("Access-Control-Allow-Origin", "*"),
        ("Access-Control-Expose-Headers", "ETag, Retry-After"),
        ("X-Content-Type-Options", "nosniff"),
        ("Content-Type", "application/json; charset=utf-8"),
    ]
    for response, own in (
        (web.json_response(200, {"a": 1}, {"Cache-Control": "no-store"}), [("Cache-Control", "no-store")]),
        (
            web.json_text_response(200, '{"a":1}', {"Cache-Control": "no-store", "ETag": 'W/"x"'}),
            [("Cache-Control", "no-store"), ("ETag", 'W/"x"')],
        ),
        (web.json_text_response(304, None), []),  # one response's headers never reach another's
    ):
        # Content-Length is Werkzeug's, from the body; every other header is named here.
        assert [item for item in response.headers if item[0] != "Content-Length"] == common + own
    assert web.json_text_response(200, '{"a":1}', {"Cache-Control": "no-store"}).get_data() == b'{"a":1}'


def test_a_header_value_with_a_line_break_is_refused_not_sent() -> None:
    # The common headers are checked once, at import; the per-response ones still on every response.
    with pytest.raises(ValueError):
        web.json_text_response(200, "{}", {"ETag": 'W/"a"\r\nSet-Cookie: x=1'})


def _sent(response: flask.Response, environ: dict[str, Any], as_werkzeug: bool) -> tuple[str, list, bytes, list]:
    """What the server gets: status, headers and body, and what closing the body called."""
    if as_werkzeug:
        response.__class__ = flask.Response  # the same response, sent by Werkzeug's own methods
    closed: list[str] = []
    response._on_close[:] = [lambda: closed.append("closed")] if response._on_close else []
    body, status, headers = response.get_wsgi_response(environ)
    data = b"".join(body)
    if hasattr(body, "close"):
        body.close()
    return status, headers, data, closed


_EXAMPLES = {
    "200": lambda: web.json_text_response(200, '{"a":"ü"}', {"Cache-Control": "no-store", "ETag": 'W/"x"'}),
    "404": lambda: web.error_response(web.ApiError(404, "no_facts", "none yet")),
    "503": lambda: web.error_response(web.ApiError(503, "down", "later", headers={"Retry-After": "2"})),
    "304": lambda: web.json_response(304, None, {"ETag": 'W/"x"'}),
    "204": lambda: web.json_response(204, None),
    "location": lambda: _changed(web.json_response(201, {"a": 1}), lambda r: r.headers.add("location", "/facts/1")),
    "content-location": lambda: _changed(
        web.json_response(200, {"a": 1}), lambda r: r.headers.add("Content-Location", "/ü")
    ),
    "to close": lambda: _changed(web.json_response(200, {"a": 1}), lambda r: r.call_on_close(lambda: None)),
    "text body": lambda: _changed(web.json_response(200, {"a": 1}), lambda r: setattr(r, "response", ['{"a":"ü"}'])),
    "mixed parts": lambda: _changed(web.json_response(200, {"a": 1}), lambda r: setattr(r, "response", [b"{", "}"])),
    "no length": lambda: _changed(web.json_response(200, {"a": 1}), lambda r: r.headers.remove("Content-Length")),
}


def _changed(response: flask.Response, change: Any) -> flask.Response:
    change(response)
    return response


@pytest.mark.parametrize("method", ["GET", "HEAD"])
@pytest.mark.parametrize("example", list(_EXAMPLES))
def test_a_json_response_reaches_the_server_as_werkzeug_would_send_it(example: str, method: str) -> None:
    environ = EnvironBuilder(method=method, path="/facts/").get_environ()
    ours, werkzeugs = _EXAMPLES[example](), _EXAMPLES[example]()
    ours.__class__ = PassThroughResponse  # the fast path, whichever mode (FACTS_FAST_PATHS) this process runs
    assert _sent(ours, environ, as_werkzeug=False) == _sent(werkzeugs, environ, as_werkzeug=True)


def test_a_plain_answer_is_sent_without_werkzeugs_copy_and_wrapping(monkeypatch: pytest.MonkeyPatch) -> None:
    response = web.json_text_response(200, '{"a":1}', {"Cache-Control": "no-store"})
    response.__class__ = PassThroughResponse  # the fast path, whichever mode this process runs
    environ = EnvironBuilder().get_environ()
    assert response.get_app_iter(environ) is response.response  # no generator, no closing iterator
    checked: list[str] = []
    add = Headers.add

    def counted_add(self: Headers, key: str, value: Any, **options: Any) -> None:
        checked.append(key)
        add(self, key, value, **options)

    monkeypatch.setattr(Headers, "add", counted_add)
    sent = response.get_wsgi_headers(environ)
    assert checked == []  # not copied through Headers' checks again
    assert list(sent) == list(response.headers)
    sent.add("X-Added-By-A-Caller", "1")  # a copy, as Werkzeug's: the response's own are unchanged
    assert "X-Added-By-A-Caller" not in response.headers


def test_no_body_is_an_empty_body() -> None:
    assert web.json_response(304, None).get_data() == b""


def test_an_error_is_never_stored_by_a_cache() -> None:
    def missing(request: flask.Request) -> flask.Response:
        raise web.ApiError(404, "no_facts", "none yet")

    response = web.serve(_request(), missing)
    assert response.status_code == 404 and response.headers["Cache-Control"] == "no-store"


def test_the_language_given_twice_is_refused_with_the_supported_list() -> None:
    with pytest.raises(web.ApiError) as refused:
        web.language_param(_request(query="language=en&language=de"), SUPPORTED)
    error = refused.value
    assert (error.status, error.code, error.message) == (400, "invalid_parameter", "give the language parameter once")
    assert error.details == {"supported_languages": ["en", "de"]}


@pytest.mark.parametrize(
    "language, shown",
    [
        ("x" * 40, '"' + "x" * 40 + '"'),  # at the limit: whole
        ("x" * 41, '"' + "x" * 40 + '…"'),  # past it: cut, and marked as cut
        ("é", '"é"'),  # as written, not as \u00e9
    ],
)
def test_an_unsupported_language_is_shown_quoted_and_cut_at_40_characters(language: str, shown: str) -> None:
    with pytest.raises(web.ApiError) as refused:
        web.language_param(_request(query={"language": language}), SUPPORTED)
    assert refused.value.message == f"unsupported language {shown}; supported: en, de"


class _UnreadableBody(io.RawIOBase):
    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        raise OSError("connection reset while reading the body")


@pytest.mark.parametrize(
    "framing",
    [{"CONTENT_LENGTH": "10"}, {"HTTP_TRANSFER_ENCODING": "chunked", "wsgi.input_terminated": True}],
    ids=["content-length", "chunked"],
)
def test_a_body_that_cannot_be_read_is_a_400_whatever_its_framing(framing: dict[str, Any]) -> None:
    request = _request(**{"wsgi.input": _UnreadableBody(), **framing})
    if "CONTENT_LENGTH" not in framing:
        request.environ.pop("CONTENT_LENGTH", None)
    response = web.serve(request, _ok)
    assert response.status_code == 400
    assert _error(response) == {"code": "invalid_body", "message": "the request body could not be read"}


def test_a_long_unknown_method_is_shown_cut_to_20_characters() -> None:
    response = web.serve(_request("PROPFINDPROPFINDPROPFIND"), _ok)  # 24 characters
    assert response.status_code == 405
    assert _error(response)["message"] == 'method "PROPFINDPROPFINDPROP…" is not allowed; use GET or HEAD'


@pytest.mark.parametrize("length, answered", [(2000, "reflected"), (2001, "*")])
def test_a_preflight_reflects_a_header_list_of_up_to_2000_characters(length: int, answered: str) -> None:
    requested = "x" * (length - 1999) + ",".join(["h" * 99] * 20)  # 20 names, 1,999 characters, then pad
    assert len(requested) == length
    response = web.serve(_request("OPTIONS", headers={"Access-Control-Request-Headers": requested}), _ok)
    assert response.status_code == 204
    assert response.headers["Access-Control-Allow-Headers"] == (requested if answered == "reflected" else "*")
    assert "Content-Type" not in response.headers  # no body, so no type


def test_an_outage_is_one_warning_with_the_reason_until_the_database_answers_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    reason = "connection refused by 127.0.0.1:5432"

    def down(request: flask.Request) -> flask.Response:
        raise StoreUnavailable(reason)

    logs.configure()  # as every request does: the recovery line is at INFO
    web.serve(_request(), _ok)  # whatever ran before: the database answers now
    caplog.clear()
    for _ in range(3):
        assert web.serve(_request(), down).status_code == 503
    web.serve(_request(), _ok)
    lines = [r.getMessage() for r in caplog.records if r.name == "shared.web"]
    assert lines == [
        f"database unavailable: {reason} (not logged again until it recovers or the reason changes)",
        "database available again",
    ]


def test_an_outage_whose_reason_changes_logs_each_reason_once_and_a_few_at_most(
    caplog: pytest.LogCaptureFixture,
) -> None:
    outage = web._Outage()
    caplog.clear()
    for _ in range(3):
        outage.failed(StoreUnavailable("the database schema is being migrated by another request"))
        outage.failed(StoreUnavailable("remaining connection slots are reserved"))
    for n in range(2 * web._Outage.MOST_REASONS):
        outage.failed(StoreUnavailable(f"reason {n}"))
    lines = [r.getMessage().split(" (", 1)[0] for r in caplog.records if r.name == "shared.web"]
    assert lines == [
        "database unavailable: the database schema is being migrated by another request",
        "database unavailable: remaining connection slots are reserved",
        *[f"database unavailable: reason {n}" for n in range(web._Outage.MOST_REASONS - 2)],
    ]
    outage.succeeded()
    caplog.clear()
    outage.failed(StoreUnavailable("remaining connection slots are reserved"))  # a new outage: said again
    assert len([r for r in caplog.records if r.name == "shared.web"]) == 1


def test_a_new_instance_logs_its_first_outage(caplog: pytest.LogCaptureFixture) -> None:
    """The instance's outage tracker starts with the database presumed up (the process-wide one is
    made at import, where no request precedes the first failure)."""
    outage = web._Outage()
    caplog.clear()
    outage.failed(StoreUnavailable("refused"))
    assert [r.levelname for r in caplog.records if r.name == "shared.web"] == ["WARNING"]


def test_a_bug_is_a_500_that_hides_it_and_logs_it_with_its_traceback(caplog: pytest.LogCaptureFixture) -> None:
    def broken(request: flask.Request) -> flask.Response:
        raise KeyError("secret detail")

    response = web.serve(_request(), broken)
    assert response.status_code == 500
    assert _error(response) == {"code": "internal", "message": "internal error; it has been logged"}
    assert b"secret detail" not in response.get_data()
    (record,) = [r for r in caplog.records if r.name == "shared.web"]
    assert (record.levelname, record.getMessage()) == ("ERROR", "unexpected error")
    assert record.exc_info is not None and "secret detail" in logs.CloudJsonFormatter().format(record)
