-- Count a view of a fact that came from outside the catalogue (an upstream API): the existing
-- row's count plus one, or a new row numbered after its language's last fact. New rows are
-- numbered under the catalogue lock (the key catalogue.py's imports take), so `seq` stays dense.
CREATE FUNCTION view_external_fact(p_fact_id text, p_fact text, p_language text, p_source text)
RETURNS TABLE (fact_id text, fact text, language text, source text, views bigint)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY UPDATE facts AS f SET views = f.views + 1 WHERE f.fact_id = p_fact_id
        RETURNING f.fact_id, f.fact, f.language, f.source, f.views;
    IF FOUND THEN
        RETURN;
    END IF;
    PERFORM pg_advisory_xact_lock(1717658484);
    RETURN QUERY UPDATE facts AS f SET views = f.views + 1 WHERE f.fact_id = p_fact_id
        RETURNING f.fact_id, f.fact, f.language, f.source, f.views;
    IF FOUND THEN
        RETURN;
    END IF;
    INSERT INTO fact_counts AS c (language, n) VALUES (p_language, 1)
        ON CONFLICT (language) DO UPDATE SET n = c.n + 1;
    RETURN QUERY INSERT INTO facts AS f (fact_id, fact, language, source, seq, views)
        VALUES (p_fact_id, p_fact, p_language, p_source,
                (SELECT c.n FROM fact_counts AS c WHERE c.language = p_language), 1)
        RETURNING f.fact_id, f.fact, f.language, f.source, f.views;
END
$$;
