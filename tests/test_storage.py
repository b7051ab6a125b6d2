"""Schema, catalogue and selection, against the worker's real Postgres."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import pytest

from shared import catalogue, schema
from shared.config import parse_database_url
from shared.postgres import connect
from shared.store import RANDOM_VIEW

ROOT = Path(__file__).resolve().parents[1]


def test_bundled_catalogue_is_seeded_densely(db):
    counts = dict(db.run("SELECT language, count(*) FROM facts GROUP BY language"))
    assert counts["en"] >= 5000 and counts["de"] >= 20
    for language, n, top in db.run(
        "SELECT c.language, c.n, max(f.seq) FROM fact_counts c JOIN facts f USING (language) GROUP BY 1, 2"
    ):
        assert n == top == counts[language], language


def test_fact_ids_are_stable_digests_of_the_normalised_text(db):
    text = "Ein Oktopus hat drei Herzen und blaues Blut."
    # Stored ids outlive every release: the digest is written out, not computed as the code does.
    expected = "d77541393da4ee4d"
    assert catalogue.fact_id(text) == expected
    # Spacing, case and compatibility forms (full-width letters, a no-break space) do not count.
    assert catalogue.fact_id("  \uff45\uff49\uff4e  OKTOPUS hat drei\u00a0Herzen und blaues Blut. ") == expected
    assert db.run("SELECT fact FROM facts WHERE fact_id = :id", id=expected) == [[text]]


def test_random_pick_is_an_index_lookup_not_a_sort(db):
    plan = "\n".join(row[0] for row in db.run("EXPLAIN " + RANDOM_VIEW.replace(":language", "'en'")))
    assert "Index Scan" in plan
    assert "Sort" not in plan and "Seq Scan on facts" not in plan


def test_random_pick_is_uniform(random_client, db):
    db.run("UPDATE fact_counts SET n = 5 WHERE language = 'en'")
    picks = Counter(random_client.get("/").get_json()["fact_id"] for _ in range(500))
    assert len(picks) == 5
    assert all(60 <= count <= 140 for count in picks.values()), picks  # expected 100 each, sd ~9


def test_concurrent_cold_starts_migrate_and_seed_once(scratch_database):
    settings = parse_database_url(scratch_database)
    start = threading.Barrier(4)
    results, errors = [], []

    def cold_start():
        con = connect(settings, 10.0, statement_timeout_ms=None)
        try:
            start.wait(timeout=30)
            results.append(schema.migrate(con))
        except Exception as exc:  # collected and asserted below
            errors.append(exc)
        finally:
            con.close()

    threads = [threading.Thread(target=cold_start) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors
    assert sorted(len(r) for r in results) == [0, 0, 0, len(schema.migrations())]
    with connect(settings, 5.0, statement_timeout_ms=None) as con:
        assert con.run("SELECT count(*) FROM schema_migrations")[0][0] == len(schema.migrations())
        total = con.run("SELECT count(*) FROM facts")[0][0]
        assert total == len({r.fact_id for r in catalogue.bundled_facts()})
        assert schema.migrate(con) == []  # idempotent


def _harness(servers, *args):
    env = {**servers.environ(), "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, str(ROOT / "harness.py"), *args, "--servers", "external"],
                          capture_output=True, text=True, timeout=120, env=env, cwd=ROOT)  # fmt: skip


@pytest.mark.slow  # the harness's command line in a process of its own (about 2 s)
def test_import_command_adds_new_facts_once(servers, db, tmp_path):
    jsonl = tmp_path / "more.jsonl"
    jsonl.write_text(
        "\n".join(json.dumps({"fact": f"Imported fact number {i}.", "source": "test"}) for i in range(3)) + "\n"
    )
    csv_file = tmp_path / "more.csv"
    csv_file.write_text(
        'fact,language,source\n"Ein importierter Fakt, mit Komma.",de,test\nImported fact number 0.,en,test\n'
    )
    before = dict(db.run("SELECT language, n FROM fact_counts"))

    first = _harness(servers, "import", str(jsonl))
    assert first.returncode == 0, first.stderr
    assert "imported 3 new facts" in first.stdout
    second = _harness(servers, "import", str(csv_file))
    assert "imported 1 new facts" in second.stdout  # the English row is already known
    again = _harness(servers, "import", str(jsonl))
    assert "imported 0 new facts" in again.stdout

    after = dict(db.run("SELECT language, n FROM fact_counts"))
    assert after == {**before, "en": before["en"] + 3, "de": before["de"] + 1}
    assert db.run("SELECT max(seq), count(*) FROM facts WHERE language = 'en'")[0] == [after["en"], after["en"]]


def test_import_of_a_bad_file_is_a_clear_error(servers, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"fact": "fine"}\nnot json\n')
    result = _harness(servers, "import", str(bad))
    assert result.returncode != 0
    assert "bad.jsonl:2" in result.stderr and "Traceback" not in result.stderr
