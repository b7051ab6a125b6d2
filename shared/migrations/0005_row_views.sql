-- A fact's own row becomes its first view counter (`facts.row_views`): random views, upstream views
-- and a day's first views count there, so a random view updates one row of one table instead of
-- joining `facts` to `view_shards` (the join was most of what a random view cost Postgres beyond a
-- hand-written one-row update: docs/design.md, "Where the time goes"). A fact's views are its row's
-- count plus its shards'; `fact_views` is still the one place to read them from. The column is not
-- called `views`, so `facts JOIN fact_views` stays unambiguous.
--
-- This step only adds: the previous release keeps serving while it runs and until the new revision
-- takes the traffic (deploy/cloud-functions.sh), and its statements still count in shard 0. So
-- shard 0 stays, with its counts, and `facts.spread` says a fact has counts in any shard: set here
-- for every fact with a counted shard 0 or a day shard, and by the triggers below whenever the
-- previous release counts a first view in shard 0 or anyone adds a day shard. A random view sums the
-- shards only where it is set. Folding shard 0 into the rows is for a later step, once no revision
-- that counts there can serve.

-- Room on each page for the new row versions of updates (HOT updates, no index writes), as the
-- shards have; pages written from now on keep it.
ALTER TABLE facts
    ADD COLUMN row_views bigint NOT NULL DEFAULT 0 CHECK (row_views >= 0),
    ADD COLUMN spread boolean NOT NULL DEFAULT false,
    SET (fillfactor = 50);

UPDATE facts f SET spread = true
WHERE EXISTS (SELECT 1 FROM view_shards z WHERE z.fact_id = f.fact_id AND (z.shard > 0 OR z.views > 0));

CREATE FUNCTION mark_fact_spread() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE facts f SET spread = true WHERE f.fact_id = NEW.fact_id AND NOT f.spread;
    RETURN NULL;
END
$$;

-- A day shard added (the row trigger runs once per shard, and only the first finds the flag unset).
CREATE TRIGGER view_shards_mark_fact_spread AFTER INSERT ON view_shards
FOR EACH ROW WHEN (NEW.shard > 0) EXECUTE FUNCTION mark_fact_spread();

-- A first view counted in shard 0 by the previous release.
CREATE TRIGGER view_shards_mark_fact_spread_zero AFTER UPDATE OF views ON view_shards
FOR EACH ROW WHEN (NEW.shard = 0 AND OLD.views = 0 AND NEW.views > 0) EXECUTE FUNCTION mark_fact_spread();

CREATE OR REPLACE VIEW fact_views AS
SELECT f.fact_id, CAST(f.row_views + coalesce(sum(v.views), 0) AS bigint) AS views
FROM facts f LEFT JOIN view_shards v USING (fact_id) GROUP BY f.fact_id;

-- As in 0003, counting in the fact's row and returning the total over its row and its shards.
CREATE OR REPLACE FUNCTION view_external_fact(p_fact_id text, p_fact text, p_language text, p_source text)
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
    RETURN QUERY UPDATE facts AS f SET row_views = f.row_views + 1 WHERE f.fact_id = p_fact_id
        RETURNING f.fact_id, f.fact, f.language, f.source,
            CAST(f.row_views + (SELECT coalesce(sum(o.views), 0) FROM view_shards AS o WHERE o.fact_id = f.fact_id)
                 AS bigint);
END
$$;
