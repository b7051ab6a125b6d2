"""Compact JSON text, as the response bodies and log lines write it."""

from __future__ import annotations

import json
from collections.abc import Callable
from json.encoder import encode_basestring
from typing import Any

from . import fast

# A str as a JSON string, exactly as compact_encoder writes one (non-ASCII kept as is).
string: Callable[[str], str] = encode_basestring


def compact_encoder(default: Callable[[Any], Any] | None = None) -> Callable[[Any], str]:
    """json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=default).encode, or the
    same from json's C encoder built once (shared/fast; a value referring to itself then raises
    RecursionError rather than ValueError)."""
    return (
        fast.compact_encoder(default)
        or json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=default).encode
    )
