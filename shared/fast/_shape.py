"""Small checks that a library still has the shape a fast path was verified against."""

from __future__ import annotations

import inspect
import platform
import re
from collections.abc import Callable
from importlib import metadata
from typing import Any


def version_of(library: str) -> str:
    if library == "python":
        return platform.python_version()
    try:
        return metadata.version(library)
    except metadata.PackageNotFoundError:
        return "unknown"


def _release(version: str) -> tuple[int, ...]:
    match = re.match(r"\d+(?:\.\d+)*", version)
    return tuple(int(part) for part in match.group(0).split(".")) if match else ()


def within(version: str, pin: tuple[str, str]) -> bool:
    """`version` is at least pin[0] and below pin[1] (release numbers only: 3.1.9rc1 counts as 3.1.9)."""
    release = _release(version)
    return bool(release) and _release(pin[0]) <= release < _release(pin[1])


def missing_attributes(owner: Any, names: tuple[str, ...]) -> str | None:
    absent = [name for name in names if not hasattr(owner, name)]
    if absent:
        return f"{getattr(owner, '__name__', type(owner).__name__)} has no {', '.join(absent)}"
    return None


def parameters_differ(function: Callable[..., Any], expected: tuple[str, ...]) -> str | None:
    found = tuple(inspect.signature(function).parameters)
    if found[: len(expected)] != expected:
        return f"{getattr(function, '__qualname__', function)} takes {found}, not {expected}"
    return None


def first(*differences: str | None) -> str | None:
    return next((difference for difference in differences if difference is not None), None)
