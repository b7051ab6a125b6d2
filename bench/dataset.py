"""Catalogue sizes for the scale runs: synthetic facts appended with SQL, numbered after the last one."""

from __future__ import annotations

import time

import pg8000.native

from shared.postgres import transaction

# Facts of a realistic length (~100 characters), with ids that cannot clash with the real ones
# (those are 16 hex digits of a digest; these start with "bench").
_APPEND = """
INSERT INTO facts (fact_id, fact, language, source, seq)
SELECT 'bench' || lpad(to_hex(g), 11, '0'),
       'Synthetic benchmark fact number ' || g || ', long enough to look like a real one in the table.',
       CAST(:language AS text), 'bench', g
FROM generate_series(CAST(:first AS integer), CAST(:last AS integer)) AS g
"""


def set_catalogue_size(con: pg8000.native.Connection, language: str, size: int) -> dict:
    """Make `language` hold at least `size` facts and let random selection use exactly seq 1..size.

    Rows are only added (never removed): once a million rows exist, switching between 10k and 1M is
    one UPDATE of fact_counts (the pick only looks at seq 1..n), so the two sizes can alternate.
    """
    began = time.perf_counter()
    last = con.run("SELECT coalesce(max(seq), 0) FROM facts WHERE language = :language", language=language)[0][0]
    added = 0
    if last < size:
        with transaction(con):
            con.run(_APPEND, language=language, first=last + 1, last=size)
            con.run("UPDATE fact_counts SET n = :n WHERE language = :language", n=size, language=language)
        added = size - last
        # Do now what autovacuum and the checkpointer would otherwise do during the measurement
        # (a million new rows make both busy for a while): freeze/visibility map, statistics, flush.
        con.run("VACUUM (ANALYZE) facts")
        con.run("CHECKPOINT")
    else:
        con.run("UPDATE fact_counts SET n = :n WHERE language = :language", n=size, language=language)
    return {"size": size, "added": added, "seconds": round(time.perf_counter() - began, 2)}
