"""`./dev mutants` runs the in-process part of the suite inside mutmut's copy of the tree (mutants/):
a path a test reads that mutmut does not copy fails that test at collection, which stops the run
before its first mutant ("failed to collect stats")."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MUTMUT = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mutmut"]
COPIED_BY_MUTMUT = {"tests", "pyproject.toml"}  # mutmut's own additions to also_copy
# A path below the repository root as the tests name it: its first name after `ROOT /`.
READ_FROM_ROOT = re.compile(r'\bROOT\s*/\s*"([^"/]+)')


def _selected_test_files() -> list[Path]:
    ignored = {
        ROOT / arg.removeprefix("--ignore=")
        for arg in MUTMUT["pytest_add_cli_args_test_selection"]
        if arg.startswith("--ignore=")
    }
    return [
        path
        for path in sorted((ROOT / "tests").rglob("*.py"))
        if not any(path == skip or skip in path.parents for skip in ignored)
    ]


def test_mutmut_copies_every_top_level_path_the_selected_tests_read() -> None:
    copied = {entry.rstrip("/") for entry in MUTMUT["source_paths"] + MUTMUT["also_copy"]} | COPIED_BY_MUTMUT
    files = _selected_test_files()
    assert len(files) > 50  # the selection is the suite less its subprocess files, not nothing
    missing = {
        f"{path.relative_to(ROOT)} reads {top}"
        for path in files
        for top in READ_FROM_ROOT.findall(path.read_text())
        if top not in copied
    }
    assert not missing, f"add to [tool.mutmut] also_copy in pyproject.toml: {sorted(missing)}"
    assert all((ROOT / entry).exists() for entry in MUTMUT["also_copy"]), "also_copy names a path that is gone"
