"""shared/json_text.py and Fact.json_text: the same JSON text as the json module writes, for less."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import pytest

from shared.json_text import compact_encoder, string
from shared.store import Fact

AWKWARD = 'quote " backslash \\ newline \n tab \t nul \x00 bell \x07 ünï 猫 😀 \u2028 \ud800'


def _json(value: Any, default: Any = None) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=default)


@pytest.mark.parametrize(
    "value",
    [
        {"text": AWKWARD, "n": -7, "big": 2**70, "x": 1.25, "tiny": 1e-300, "none": None, "yes": True, "no": False},
        {"nested": {"list": [1, "two", [3.5, None]], "empty": {}}, "": ""},
        {"nan": float("nan"), "inf": float("inf"), "-inf": float("-inf")},  # written as json writes them
        {1: "int key", 2.5: "float key", False: "bool key", None: "null key"},
        [AWKWARD, 0, []],
        AWKWARD,
        12,
        None,
    ],
)
def test_the_compact_encoder_writes_what_json_dumps_writes(value):
    assert compact_encoder()(value) == _json(value)
    assert compact_encoder(default=str)(value) == _json(value, default=str)


def test_a_key_json_cannot_write_is_a_type_error_as_with_json():
    with pytest.raises(TypeError):
        json.dumps({(1, 2): "tuple key"})
    with pytest.raises(TypeError):
        compact_encoder()({(1, 2): "tuple key"})


def test_a_value_json_cannot_write_goes_to_default_or_is_a_type_error_as_with_json():
    assert compact_encoder(default=str)({"day": date(2024, 2, 29)}) == '{"day":"2024-02-29"}'
    with pytest.raises(TypeError):
        compact_encoder()({"day": date(2024, 2, 29)})


def test_a_string_is_written_as_the_encoder_writes_it():
    assert string(AWKWARD) == compact_encoder()(AWKWARD)


@pytest.mark.parametrize(
    "fact",
    [
        Fact("0a1b2c3d4e5f6a7b", AWKWARD, "de", 'wikipedia "quoted"', 12_345_678_901),
        Fact("", "", "en", "", 0),
    ],
)
def test_a_fact_as_json_text_is_its_as_json_written_compactly(fact):
    assert fact.json_text() == _json(fact.as_json())
    assert fact.json_text(date="2024-02-29") == _json({**fact.as_json(), "date": "2024-02-29"})
    assert json.loads(fact.json_text())["views"] == fact.views
