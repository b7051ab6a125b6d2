"""The mutation verdicts of shared/ and devharness/ as data: docs/mutation-verdicts.csv, one row per mutant.

    .venv/bin/python ci/mutation_verdicts.py [FILE]      # counts per module and verdict, then the open rows

Columns: `mutant` (mutmut's name, `shared.MODULE.FUNCTION__mutmut_N` or `devharness.MODULE...`),
`verdict`, `by` (the test that fails on it), `note` (why a survivor is equivalent, or what the mutant
changes). Verdicts: `mypy` (rejected by the type check), `killed`, `timeout` (a hang, counted as killed), `equivalent`
(no caller can tell; the note says why), `survived` (open: write a test, or show it equivalent and
edit the row), or `error ...` (the run itself broke; judge it again). ci/judge_mutants.py writes the
first four and `survived`; a person settles each survivor by editing its row.
"""

from __future__ import annotations

import collections
import csv
import sys
from pathlib import Path

VERDICTS_FILE = Path(__file__).resolve().parents[1] / "docs" / "mutation-verdicts.csv"
COLUMNS = ("mutant", "verdict", "by", "note")
SETTLED = {"mypy", "killed", "timeout", "equivalent"}


def _order(name: str) -> tuple[str, int]:
    """Mutants of one function in mutmut's numbering (2 before 10), functions by name."""
    stem, _, number = name.rpartition("__mutmut_")
    return (stem, int(number)) if number.isdigit() else (name, 0)


def read(path: Path = VERDICTS_FILE) -> dict[str, dict[str, str]]:
    """Verdicts by mutant name; an absent file is no verdict yet."""
    if not path.exists():
        return {}
    with path.open(newline="", encoding="utf-8") as file:
        return {row["mutant"]: {key: row.get(key) or "" for key in COLUMNS[1:]} for row in csv.DictReader(file)}


def write(verdicts: dict[str, dict[str, str]], path: Path = VERDICTS_FILE) -> None:
    """All rows, sorted, so that a new verdict is a one-line change in git."""
    with path.open("w", newline="", encoding="utf-8") as file:
        out = csv.writer(file, lineterminator="\n")
        out.writerow(COLUMNS)
        for name in sorted(verdicts, key=_order):
            out.writerow([name, *(verdicts[name].get(key, "") for key in COLUMNS[1:])])


def summary(verdicts: dict[str, dict[str, str]]) -> str:
    """A line per module with its count per verdict, then every open row."""
    by_module: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for name, row in verdicts.items():
        # The module's dotted name, shared's without its package (cache, fast.direct_line, devharness.app).
        module = name.rsplit(".", 1)[0].removeprefix("shared.")
        by_module[module][row["verdict"]] += 1
    lines = [
        f"{module:<24} " + ", ".join(f"{n} {v}" for v, n in sorted(c.items()))
        for module, c in sorted(by_module.items())
    ]
    open_rows = [name for name, row in verdicts.items() if row["verdict"] not in SETTLED]
    lines.append(f"open: {len(open_rows)}")
    lines += [
        f"  {name}: {verdicts[name]['verdict']} {verdicts[name]['by']}".rstrip()
        for name in sorted(open_rows, key=_order)
    ]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    verdicts = read(Path(argv[0]) if argv else VERDICTS_FILE)
    print(summary(verdicts))
    return 1 if any(row["verdict"] not in SETTLED for row in verdicts.values()) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
