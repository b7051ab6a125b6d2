"""Dependencies point down: no folder imports one above it or beside it.

The deployed code (functions/, shared/) imports no tool; the dev kit (devkit/servers: the backing
servers; devkit/cloudrun: Cloud Run on loopback, which may use the servers but not the other way
round) and the harness (devharness/) serve the
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


def imported_modules(source: str) -> set[str]:
    """The dotted names of the absolute imports in `source` (devkit uses no relative imports)."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            assert not node.level, "devkit imports absolutely: one style"
            found.add(node.module)
    return found


def test_devkit_servers_know_nothing_of_cloud_run() -> None:
    # Two rooms by job: the backing servers (and their process plumbing) stand alone; Cloud Run on
    # loopback (devkit.cloudrun) builds on them, never the other way round.
    for path in sorted((ROOT / "devkit").rglob("*.py")):
        modules = imported_modules(path.read_text(encoding="utf-8"))
        if path.parent.name == "servers":
            assert not {m for m in modules if m.startswith("devkit.cloudrun")}, path


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
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]["include"]
    assert sorted(patterns) == ["devharness*", "devkit*", "shared*"]
