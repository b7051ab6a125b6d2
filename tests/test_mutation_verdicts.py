"""docs/mutation-verdicts.csv, the mutation verdicts as data, and ci/mutation_verdicts.py, which
ci/judge_mutants.py writes it with: no server needed."""

from __future__ import annotations

import ast
import functools
import subprocess
import sys
from pathlib import Path

from .support.scripts import load_script

ROOT = Path(__file__).resolve().parents[1]


verdicts = load_script("ci/mutation_verdicts.py")


def test_verdicts_survive_a_write_and_read_sorted_in_mutmuts_numbering(tmp_path: Path) -> None:
    rows = {
        "shared.web.x_serve__mutmut_10": {"verdict": "killed", "by": "tests/test_web_contract.py::test_a", "note": ""},
        "shared.web.x_serve__mutmut_9": {"verdict": "equivalent", "by": "", "note": 'a "quoted", two-part\nnote'},
        "shared.cache.x_get__mutmut_2": {"verdict": "mypy", "by": "", "note": ""},
    }
    path = tmp_path / "verdicts.csv"
    verdicts.write(rows, path)
    assert verdicts.read(path) == rows
    names = [line.split(",")[0] for line in path.read_text().splitlines()[1:] if line.startswith("shared.")]
    assert names == ["shared.cache.x_get__mutmut_2", "shared.web.x_serve__mutmut_9", "shared.web.x_serve__mutmut_10"]


def test_the_summary_counts_per_module_and_fails_while_a_survivor_is_open(tmp_path: Path) -> None:
    path = tmp_path / "verdicts.csv"
    rows = {
        "shared.web.x_serve__mutmut_1": {"verdict": "killed", "by": "tests/test_web_contract.py", "note": ""},
        "shared.web.x_serve__mutmut_2": {"verdict": "killed", "by": "tests/test_web_contract.py", "note": ""},
        "shared.cache.x_get__mutmut_3": {"verdict": "survived", "by": "", "note": ""},
        "shared.fast.direct_line.x_f__mutmut_1": {"verdict": "mypy", "by": "", "note": ""},
        "devharness.livelog.x_f__mutmut_1": {"verdict": "killed", "by": "tests/test_dashboard_server.py", "note": ""},
    }
    verdicts.write(rows, path)
    command = [sys.executable, str(ROOT / "ci" / "mutation_verdicts.py"), str(path)]
    shown = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert shown.returncode == 1
    counts = {line.split(None, 1)[0]: line.split(None, 1)[1] for line in shown.stdout.splitlines()[:4]}
    # Each module by its dotted name; shared's without the package, devharness' with it.
    assert counts == {
        "cache": "1 survived",
        "devharness.livelog": "1 killed",
        "fast.direct_line": "1 mypy",
        "web": "2 killed",
    }
    assert "open: 1\n  shared.cache.x_get__mutmut_3: survived" in shown.stdout
    rows["shared.cache.x_get__mutmut_3"] = {"verdict": "equivalent", "by": "", "note": "why"}
    verdicts.write(rows, path)
    assert subprocess.run(command, capture_output=True, text=True, timeout=60).returncode == 0


@functools.cache
def _module_tree(module: Path) -> ast.Module:
    return ast.parse(module.read_text())


def _function_exists(mutant: str) -> bool:
    """Whether mutmut's name of a mutant (shared.fast.one_trip.xǁOneTripStatementǁrun__mutmut_5,
    shared.cache.x_get__mutmut_3) names a function or method that the module still defines."""
    *package, mangled = mutant.split(".")
    module = ROOT.joinpath(*package).with_suffix(".py")
    if not module.exists():  # a package's own functions (shared.fast.x_uses__mutmut_1)
        module = ROOT.joinpath(*package, "__init__.py")
    if not module.exists():
        return False
    function = mangled.rsplit("__mutmut_", 1)[0]
    owner, name = function[2:].split("ǁ") if function.startswith("xǁ") else (None, function[2:])
    tree = _module_tree(module)
    scopes = [node for node in tree.body if isinstance(node, ast.ClassDef) and node.name == owner] if owner else [tree]
    return any(isinstance(node, ast.FunctionDef) and node.name == name for scope in scopes for node in scope.body)


def test_the_recorded_verdicts_are_settled_and_name_what_exists() -> None:
    recorded = verdicts.read()
    assert len(recorded) > 250  # the survivors settled so far, converted from the old prose
    for name, row in recorded.items():
        assert _function_exists(name), f"{name}: its function is gone (drop the row; git keeps it)"
        assert row["verdict"] in verdicts.SETTLED, name
        if row["verdict"] == "equivalent":
            assert row["note"], f"{name}: an equivalent mutant says why"
        if row["verdict"] == "killed" and row["by"]:
            assert (ROOT / row["by"].split("::")[0]).exists(), f"{name}: {row['by']} is gone"
