"""JSON text made with json's C encoder built once, not once per call.

`json.JSONEncoder.encode` builds a new C encoder (and a closure) on every call before it encodes
anything. For the small flat objects of every request (the response body, the log line) that is
most of the work: an encoder made once is called directly.
`json.encoder.c_make_encoder` is not public: shape_difference() checks that it exists and writes
what json.dumps writes. tests/test_json_text.py holds the two equal.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from json import encoder as json_encoder
from typing import Any


def compact_encoder(default: Callable[[Any], Any] | None = None) -> Callable[[Any], str]:
    """Like json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=default).encode,
    except that a value referring to itself raises RecursionError rather than ValueError."""
    slow = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=default)
    # Arguments as JSONEncoder.iterencode passes them; no markers: what we encode is flat.
    fast = json_encoder.c_make_encoder(  # type: ignore[attr-defined]
        None, slow.default, json_encoder.encode_basestring, None, ":", ",", False, False, True
    )

    def encode(value: Any) -> str:
        return "".join(fast(value, 0))

    return encode


_PROBE = {"text": 'quote " ünï \n', "n": [1, 2.5, None, True], "": {}}


def shape_difference() -> str | None:
    """What differs from the json this was verified with (None: nothing we use)."""
    if getattr(json_encoder, "c_make_encoder", None) is None:
        return "json.encoder.c_make_encoder is missing (a Python built without the _json accelerator)"
    expected = json.dumps(_PROBE, ensure_ascii=False, separators=(",", ":"))
    if compact_encoder()(_PROBE) != expected:
        return "json.encoder.c_make_encoder no longer writes what json.dumps writes"
    return None
