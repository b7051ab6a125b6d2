"""Compact JSON text, as the response bodies and log lines write it."""

from __future__ import annotations

import json
from collections.abc import Callable
from json.encoder import encode_basestring
from typing import Any

# A str as a JSON string, exactly as compact_encoder writes one (non-ASCII kept as is).
string: Callable[[str], str] = encode_basestring


def compact_encoder(default: Callable[[Any], Any] | None = None) -> Callable[[Any], str]:
    """json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=default), its encoder made once."""
    return json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=default).encode
