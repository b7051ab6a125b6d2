"""Each function of the benchmark reads as one step: none over MOST_LINES lines (a longer one is
several steps in one body, each to be named). Read with ast, so decorators and docstrings count."""

from __future__ import annotations

import ast
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1]
MOST_LINES = 60


def long_functions(source: str, most_lines: int) -> list[tuple[str, int]]:
    """(name, lines) of each function or method in `source` longer than `most_lines`."""
    return [
        (node.name, length)
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and (length := (node.end_lineno or node.lineno) - node.lineno + 1) > most_lines
    ]


def test_no_function_in_bench_is_over_60_lines() -> None:
    found = {
        f"{path.relative_to(BENCH.parent)}:{name}": length
        for path in sorted(BENCH.rglob("*.py"))
        for name, length in long_functions(path.read_text(encoding="utf-8"), MOST_LINES)
    }
    assert not found, f"functions over {MOST_LINES} lines (split them into their steps): {found}"


def test_a_long_function_is_found() -> None:
    body = "".join(f"    x{n} = {n}\n" for n in range(MOST_LINES))
    assert long_functions(f"def long():\n{body}", MOST_LINES) == [("long", MOST_LINES + 1)]
    assert long_functions(f"def fits():\n{body[: body.rindex('    x')]}", MOST_LINES) == []
