"""THE ROOM: every speed-up that reaches under a library lives in this package, and only here.

Outside it, `postgres.py`, `web.py`, `logs.py` and `store.py` are plain pg8000, Werkzeug and
logging code: where one of them has a faster way, it asks this package, which
hands back the fast implementation or the library's own (the "stock" one).

Each entry of CATALOGUE names the library internals it relies on, the versions it was verified
against (its pin: requirements.txt locks one version inside it), what it saves, and the oracle test
that holds it equal to the stock path. What each one gains is measured, not written here:
`python -m bench.instructions --gains` turns each off alone and writes the table into docs/design.md.
A path stays only while that table shows it paying in the deployed shape.

The switch: FACTS_FAST_PATHS=on|off (default on), read here and only here (shared.config parses
it; load_settings only refuses a bad value) the first time a fast path is asked for. Off is stock:
nothing private of any library is touched. On, each fast path first checks that its library still has the shape it
was verified against (the version within the pin, the attributes and signatures it uses). If not,
the stock path is used and ONE warning is logged; nothing ever fails because a library moved.
`reset()` forgets every choice (tests switch modes or fake a changed library with it).
"""

from __future__ import annotations

import importlib
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import flask
import pg8000.native
from werkzeug.datastructures import Headers

from ..config import ConfigError, fast_paths_setting
from . import _shape, direct_line  # direct_line: light, and reset() clears its choices

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FastPath:
    name: str
    library: str  # the distribution (or "python") whose internals it uses
    pin: tuple[str, str]  # verified versions: at least the first, below the second
    saves: str  # in words; the figures are bench.instructions --gains' table in docs/design.md
    oracle: str
    shape: Callable[[], str | None]  # None when the library looks as verified; else what differs


def _shape_check(module: str, check: str = "shape_difference") -> Callable[[], str | None]:
    """`check` of the fast module `module`, which is imported only when its path is first asked for:
    a module that no longer imports against a moved library then costs its own path (the stock one
    is used), never this package's import."""

    def checked() -> str | None:
        difference: str | None = getattr(importlib.import_module(f".{module}", __name__), check)()
        return difference

    return checked


ONE_TRIP = "pg8000.one_trip"
PASS_THROUGH_RESPONSE = "werkzeug.pass_through_response"  # noqa: S105 - a name, not a password
DIRECT_LINE = "logging.direct_line"

CATALOGUE: dict[str, FastPath] = {
    path.name: path
    for path in (
        FastPath(
            ONE_TRIP,
            "pg8000",
            ("1.31", "1.32"),
            "Bind, Execute, Sync in one write, and a plain answer parsed in place of pg8000's message loop",
            "tests/test_one_trip.py",
            _shape_check("one_trip"),
        ),
        FastPath(
            PASS_THROUGH_RESPONSE,
            "werkzeug",
            ("3.1", "3.2"),
            "headers handed to the server as checked when set, one bytes body handed over as it is",
            "tests/test_web_contract.py",
            _shape_check("werkzeug_response"),
        ),
        FastPath(
            DIRECT_LINE,
            "python",
            ("3.11", "3.13"),
            "the request line formatted from its parts and written under the handler's lock, without a "
            "LogRecord, Logger.handle's walk or the handler's filters",
            "tests/test_request_log_direct.py",
            direct_line.shape_difference,
        ),
    )
}
# Also a speed-up, but through public parameters only (pg8000's sock= and ssl_context=, Postgres'
# SSLRequest), so not here: postgres.py makes one TLS context per process, not one per connection
# (tests/test_postgres_connect.py counts them).

_SWITCH = "FACTS_FAST_PATHS"
_chosen: dict[str, bool] = {}  # by fast path, and the switch itself
_lock = threading.Lock()


def uses(name: str) -> bool:
    """Whether the fast path `name` is used in this process (decided once, on first ask)."""
    chosen = _chosen.get(name)
    if chosen is None:
        chosen = _decide(name)
    return chosen


def _decide(name: str) -> bool:
    path = CATALOGUE[name]
    on, warning = _switch_on(), None
    if on:
        difference = _difference(path)
        if difference is not None:
            on = False
            warning = (
                f"fast path {path.name} off, the stock path used instead: {difference} "
                f"(verified with {path.library} >={path.pin[0]},<{path.pin[1]})"
            )
    with _lock:
        if name in _chosen:  # another thread decided first, and warned if it had to
            return _chosen[name]
        _chosen[name] = on
    if warning:  # outside the lock: a log handler may ask for a fast path itself
        log.warning("%s", warning)
    return on


def _switch_on() -> bool:
    """FACTS_FAST_PATHS, read once; a value that is neither on nor off turns them off, with one
    warning (load_settings refuses it too, in the same words, so requests answer 503 misconfigured)."""
    with _lock:
        known = _chosen.get(_SWITCH)
    if known is not None:
        return known
    try:
        on, warning = fast_paths_setting(os.environ), None
    except ConfigError as error:
        on, warning = False, f"fast paths off: {error}"
    with _lock:
        if _SWITCH in _chosen:
            return _chosen[_SWITCH]
        _chosen[_SWITCH] = on
    if warning:
        log.warning("%s", warning)
    return on


def _difference(path: FastPath) -> str | None:
    version = _shape.version_of(path.library)
    if not _shape.within(version, path.pin):
        return f"version {version} is outside the pin"
    try:
        return path.shape()
    except Exception as exc:  # a check that cannot even run: the library moved more than expected
        return f"its shape could not be checked ({exc.__class__.__name__}: {exc})"


def reset() -> None:
    """Forget every choice: the next ask reads the switch and checks the libraries again."""
    with _lock:
        _chosen.clear()
    direct_line.forget()


def report() -> dict[str, bool]:
    """Each fast path and whether it is used (deciding those not asked for yet)."""
    return {name: uses(name) for name in CATALOGUE}


# The hooks: what the plain modules call. Each hands back the fast implementation or the stock one.


class Statement(Protocol):
    def run(self, **params: Any) -> Any: ...


def prepare(con: pg8000.native.Connection, sql: str) -> Statement:
    """A statement prepared on `con`: run in one trip (fast), or pg8000's own PreparedStatement."""
    if uses(ONE_TRIP):
        from .one_trip import OneTripStatement

        return OneTripStatement(con, sql)
    return con.prepare(sql)


def response_class() -> type[flask.Response]:
    """The class of a JSON response: one Werkzeug hands to the server as it is, or flask.Response."""
    if uses(PASS_THROUGH_RESPONSE):
        from .werkzeug_response import PassThroughResponse

        return PassThroughResponse
    return flask.Response


def copy_headers(checked: Headers) -> Headers:
    """A copy of headers already checked: without checking each again (fast), or Headers.copy()."""
    if uses(PASS_THROUGH_RESPONSE):
        from .werkzeug_response import copy_checked

        return copy_checked(checked)
    return checked.copy()


LineWriter = Callable[[str, tuple[Any, ...], dict[str, Any]], bool]


def line_writer(
    logger: logging.Logger, handler_type: type[logging.StreamHandler[Any]], pathname: str
) -> LineWriter | None:
    """A writer of `logger`'s INFO lines straight to its one handler, of `handler_type` (records
    from `pathname`), or None: logger.handle, the stock path. The writer answers False where it
    wrote nothing and the stock path must."""
    if uses(DIRECT_LINE):
        return direct_line.line_writer(logger, handler_type, pathname)
    return None
