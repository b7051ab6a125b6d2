"""Reference functions as a developer writes them by hand: the floor /random and /today are held to.

One table (`hand_facts`, made by bench/handwritten.py from the catalogue's English facts), views in
the fact's own row, and one prepared primary-key `UPDATE … WHERE id = $1 RETURNING` per request:

- `handwritten_random`: the id drawn in Python (1..n, n read once per connection);
- `handwritten_today`: one Redis GET of the day's id, then the same one-row update.

No validation, no pool, no logging, no error contract; one pg8000 connection per thread. Beside
ref_minimal.py (the project's own statements with nothing around them), the ratio to this one also
shows what the schema costs.
"""

import json
import os
import random
import threading
from urllib.parse import unquote, urlsplit

import functions_framework
import pg8000.native
import redis

HEADERS = {"Content-Type": "application/json; charset=utf-8"}
TODAY_KEY = "hand:today"
UPDATE = "UPDATE hand_facts SET views = views + 1 WHERE id = :id RETURNING fact_id, fact, language, source, views"

_thread = threading.local()
_cache = redis.Redis.from_url(os.environ["REDIS_URL"], socket_timeout=1)


def _update(fact_id):
    if getattr(_thread, "update", None) is None:
        url = urlsplit(os.environ["DATABASE_URL"])
        password = unquote(url.password) if url.password else None
        con = pg8000.native.Connection(unquote(url.username or ""), password=password, host=url.hostname,
                                       port=url.port or 5432, database=url.path.lstrip("/"), timeout=5)  # fmt: skip
        _thread.count = con.run("SELECT count(*) FROM hand_facts")[0][0]
        _thread.update = con.prepare(UPDATE)
    try:
        return _thread.update.run(id=fact_id if fact_id else random.randint(1, _thread.count))
    except (pg8000.native.InterfaceError, OSError):
        _thread.update = None  # connect again on this thread's next request
        raise


def _answer(rows):
    fact_id, fact, language, source, views = rows[0]
    body = {"fact_id": fact_id, "fact": fact, "language": language, "source": source, "views": views}
    return json.dumps(body, ensure_ascii=False), 200, HEADERS


@functions_framework.http
def handwritten_random(request):
    return _answer(_update(None))


@functions_framework.http
def handwritten_today(request):
    return _answer(_update(int(_cache.get(TODAY_KEY))))
