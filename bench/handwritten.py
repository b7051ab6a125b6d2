"""The hand-written reference's own table and day key (bench/reference/ref_handwritten.py).

`hand_facts` holds the catalogue's English facts as a developer would lay them out by hand: one
row per fact, numbered 1..n by its `id` primary key, with its views in the row; `hand:today` in
Redis names the day's fact by that id. Made after the day's fact is chosen, before the references
start.
"""

from __future__ import annotations

from datetime import UTC, datetime

TABLE = (
    "CREATE TABLE hand_facts (id integer PRIMARY KEY, fact_id text NOT NULL, fact text NOT NULL,"
    " language text NOT NULL, source text NOT NULL, views bigint NOT NULL DEFAULT 0)"
)
FILL = "INSERT INTO hand_facts SELECT seq, fact_id, fact, language, source FROM facts WHERE language = 'en'"
# The day's fact where it is chosen (bench/run.py asks /today first); else the first fact.
DAY_ID = """SELECT coalesce((SELECT f.seq FROM daily_facts d JOIN facts f USING (fact_id)
                          WHERE d.day = :day AND d.language = 'en'), 1)"""


def prepare(database_url: str, redis_url: str) -> int:
    """Make the table and the day's key; the number of rows."""
    import redis

    from shared.config import parse_database_url
    from shared.postgres import connect

    with connect(parse_database_url(database_url), 30.0, statement_timeout_ms=None) as con:
        con.run("DROP TABLE IF EXISTS hand_facts")
        con.run(TABLE)
        con.run(FILL)
        con.run("VACUUM ANALYZE hand_facts")
        count = int(con.run("SELECT count(*) FROM hand_facts")[0][0])
        day_id = int(con.run(DAY_ID, day=datetime.now(UTC).date())[0][0])
    redis.Redis.from_url(redis_url).set("hand:today", day_id)
    return count
