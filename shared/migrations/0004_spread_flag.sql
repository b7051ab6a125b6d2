-- A random view need not sum the shards of a fact that has only shard 0, which is every fact but the
-- days' facts: shard 0 says whether its fact has other shards, and the random view sums them only then.
--
-- `spread` is set (never cleared) whenever a shard other than 0 is added, by the trigger below, so a
-- fact with other shards always has it; a fact whose other shards were deleted still sums nothing.

ALTER TABLE view_shards ADD COLUMN spread boolean NOT NULL DEFAULT false;

UPDATE view_shards z SET spread = true
WHERE z.shard = 0 AND EXISTS (SELECT 1 FROM view_shards o WHERE o.fact_id = z.fact_id AND o.shard > 0);

CREATE FUNCTION mark_view_shards_spread() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE view_shards z SET spread = true
    WHERE z.shard = 0 AND NOT z.spread AND z.fact_id IN (SELECT a.fact_id FROM added a WHERE a.shard > 0);
    RETURN NULL;
END
$$;

CREATE TRIGGER view_shards_mark_spread AFTER INSERT ON view_shards
REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION mark_view_shards_spread();
