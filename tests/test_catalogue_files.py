"""Reading import files: the formats, the defaults a row may leave out, and errors that point at
the line. Pure file parsing: no servers needed."""

from __future__ import annotations

import gzip
import locale
from pathlib import Path

import pytest

from shared.catalogue import FactRecord, bundled_facts, read_facts


def test_a_csv_row_takes_fact_or_text_and_defaults_language_and_source(tmp_path: Path) -> None:
    path = tmp_path / "mine.csv"
    path.write_text("fact,text,language,source\nCats purr.,,DE , wiki \n,Dogs bark.,,\n", encoding="utf-8")
    assert list(read_facts(path, language="en")) == [
        FactRecord(fact="Cats purr.", language="de", source="wiki"),
        FactRecord(fact="Dogs bark.", language="en", source="mine"),  # source: the file name's first part
    ]


def test_a_given_source_names_every_row_without_one(tmp_path: Path) -> None:
    path = tmp_path / "mine.v2.jsonl"
    path.write_text('{"fact": "A"}\n', encoding="utf-8")
    assert list(read_facts(path)) == [FactRecord(fact="A", language="en", source="mine")]
    assert list(read_facts(path, source="curated")) == [FactRecord(fact="A", language="en", source="curated")]


@pytest.mark.parametrize("name", ["f.jsonl", "f.ndjson", "f.json", "f.jsonl.gz", "f.csv.gz"])
def test_json_lines_and_csv_are_read_plain_or_gzipped(tmp_path: Path, name: str) -> None:
    text = "fact\nÜber 猫\n" if ".csv" in name else '{"fact": "Über 猫"}\n\n'
    path = tmp_path / name
    if name.endswith(".gz"):
        path.write_bytes(gzip.compress(text.encode("utf-8")))
    else:
        path.write_bytes(text.encode("utf-8"))
    assert [r.fact for r in read_facts(path)] == ["Über 猫"]


def test_a_quoted_csv_field_may_hold_a_line_break(tmp_path: Path) -> None:
    path = tmp_path / "f.csv"
    path.write_bytes(b'fact\r\n"two\r\nlines"\r\n')
    assert [r.fact for r in read_facts(path)] == ["two\r\nlines"]


@pytest.mark.parametrize(
    "name, text, where",
    [
        ("f.jsonl", '{"fact": "A"}\n{"language": "en"}\n', ":2: no 'fact' (or 'text') field"),
        ("f.jsonl", '{"fact": "A"}\n{oops\n', ":2: not JSON (Expecting property name enclosed in double quotes)"),
        ("f.csv", "fact,language\nA,en\n,en\n", ":3: no 'fact' (or 'text') field"),  # line 1 is the header
    ],
)
def test_an_error_names_the_file_and_line(tmp_path: Path, name: str, text: str, where: str) -> None:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError) as refused:
        list(read_facts(path))
    assert str(refused.value) == f"{path}{where}"


def test_another_format_is_refused_by_name(tmp_path: Path) -> None:
    path = tmp_path / "facts.txt"
    path.write_text("A\n", encoding="utf-8")
    with pytest.raises(ValueError) as refused:
        list(read_facts(path))
    assert str(refused.value) == f"{path}: expected a .jsonl or .csv file (optionally gzipped)"


def test_the_bundled_corpus_is_read_whole() -> None:
    facts = list(bundled_facts())
    assert len(facts) > 100 and {f.language for f in facts} >= {"en", "de"}


@pytest.mark.parametrize("name", ["f.jsonl", "f.csv.gz"])
def test_a_file_is_read_as_utf8_whatever_the_locale(tmp_path: Path, name: str) -> None:
    text = "fact\nÜber 猫\n" if ".csv" in name else '{"fact": "Über 猫"}\n'
    path = tmp_path / name
    data = text.encode("utf-8")
    path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    previous = locale.setlocale(locale.LC_CTYPE)
    locale.setlocale(locale.LC_CTYPE, "C")  # a locale whose encoding is not UTF-8 (ASCII)
    try:
        facts = [r.fact for r in read_facts(path)]
    finally:
        locale.setlocale(locale.LC_CTYPE, previous)
    assert facts == ["Über 猫"]
