"""A fact's shape is stated once (shared.store.Fact): what is made from it is checked against it
here, and what is written by hand (openapi.json, docs/contract.md) must agree with it."""

from __future__ import annotations

import json
import re
from datetime import date
from pathlib import Path
from typing import Any

from shared.facts import DayChoice
from shared.store import FIELD_TYPES, STORED_FIELDS, Fact, FactStore

ROOT = Path(__file__).resolve().parent.parent
_JSON_TYPES = {str: "string", int: "integer"}


def _schemas() -> dict[str, Any]:
    return json.loads((ROOT / "openapi.json").read_text())["components"]["schemas"]


def _json_type(schemas: dict[str, Any], schema: dict[str, Any]) -> str:
    while "$ref" in schema:
        schema = schemas[schema["$ref"].rsplit("/", 1)[1]]
    return str(schema["type"])


def test_views_is_the_last_field_as_every_statement_returns_it() -> None:
    # The statements return the stored columns, then the count: a new column goes before views.
    assert Fact._fields[-1] == "views" and STORED_FIELDS == Fact._fields[:-1]


def test_the_openapi_schemas_of_a_fact_are_its_fields_with_their_types() -> None:
    schemas = _schemas()
    for name, extra in (("Fact", {}), ("TodayFact", {"date": "string"})):
        schema = schemas[name]
        expected = {**{field: _JSON_TYPES[FIELD_TYPES[field]] for field in Fact._fields}, **extra}
        assert schema["required"] == list(expected), name
        assert {key: _json_type(schemas, value) for key, value in schema["properties"].items()} == expected, name
        assert list(schema["example"]) == list(expected), name


def test_the_contract_names_the_fields_of_a_fact_in_their_order() -> None:
    listed = re.search(r"- random: `\{([^}]*)\}`", (ROOT / "docs" / "contract.md").read_text())
    assert listed is not None, "docs/contract.md no longer lists random's fields as - random: `{...}`"
    assert [name.strip().strip('"') for name in listed.group(1).split(",")] == list(Fact._fields)


def test_a_fact_as_json_has_its_fields_in_order() -> None:
    fact = Fact("0123456789abcdef", "Cats purr.", "en", "wiki", 3)
    assert list(fact.as_json()) == list(Fact._fields)
    assert list(json.loads(fact.json_text(date="2024-02-29"))) == [*Fact._fields, "date"]


def test_the_days_choice_is_the_fact_but_its_views_and_round_trips_through_its_cache_form() -> None:
    fact = Fact("0123456789abcdef", "Cats purr.", "en", "wiki", 3)
    choice = DayChoice.of(fact)
    assert list(choice.as_cached()) == list(STORED_FIELDS)
    assert DayChoice.from_cached(json.loads(json.dumps(choice.as_cached()))) == choice
    assert choice.fact_id == fact.fact_id and choice.with_views(3) == fact
    assert DayChoice.from_cached({**choice.as_cached(), "language": 1}) is None


def test_every_statement_answers_a_whole_fact(servers, db) -> None:
    from shared import instance

    store: FactStore = instance.state().store
    day = date(2024, 2, 29)
    for fact in (store.random("en"), store.random("en", count_view=False), store.of_the_day(day, "de")):
        assert fact is not None and all(isinstance(value, FIELD_TYPES[name]) for name, value in fact._asdict().items())
    external = store.view_external("feedfacefeedface", "A new fact.", "en", "test")
    assert external == Fact("feedfacefeedface", "A new fact.", "en", "test", 1)
