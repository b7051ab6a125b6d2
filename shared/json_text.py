"""JSON text made with a C encoder built once, not once per call.

`json.JSONEncoder.encode` builds a new C encoder (and a closure) on every call before it encodes
anything. For the small flat objects of every request (the response body, the log line) that is
most of the work: an encoder made once and called directly takes about half the instructions.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from json.encoder import c_make_encoder, encode_basestring  # type: ignore[attr-defined]
from typing import Any

# A str as a JSON string, exactly as compact_encoder writes one (non-ASCII kept as is).
string: Callable[[str], str] = encode_basestring


def compact_encoder(default: Callable[[Any], Any] | None = None) -> Callable[[Any], str]:
    """Like json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=default).encode,
    except that a value referring to itself raises RecursionError rather than ValueError."""
    slow = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=default)
    if c_make_encoder is None:  # a Python built without the _json accelerator
        return slow.encode
    # Arguments as JSONEncoder.iterencode passes them; no markers: what we encode is flat.
    fast = c_make_encoder(None, slow.default, encode_basestring, None, ":", ",", False, False, True)

    def encode(value: Any) -> str:
        return "".join(fast(value, 0))

    return encode
