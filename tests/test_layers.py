"""Dependencies point down: no folder imports one above it or beside it.

The deployed code (functions/, shared/) imports no tool; the dev kit (devkit/: the servers, the
scratch Postgres, the upload copy, Cloud Run on loopback) and the harness (devharness/) serve the
tests and the benchmark, which import neither each other nor anything of theirs. What both need
lives in devkit/. Read from the source with ast, so an import inside a function counts too.
"""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# folder -> the top-level packages of this project it must never import
FORBIDDEN = {
    "functions": {"devkit", "devharness", "tests", "bench"},
    "shared": {"devkit", "devharness", "tests", "bench"},
    "devkit": {"devharness", "tests", "bench"},
    "devharness": {"tests", "bench"},
    "tests": {"bench"},
    "bench": {"tests"},
}


def imported_packages(source: str, module: str) -> set[str]:
    """The top-level packages `source` imports (`module` is its dotted name, for relative imports)."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from the module's own package, `level` steps up
                found.add(module.split(".")[0])
            elif node.module:
                found.add(node.module.split(".")[0])
    return found


def wrong_imports(folder: str, root: Path = ROOT) -> list[str]:
    """'path: package' for each import in `folder` of a package it must not import."""
    wrong = []
    for path in sorted((root / folder).rglob("*.py")):
        relative = path.relative_to(root)
        module = ".".join(relative.with_suffix("").parts)
        for package in sorted(imported_packages(path.read_text(encoding="utf-8"), module) & FORBIDDEN[folder]):
            wrong.append(f"{relative}: {package}")
    return wrong


@pytest.mark.parametrize("folder", sorted(FORBIDDEN))
def test_a_folder_imports_nothing_above_or_beside_it(folder: str) -> None:
    assert (ROOT / folder).is_dir()
    assert wrong_imports(folder) == []


def test_the_check_sees_every_form_of_import(tmp_path: Path) -> None:
    # A planted import of each form, in a function too, must show; a look-alike name must not.
    planted = tmp_path / "tests" / "support" / "planted.py"
    planted.parent.mkdir(parents=True)
    planted.write_text(
        "import bench.run\nfrom bench import scaleout\nimport benchmark\n\n"
        "def late():\n    from bench.cpu import snapshot\n"
    )
    assert wrong_imports("tests", tmp_path) == ["tests/support/planted.py: bench"]
    planted.write_text("from .. import scratch\nimport benchmark\n")  # relative: its own package
    assert wrong_imports("tests", tmp_path) == []


def test_only_the_packages_are_installed() -> None:
    # tests/ and bench/ run from the checkout; installed, they could be imported from anywhere.
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    assert sorted(packages) == ["devharness", "devkit", "shared"]
