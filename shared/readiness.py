"""The readiness answer of a deployed instance: the path Cloud Run's startup probe and the deploy's
smoke request ask, which counts no view and takes at most one pooled Postgres connection.

functions-framework routes every path to the function, so the handlers recognise READY_PATH
themselves, before any view is counted.
"""

from __future__ import annotations

import flask

from . import instance, web
from .postgres import StoreUnavailable

# Not ending in "z": Cloud Run's front end reserves such paths (/healthz) for itself.
READY_PATH = "/_ready"
RETRY_AFTER_S = 2


def is_probe(environ: dict[str, object]) -> bool:
    """Whether a request asks the readiness path (one dictionary read and a comparison)."""
    return environ.get("PATH_INFO") == READY_PATH


def answer(request: flask.Request) -> flask.Response:
    """200 while Postgres answers on one pooled connection, else 503 with Retry-After. Redis is
    reported but not required: the functions serve without it (today's choice then comes from
    Postgres); the deploy's smoke request asks for both."""
    current = instance.state(migrate=False)
    try:
        postgres = "ok" if current.store.ping() else "down"
    except StoreUnavailable:
        postgres = "down"
    redis = "ok" if current.cache.ping() else "down"
    body = {"status": "ready" if postgres == "ok" else "not_ready", "postgres": postgres, "redis": redis}
    if postgres != "ok":
        return web.json_response(503, body, {"Cache-Control": "no-store", "Retry-After": str(RETRY_AFTER_S)})
    return web.json_response(200, body, {"Cache-Control": "no-store"})
