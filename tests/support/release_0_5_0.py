"""The view statements of release 0.5.0 (shared/store.py at that release), frozen: the previous
release keeps serving while the next one's migration runs, so the schema must keep them working."""

_PICK_SEQ = "(SELECT 1 + floor(random() * n)::integer FROM fact_counts WHERE language = :language)"
_OTHER_SHARDS = (
    "(SELECT CAST(coalesce(sum(o.views), 0) AS bigint) FROM view_shards o"
    " WHERE o.fact_id = v.fact_id AND o.shard <> v.shard)"
)

RANDOM_VIEW = f"""
UPDATE view_shards v SET views = v.views + 1
FROM facts f
WHERE f.language = :language AND f.seq = {_PICK_SEQ} AND v.fact_id = f.fact_id AND v.shard = 0
RETURNING f.fact_id, f.fact, f.language, f.source, CASE WHEN v.spread THEN v.views + {_OTHER_SHARDS} ELSE v.views END"""

TODAY_VIEW = f"""
WITH existing AS (
    SELECT fact_id FROM daily_facts WHERE day = :day AND language = :language
), inserted AS (
    INSERT INTO daily_facts (day, language, fact_id)
    SELECT :day, :language, f.fact_id FROM facts f
    WHERE f.language = :language AND f.seq = {_PICK_SEQ} AND NOT EXISTS (SELECT 1 FROM existing)
    ON CONFLICT (day, language) DO UPDATE SET fact_id = daily_facts.fact_id
    RETURNING fact_id
), choice AS (
    SELECT fact_id FROM existing UNION ALL SELECT fact_id FROM inserted
), shards AS (
    INSERT INTO view_shards (fact_id, shard)
    SELECT choice.fact_id, s.shard FROM choice CROSS JOIN generate_series(1, 15) AS s (shard)
    ON CONFLICT DO NOTHING
), counted AS (
    UPDATE view_shards v SET views = v.views + 1 FROM choice
    WHERE v.fact_id = choice.fact_id AND v.shard = 0
    RETURNING v.fact_id, v.views + {_OTHER_SHARDS} AS views
)
SELECT f.fact_id, f.fact, f.language, f.source, counted.views FROM facts f JOIN counted USING (fact_id)"""

KNOWN_DAY_VIEW = f"""
UPDATE view_shards v SET views = v.views + 1
FROM daily_facts d
WHERE d.day = :day AND d.language = :language AND d.fact_id = :fact_id
  AND v.fact_id = d.fact_id AND v.shard = (SELECT floor(random() * 16)::smallint)
RETURNING v.views + {_OTHER_SHARDS}"""
