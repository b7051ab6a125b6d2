"""The fact catalogue: stable ids, the bundled corpus and imports from JSON-lines or CSV files."""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pg8000.native

from .postgres import transaction

CORPUS_DIR = Path(__file__).resolve().parent / "corpus"
_BATCH = 5000
# Serialises catalogue writers across instances: `seq` must stay dense per language.
CATALOGUE_LOCK_KEY = 0x66616374  # "fact" = 1717658484, also taken in migrations/0002_view_external_fact.sql


@dataclass(frozen=True)
class FactRecord:
    fact: str
    language: str
    source: str

    @property
    def fact_id(self) -> str:
        return fact_id(self.fact)


def normalise(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", text).split()).casefold()


def fact_id(text: str) -> str:
    """A short id that is the same on every machine: a digest of the normalised text."""
    return hashlib.sha256(normalise(text).encode("utf-8")).hexdigest()[:16]


def _record(row: dict[str, object], default_language: str, default_source: str, where: str) -> FactRecord:
    fact = str(row.get("fact") or row.get("text") or "").strip()
    if not fact:
        raise ValueError(f"{where}: no 'fact' (or 'text') field")
    language = str(row.get("language") or default_language).strip().lower()
    return FactRecord(fact=fact, language=language, source=str(row.get("source") or default_source).strip())


def read_facts(path: Path, language: str = "en", source: str | None = None) -> Iterator[FactRecord]:
    """Read facts from .jsonl / .csv (optionally .gz): fields fact (or text), language, source."""
    default_source = source or path.name.split(".")[0]
    opener = gzip.open if path.suffix == ".gz" else open
    kind = Path(path.stem).suffix if path.suffix == ".gz" else path.suffix
    with opener(path, "rt", encoding="utf-8", newline="") as handle:
        stream: io.TextIOBase = handle
        if kind == ".csv":
            for number, row in enumerate(csv.DictReader(stream), start=2):
                yield _record(row, language, default_source, f"{path}:{number}")
        elif kind in (".jsonl", ".ndjson", ".json"):
            for number, line in enumerate(stream, start=1):
                if line.strip():
                    try:
                        row = json.loads(line)
                    except json.JSONDecodeError as exc:
                        raise ValueError(f"{path}:{number}: not JSON ({exc.msg})") from None
                    yield _record(row, language, default_source, f"{path}:{number}")
        else:
            raise ValueError(f"{path}: expected a .jsonl or .csv file (optionally gzipped)")


def bundled_facts() -> Iterator[FactRecord]:
    for path in sorted(CORPUS_DIR.glob("facts.*.jsonl*")):
        yield from read_facts(path)


_INSERT_NEW = """
WITH incoming AS (
    SELECT DISTINCT ON (fact_id) fact_id, fact, language, source
    FROM unnest(CAST(:ids AS text[]), CAST(:facts AS text[]), CAST(:languages AS text[]), CAST(:sources AS text[]))
         AS t (fact_id, fact, language, source)
    ORDER BY fact_id
), fresh AS (
    SELECT i.* FROM incoming i WHERE NOT EXISTS (SELECT 1 FROM facts f WHERE f.fact_id = i.fact_id)
)
INSERT INTO facts (fact_id, fact, language, source, seq)
SELECT fact_id, fact, language, source,
       coalesce((SELECT n FROM fact_counts c WHERE c.language = fresh.language), 0)
       + row_number() OVER (PARTITION BY language ORDER BY fact_id)
FROM fresh
RETURNING language
"""

_UPDATE_COUNTS = """
INSERT INTO fact_counts (language, n)
SELECT language, max(seq) FROM facts WHERE language = ANY(CAST(:languages AS text[])) GROUP BY language
ON CONFLICT (language) DO UPDATE SET n = EXCLUDED.n
"""


def _batches(records: Iterable[FactRecord]) -> Iterator[list[FactRecord]]:
    batch: list[FactRecord] = []
    for record in records:
        batch.append(record)
        if len(batch) >= _BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def import_facts(con: pg8000.native.Connection, records: Iterable[FactRecord]) -> int:
    """Add the facts not yet known (by id); returns how many were new. Safe to run concurrently."""
    added = 0
    with transaction(con):
        con.run("SELECT pg_advisory_xact_lock(:key)", key=CATALOGUE_LOCK_KEY)
        for batch in _batches(records):
            rows = con.run(
                _INSERT_NEW,
                ids=[r.fact_id for r in batch],
                facts=[r.fact for r in batch],
                languages=[r.language for r in batch],
                sources=[r.source for r in batch],
            )
            touched = sorted({row[0] for row in rows})
            if touched:
                con.run(_UPDATE_COUNTS, languages=touched)
            added += len(rows)
    return added
