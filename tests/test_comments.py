"""Comments say why the code is as it is: no measurement, no history.

A figure ("~8 µs", "20 ms of CPU") belongs in the benchmark's output or docs/design.md, where the
next run can correct it; a story ("issue 10", a commit hash) belongs in the CHANGELOG. Held for
shared/, devkit/ and devharness/, in comments and in docstrings alike (a docstring is read as the
code's comment, and goes stale the same way). Read with tokenize and ast, so a "#" or "ms" inside
a string the code uses is not taken for a comment.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ("shared", "devkit", "devharness")

FORBIDDEN = {
    "a duration in µs, ns or ms": re.compile(r"µs|\d\s*(?:us|ns|ms)\b"),
    "an approximate figure": re.compile(r"~\s*\d"),
    "a count in thousands": re.compile(r"\d\s?k\b"),
    "a measured duration": re.compile(r"\btook\s+\d", re.IGNORECASE),
    "an issue number": re.compile(r"\bissues?\s*#?\d+|(?<![\w&])#\d+\b", re.IGNORECASE),
    "a commit hash": re.compile(r"\b(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{7,40}\b"),
}

# Units that are the code's own settings, not measurements: (file, the words that state them).
ALLOWED = {
    ("devkit/servers/waiting.py", "from 20 ms to 200 ms"),  # the back-off it applies
}


def commentary(source: str) -> Iterator[tuple[int, str]]:
    """(line, text) of each comment and each line of each docstring in `source`."""
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            yield token.start[0], token.string
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            docstring = ast.get_docstring(node, clean=False)
            if docstring is not None:
                first = node.body[0].lineno
                yield from ((first + offset, line) for offset, line in enumerate(docstring.splitlines()))


def findings(source: str, path: str, allowed: set[tuple[str, str]]) -> list[str]:
    found = []
    for line, text in commentary(source):
        for words in (words for file, words in allowed if file == path):
            text = text.replace(words, "")
        found += [
            f"{path}:{line}: {what}: {text.strip()}" for what, found_by in FORBIDDEN.items() if found_by.search(text)
        ]
    return found


def sources() -> list[Path]:
    return sorted(path for folder in FOLDERS for path in (ROOT / folder).rglob("*.py"))


def test_no_measurement_or_history_in_a_comment() -> None:
    found = [
        finding
        for path in sources()
        for finding in findings(path.read_text(encoding="utf-8"), path.relative_to(ROOT).as_posix(), ALLOWED)
    ]
    assert not found, "a figure belongs in docs/design.md or bench's output, a story in the CHANGELOG:\n" + "\n".join(
        found
    )


def test_each_allowed_unit_is_still_in_its_file() -> None:
    stale = [(file, words) for file, words in ALLOWED if words not in (ROOT / file).read_text(encoding="utf-8")]
    assert not stale, f"allowed units no longer in the code (drop them from ALLOWED): {stale}"


@pytest.mark.parametrize(
    "source",
    [
        "x = 1  # Werkzeug's parse costs ~8 µs\n",
        "x = 1  # about 20 ms of CPU a connection\n",
        "x = 1  # 38k fewer instructions per request\n",
        "x = 1  # redis-py takes ~2.6 s to give up\n",
        "x = 1  # one check took 13 s or more\n",
        "x = 1  # the figures of issue 10's table\n",
        "x = 1  # see #42\n",
        "x = 1  # broken by 69493b7, mended here\n",
        'def f():\n    """Read from the environ: 5us a request."""\n',
        '"""Module docstring: a story of issue 23."""\n',
    ],
)
def test_a_figure_or_a_story_is_found(source: str) -> None:
    assert findings(source, "planted.py", set())


@pytest.mark.parametrize(
    "source",
    [
        "x = '~8 µs issue 10'  # a string the code uses is not a comment\n",
        "x = 1  # the function timeout (60 s), a setting\n",
        "latency_ms = 1  # milliseconds in hundredths\n",
        "x = 1  # backing off from 20 ms to 200 ms\n",
        "x = 1  # once per process, decaf: no hash\n",
    ],
)
def test_why_and_settings_pass(source: str) -> None:
    assert not findings(source, "planted.py", {("planted.py", "from 20 ms to 200 ms")})
