"""The path a request's log line shows: as the client asked for it, mount point included."""

import flask
import pytest
from werkzeug.test import EnvironBuilder

from shared.handlers import logged_path

_app = flask.Flask(__name__)


@pytest.mark.parametrize(
    ("script_name", "path", "logged"),
    [
        ("", "/", "/"),  # the function deployed alone
        ("", "", "/"),
        ("/random", "/", "/random"),  # behind the harness: the mount point is the script root
        ("/random", "", "/random"),
        ("/today", "/extra/", "/today/extra"),
        ("/random/", "/x", "/random/x"),
        ("/random", "/caf\u00e9", "/random/caf\u00e9"),  # non-ASCII: decoded as UTF-8, as Werkzeug does
        ("", "/\u65e5\u672c", "/\u65e5\u672c"),
    ],
)
def test_the_logged_path_is_the_one_the_client_asked_for(script_name: str, path: str, logged: str) -> None:
    environ = EnvironBuilder(path=path or "/", base_url="http://localhost" + script_name).get_environ()
    environ["PATH_INFO"] = environ["PATH_INFO"] if path else ""
    with _app.request_context(environ):
        assert logged_path(flask.request) == logged
        # The same answer as Werkzeug's own decoding of the request's path.
        assert logged == (flask.request.script_root + flask.request.path).rstrip("/") or "/"


@pytest.mark.parametrize(
    ("environ", "logged"),
    [
        # PEP 3333 lets a server leave out SCRIPT_NAME and PATH_INFO when they are empty.
        ({}, "/"),
        ({"PATH_INFO": "/"}, "/"),
        ({"SCRIPT_NAME": "/today_fact"}, "/today_fact"),
        # A dispatcher may hand on its mount point with the slash it matched.
        ({"SCRIPT_NAME": "/random/", "PATH_INFO": "/x"}, "/random/x"),
        ({"SCRIPT_NAME": "/fn-X", "PATH_INFO": "/"}, "/fn-X"),
        ({"SCRIPT_NAME": "/random", "PATH_INFO": "/X-ray"}, "/random/X-ray"),
        ({"SCRIPT_NAME": "/today", "PATH_INFO": "/TeX"}, "/today/TeX"),
    ],
)
def test_the_logged_path_from_a_servers_raw_environ(environ: dict[str, str], logged: str) -> None:
    request = flask.Request({"REQUEST_METHOD": "GET", "wsgi.url_scheme": "http", **environ})
    assert logged_path(request) == logged
