"""The bodies of the two HTTP functions; functions/*.py only bind them to their targets."""

from __future__ import annotations

import time
from collections.abc import Callable

import flask

from . import facts, instance, logs, readiness, web

# Where a function leaves what the day cache did, for the request's log line: the WSGI environ is
# the request's own dict, reached directly (flask.g is a context-local proxy, a lookup each time).
CACHE_OUTCOME = "facts.cache"


def _random(request: flask.Request) -> flask.Response:
    current = instance.state()
    language = web.language_param(request, current.settings.languages)
    fact = facts.pick_random(current.store, language, count_view=request.method == "GET", upstream=current.upstream)
    if fact is None:
        raise web.ApiError(404, "no_facts", f"the catalogue has no facts in language {language!r} yet")
    return web.json_text_response(200, fact.json_text(), {"Cache-Control": "no-store"})


def _today(request: flask.Request) -> flask.Response:
    current = instance.state()
    language = web.language_param(request, current.settings.languages)
    found = facts.fact_of_the_day(
        current.store, current.cache, current.day_memo, language, current.clock(), count_view=request.method == "GET"
    )
    if found is None:
        raise web.ApiError(404, "no_facts", f"the catalogue has no facts in language {language!r} yet")
    request.environ[CACHE_OUTCOME] = "hit" if found.cache_hit else "miss"  # for the request's log line
    day = found.day.isoformat()
    # Every view is counted, so shared caches must revalidate with us each time (no-cache), and a
    # matching If-None-Match gets a 304 that is still a view.
    headers = {"Cache-Control": "no-cache", "ETag": f'W/"{found.fact.fact_id}-{day}"'}
    if request.if_none_match.contains_weak(found.fact.fact_id + "-" + day):
        return web.json_response(304, None, headers)
    return web.json_text_response(200, found.fact.json_text(date=day), headers)


def logged_path(request: flask.Request) -> str:
    """The path as the client asked for it: behind the harness the mount point is the script root
    (the function itself sees "/"). Read from the environ, where an ASCII path is already what the
    client sent; only a path with non-ASCII characters needs Werkzeug's decoding."""
    environ = request.environ
    script, path = environ.get("SCRIPT_NAME", ""), environ.get("PATH_INFO", "")
    if not (script.isascii() and path.isascii()):
        script, path = request.script_root, request.path
    return (script.rstrip("/") + "/" + path.lstrip("/")).rstrip("/") or "/"


def _logged(function: str, body: Callable[[flask.Request], flask.Response], request: flask.Request) -> flask.Response:
    """`body`'s answer to `request`, through web.serve, and the request line of `function`."""
    if readiness.is_probe(request.environ):
        return web.serve(request, readiness.answer)  # no view counted, no request line
    logs.configure()
    started = time.perf_counter()
    response = web.serve(request, body)
    environ = request.environ
    logs.log_request(
        function,
        request.method,
        logged_path(request),
        response.status_code,
        started,
        cache=environ.get(CACHE_OUTCOME),
        trace_header=environ.get("HTTP_X_CLOUD_TRACE_CONTEXT"),
    )
    return response


def handle_random(request: flask.Request) -> flask.Response:
    """The random_fact function: a random fact in the asked language."""
    return _logged("random_fact", _random, request)


def handle_today(request: flask.Request) -> flask.Response:
    """The today_fact function: the fact of the UTC day in the asked language, the same for everyone."""
    return _logged("today_fact", _today, request)
