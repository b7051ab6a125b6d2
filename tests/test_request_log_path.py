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
