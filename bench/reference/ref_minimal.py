"""Reference functions doing the least work the real ones must do: the floor for /random and /today.

- `minimal_random`: one prepared statement, shared/store.py's RANDOM_VIEW (imported, so it cannot drift).
- `minimal_today`: one Redis GET of the day's key, then one prepared KNOWN_DAY_VIEW (the view counted
  in one of the day fact's shards); TODAY_VIEW only when the key is missing (just after UTC midnight).

No validation, no pool, no logging, no error contract: one pg8000 connection per thread, made on the
thread's first request, with its statement prepared once. A broken connection is dropped and made
again on the next request, so a restart does not wedge the benchmark.
"""

import json
import os
import threading
from datetime import UTC, datetime
from urllib.parse import unquote, urlsplit

import functions_framework
import pg8000.native
import redis

from shared.config import DEFAULT_CACHE_PREFIX
from shared.store import KNOWN_DAY_VIEW, RANDOM_VIEW, TODAY_VIEW

HEADERS = {"Content-Type": "application/json; charset=utf-8"}
PREFIX = os.environ.get("FACTS_CACHE_PREFIX", DEFAULT_CACHE_PREFIX)

_local = threading.local()
_redis = None
_redis_lock = threading.Lock()


def _connect():
    url = urlsplit(os.environ["DATABASE_URL"])
    return pg8000.native.Connection(
        unquote(url.username or ""),
        password=unquote(url.password) if url.password else None,
        host=url.hostname,
        port=url.port or 5432,
        database=url.path.lstrip("/"),
        timeout=5,
    )


def _statement(sql):
    """This thread's prepared statement for `sql` (connection and statement made once per thread)."""
    statements = getattr(_local, "statements", None)
    if statements is None:
        _local.con = _connect()
        statements = _local.statements = {}
    statement = statements.get(sql)
    if statement is None:
        statement = statements[sql] = _local.con.prepare(sql)
    return statement


def _run(sql, **params):
    try:
        return _statement(sql).run(**params)
    except (pg8000.native.InterfaceError, OSError):
        _local.statements = None  # reconnect on this thread's next request
        raise


def _cache():
    global _redis
    if _redis is None:
        with _redis_lock:
            if _redis is None:
                _redis = redis.Redis.from_url(os.environ["REDIS_URL"], socket_timeout=1)
    return _redis


def _answer(rows):
    if not rows:
        return json.dumps({"error": "no fact"}), 404, HEADERS
    fact_id, fact, language, source, views = rows[0]
    body = {"fact_id": fact_id, "fact": fact, "language": language, "source": source, "views": views}
    return json.dumps(body, ensure_ascii=False), 200, HEADERS


@functions_framework.http
def minimal_random(request):
    return _answer(_run(RANDOM_VIEW, language="en"))


@functions_framework.http
def minimal_today(request):
    day = datetime.now(UTC).date()
    raw = _cache().get(f"{PREFIX}:today:en:{day.isoformat()}")
    if not raw:
        return _answer(_run(TODAY_VIEW, day=day, language="en"))
    fact = json.loads(raw)
    rows = _run(KNOWN_DAY_VIEW, day=day, language="en", fact_id=fact["fact_id"])
    return _answer([[fact["fact_id"], fact["fact"], fact["language"], fact["source"], rows[0][0]]] if rows else [])
