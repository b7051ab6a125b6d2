"""`./dev mutants` runs the in-process part of the suite inside mutmut's copy of the tree (mutants/):
a path a test reads that mutmut does not copy fails that test there, which stops the run before its
first mutant ("failed to collect stats")."""

from __future__ import annotations

import subprocess
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MUTMUT = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mutmut"]
COPIED_BY_MUTMUT = {"tests", "pyproject.toml"}  # mutmut's own additions to also_copy


def _tracked_top_level() -> set[str]:
    listed = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True, timeout=30)
    return {line.split("/", 1)[0] for line in listed.stdout.splitlines()}


def test_mutmut_copies_every_tracked_top_level_path() -> None:
    copied = {entry.rstrip("/") for entry in MUTMUT["source_paths"] + MUTMUT["also_copy"]} | COPIED_BY_MUTMUT
    tracked = _tracked_top_level()
    assert {"shared", "tests", "deploy", "README.md"} <= tracked  # read from git, not nothing
    assert not tracked - copied, f"add to [tool.mutmut] also_copy in pyproject.toml: {sorted(tracked - copied)}"
    assert not copied - tracked, f"[tool.mutmut] names what git does not track: {sorted(copied - tracked)}"
