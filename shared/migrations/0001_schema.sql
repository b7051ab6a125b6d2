-- Facts, numbered densely per language so that a uniform random pick is one index lookup.
CREATE TABLE facts (
    fact_id    text PRIMARY KEY,
    fact       text NOT NULL,
    language   text NOT NULL,
    source     text NOT NULL DEFAULT '',
    views      bigint NOT NULL DEFAULT 0 CHECK (views >= 0),
    seq        integer NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (language, seq)
);

-- How many facts each language has: the upper bound of `seq`.
CREATE TABLE fact_counts (
    language text PRIMARY KEY,
    n        integer NOT NULL CHECK (n >= 0)
);

-- The fact chosen for each UTC day and language: Postgres is the source of truth, Redis a cache.
CREATE TABLE daily_facts (
    day       date NOT NULL,
    language  text NOT NULL,
    fact_id   text NOT NULL REFERENCES facts (fact_id),
    chosen_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (day, language)
);
