"""Werkzeug's last steps before the server skipped where they would only repeat work.

Before every answer Werkzeug copies the headers through Headers' checks again, although each
value was checked when it was set (Headers refuses a line break on add and set), and wraps the
body in a generator and a closing iterator: for the contract's seven headers, the larger part of
what Werkzeug adds to a /random request. A response that Werkzeug
would change on the way out (a Location to make absolute, a Content-Length to add, a HEAD, 1xx,
204 or 304 without a body, something to close, a body that is not one bytes object) takes
Werkzeug's own path. tests/test_web_contract.py holds the two equal.

It uses Headers' list (`_list`) and a response's `_on_close`: shape_difference() checks both.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import flask
from werkzeug.datastructures import Headers

from . import _shape

# Headers whose values Werkzeug rewrites before sending (made absolute URLs).
_REWRITTEN_HEADERS = frozenset(("location", "content-location"))


def copy_checked(checked: Headers) -> Headers:
    """A copy of headers whose values Headers checked when they were set: Headers(checked) would
    check each again."""
    copy = Headers()
    copy._list = [*checked._list]
    return copy


class PassThroughResponse(flask.Response):
    """A Flask response handed to the server as it is, where Werkzeug would only repeat work."""

    def _sent_as_is(self) -> bool:
        status = self.status_code
        return status >= 200 and status != 204 and status != 304

    def get_wsgi_headers(self, environ: Any) -> Headers:
        if self._sent_as_is():
            listed = self.headers._list
            names = {name.lower() for name, _ in listed}
            length_known = "content-length" in names or not self.automatically_set_content_length
            if length_known and names.isdisjoint(_REWRITTEN_HEADERS):
                return copy_checked(self.headers)  # a copy, as Werkzeug's is: a caller may change it
        return super().get_wsgi_headers(environ)

    def get_app_iter(self, environ: Any) -> Iterable[bytes]:
        body = self.response
        if (
            type(body) is list
            and len(body) == 1
            and type(body[0]) is bytes
            and not self._on_close  # Werkzeug's iterator would call these when the server closes it
            and environ["REQUEST_METHOD"] != "HEAD"
            and self._sent_as_is()
        ):
            return body
        return super().get_app_iter(environ)


def shape_difference() -> str | None:
    """What differs from the Werkzeug this was verified with (None: nothing we use)."""
    probe = flask.Response(b"{}", headers=Headers([("X-Probe", "1")]))
    listed = getattr(probe.headers, "_list", None)
    return _shape.first(
        None if isinstance(listed, list) and listed[0] == ("X-Probe", "1") else "Headers keeps no _list of pairs",
        None if isinstance(getattr(probe, "_on_close", None), list) else "a response keeps no _on_close list",
        _shape.missing_attributes(probe, ("automatically_set_content_length",)),
        _shape.parameters_differ(flask.Response.get_wsgi_headers, ("self", "environ")),
        _shape.parameters_differ(flask.Response.get_app_iter, ("self", "environ")),
        None if "_list" in Headers.copy.__code__.co_names else "Headers.copy no longer copies _list",
    )
