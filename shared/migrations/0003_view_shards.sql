-- Views move out of the facts rows into counter shards, so that the day's fact, which every /today
-- request counts, is no longer one row whose lock every view queues on.
--
-- A fact's views are the sum of its shards. Every fact has shard 0 (random picks and upstream facts
-- count there: their rows are spread over the catalogue anyway); the day's fact also gets shards
-- 1..DAY_SHARDS-1 (shared/store.py, 16 when this was written), and each /today view counts in one of
-- them chosen at random. `fact_views` is the one place to read counts from.
--
-- Run it with no instance of the previous version serving: their statements name facts.views.

CREATE TABLE view_shards (
    fact_id text NOT NULL REFERENCES facts (fact_id) ON DELETE CASCADE,
    shard   smallint NOT NULL CHECK (shard >= 0),
    views   bigint NOT NULL DEFAULT 0 CHECK (views >= 0),
    PRIMARY KEY (fact_id, shard)
-- Room on each page for the new row versions of updates (HOT updates, no index writes).
) WITH (fillfactor = 50);

-- Every count moves, exactly: shard 0 of each fact starts with the fact's views so far.
INSERT INTO view_shards (fact_id, shard, views) SELECT fact_id, 0, views FROM facts;

-- Days chosen before this migration keep their spread too (today's above all).
INSERT INTO view_shards (fact_id, shard)
SELECT DISTINCT d.fact_id, s.shard FROM daily_facts d CROSS JOIN generate_series(1, 15) AS s (shard);

ALTER TABLE facts DROP COLUMN views;

CREATE VIEW fact_views AS
SELECT fact_id, CAST(sum(views) AS bigint) AS views FROM view_shards GROUP BY fact_id;

-- Shard 0 for every new fact, whoever inserts it (catalogue imports, upstream facts, benchmarks).
CREATE FUNCTION add_view_shard_zero() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO view_shards (fact_id, shard) SELECT fact_id, 0 FROM added;
    RETURN NULL;
END
$$;

CREATE TRIGGER facts_add_view_shard_zero AFTER INSERT ON facts
REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION add_view_shard_zero();

-- As in 0002, with the count in shard 0 and the total over all shards returned.
DROP FUNCTION view_external_fact(text, text, text, text);

CREATE FUNCTION view_external_fact(p_fact_id text, p_fact text, p_language text, p_source text)
RETURNS TABLE (fact_id text, fact text, language text, source text, views bigint)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
    IF NOT EXISTS (SELECT 1 FROM facts AS f WHERE f.fact_id = p_fact_id) THEN
        PERFORM pg_advisory_xact_lock(1717658484);
        IF NOT EXISTS (SELECT 1 FROM facts AS f WHERE f.fact_id = p_fact_id) THEN
            INSERT INTO fact_counts AS c (language, n) VALUES (p_language, 1)
                ON CONFLICT (language) DO UPDATE SET n = c.n + 1;
            INSERT INTO facts AS f (fact_id, fact, language, source, seq)
                VALUES (p_fact_id, p_fact, p_language, p_source,
                        (SELECT c.n FROM fact_counts AS c WHERE c.language = p_language));
        END IF;
    END IF;
    UPDATE view_shards AS v SET views = v.views + 1 WHERE v.fact_id = p_fact_id AND v.shard = 0;
    RETURN QUERY SELECT f.fact_id, f.fact, f.language, f.source, t.views
        FROM facts AS f JOIN fact_views AS t USING (fact_id) WHERE f.fact_id = p_fact_id;
END
$$;
