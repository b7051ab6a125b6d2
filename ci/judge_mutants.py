"""Judge listed mutmut mutants quickly, where mutmut's own scheduler is too slow (a 2-core machine).

    ./dev mutants MODULE              # once: makes mutants/ (stop it with Ctrl-C when it starts testing)
    .venv/bin/python ci/judge_mutants.py NAMES_FILE [--jobs 2] [--tests "tests/a.py tests/b.py"] [--again]

It does what `mutmut run` does for each mutant, with mutmut's own mutants and switch: a mutant mypy
rejects is killed (as CI's type check would); any other runs the tests of its module (TESTS below, or
--tests) inside mutants/ with MUTANT_UNDER_TEST set, stopping at the first failure. mutmut instead
runs every test that calls the mutated function, which for the pool means nearly the whole in-process
suite per survivor: a minute or more each here.

Code run at import (`handlers._logged`, the `web._Outage()` made at import) is never switched on by
MUTANT_UNDER_TEST, so those mutants are planted in a copy of the source instead (IMPORT_TIME).

A survivor here is a candidate: a test outside the module's files may kill it. Plant it with
`cd mutants && MUTANT_UNDER_TEST=NAME ../.venv/bin/python -m pytest tests/FILE -x -p no:xdist --servers=embedded`.
Verdicts accumulate in docs/mutation-verdicts.csv (ci/mutation_verdicts.py, or --verdicts FILE), one row
per mutant, written after each verdict; names already there are skipped unless --again (a changed function).
"""

from __future__ import annotations

import argparse
import ast
import functools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from threading import Lock

import mutation_verdicts  # ci/, beside this script

ROOT = Path(__file__).resolve().parents[1]
MUTANTS = ROOT / "mutants"
PYTHON = sys.executable
TESTS = {
    "shared.breaker": "tests/test_breaker.py",
    "shared.cache": "tests/test_day_cache.py tests/test_day_values.py",
    "shared.catalogue": "tests/test_catalogue_files.py tests/test_catalogue_import.py",
    "shared.config": "tests/test_config.py tests/test_config_values.py tests/test_postgres_connect.py",
    "shared.facts": "tests/test_facts_domain.py tests/test_view_counting.py",
    "shared.handlers": "tests/test_request_log.py tests/test_request_log_path.py tests/test_contract.py "
    "tests/test_logging.py tests/test_data_access.py tests/test_view_counting.py",
    "shared.instance": "tests/test_instance_state.py tests/test_migrate.py tests/test_faults.py",
    "shared.logs": "tests/test_logging.py tests/test_request_log.py",
    "shared.json_text": "tests/test_json_text.py tests/test_web_contract.py tests/test_logging.py",
    # shared/fast/*: each fast path's oracle tests, then the switch's and the fallback's (a key is a
    # module or a package: the package's own entry judges shared/fast/__init__.py)
    "shared.fast": "tests/test_fast_paths.py tests/test_one_trip.py tests/test_postgres_pool.py "
    "tests/test_web_contract.py tests/test_json_text.py tests/test_logging.py tests/test_request_log_direct.py",
    "shared.fast._shape": "tests/test_fast_paths.py",
    "shared.fast.direct_line": "tests/test_request_log_direct.py tests/test_fast_paths.py tests/test_logging.py",
    "shared.fast.one_trip": "tests/test_one_trip.py tests/test_fast_paths.py tests/test_postgres_pool.py",
    "shared.fast.werkzeug_response": "tests/test_web_contract.py tests/test_fast_paths.py",
    "shared.postgres": "tests/test_postgres_pool.py tests/test_postgres_connect.py tests/test_postgres_errors.py "
    "tests/test_faults.py tests/test_instance_state.py",
    "shared.schema": "tests/test_migrate.py tests/test_instance_state.py tests/test_catalogue_import.py "
    "tests/test_storage.py",
    "shared.store": "tests/test_fact_store.py tests/test_view_counting.py tests/test_json_text.py",
    "shared.upstream": "tests/test_upstream_client.py tests/test_upstream.py",
    "shared.request_line": "tests/test_request_line.py tests/test_web_contract.py tests/test_request_log_direct.py",
    # devharness/: the tests that call it in-process, then those that run it as a command (mutmut's own
    # runner sees only the first kind; a harness process started here inherits MUTANT_UNDER_TEST)
    "devharness": "tests/test_platform_api.py tests/test_harness_own_paths.py tests/test_harness_cli.py "
    "tests/test_dashboard_in_process.py tests/test_harness_parts.py tests/test_harness_commands.py "
    "tests/test_cloud_run_platform.py tests/test_cloud_run_mode_in_process.py tests/test_harness_server.py "
    "tests/test_cloud_run_parts.py "
    "tests/test_dashboard_server.py tests/test_request_line.py tests/test_server_kinds.py tests/test_harness.py",
    "devharness.cloudrun_mode": "tests/test_cloud_run_platform.py tests/test_cloud_run_mode_in_process.py "
    "tests/test_cloud_run_parts.py tests/test_cloud_run_mode.py tests/test_cloud_run_reload.py",
    "shared.web": "tests/test_web_contract.py tests/test_contract.py tests/test_cors_preflight.py tests/test_faults.py "
    "tests/test_request_log.py",
}
IMPORT_TIME = re.compile(r"^shared\.(handlers\.x__logged__|web\.xǁ_Outageǁ__init__)")
SOURCES = ("shared", "devharness")  # the packages mutmut mutates (pyproject.toml's source_paths)
TEST_TIMEOUT_S = 300  # a mutant that hangs is killed, as mutmut counts a timeout


def module_of(name: str) -> str:
    """The dotted module of a mutant (shared.fast.direct_line.x_f__mutmut_1 -> shared.fast.direct_line)."""
    return name.rsplit(".", 1)[0]


def tests_of(module: str) -> str:
    """The test files of a module: its own entry, else its package's (shared.fast, devharness)."""
    parts = module.split(".")
    for end in range(len(parts), 0, -1):
        if ".".join(parts[:end]) in TESTS:
            return TESTS[".".join(parts[:end])]
    raise SystemExit(f"no tests named for {module} in TESTS (ci/judge_mutants.py), nor --tests")


@functools.cache
def _mutant_functions(module_file: Path) -> tuple[str, dict[str, ast.FunctionDef]]:
    """The text of a module in mutants/ and its mutant functions by name (read once: they are large)."""
    text = module_file.read_text()
    functions = {
        node.name: node
        for node in ast.walk(ast.parse(text))
        if isinstance(node, ast.FunctionDef) and re.search(r"__mutmut_\d+$", node.name)
    }
    return text, functions


def rejected_by_mypy() -> set[str]:
    """Mutants with a type error in their function, as mutmut's `type_check_command` finds them."""
    found = subprocess.run(
        [str(Path(PYTHON).parent / "mypy"), *SOURCES, "--output", "json", "--no-warn-unused-ignores"],
        cwd=MUTANTS,
        capture_output=True,
        text=True,
    ).stdout
    lines_by_file: dict[str, set[int]] = {}
    for line in found.splitlines():
        try:
            error = json.loads(line)
        except ValueError:
            continue
        if error.get("severity") == "error":
            lines_by_file.setdefault(error["file"], set()).add(error["line"])
    rejected = set()
    for file, lines in lines_by_file.items():
        for node in _mutant_functions(MUTANTS / file)[1].values():
            if any(node.lineno <= line <= (node.end_lineno or node.lineno) for line in lines):
                rejected.add(f"{Path(file).with_suffix('').as_posix().replace('/', '.')}.{node.name}")
    return rejected


def _pytest(cwd: Path, tests: str, env: dict[str, str]) -> dict[str, str]:
    command = [
        PYTHON,
        "-m",
        "pytest",
        *tests.split(),
        "-x",
        "-q",
        "--servers=embedded",
        "-p",
        "no:xdist",
        "-p",
        "no:cacheprovider",
    ]
    try:
        done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=TEST_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return {"verdict": "timeout"}
    if done.returncode == 0:
        return {"verdict": "survived"}
    if done.returncode != 1:  # not a failing test: an interrupted run, a usage error (say so, do not count it)
        return {"verdict": f"error (pytest exit {done.returncode})", "by": (done.stdout + done.stderr)[-300:]}
    failed = re.findall(r"(?m)^(?:FAILED|ERROR) (tests/\S+)", done.stdout)
    return {"verdict": "killed", "by": failed[0] if failed else ""}


def judge_switched(name: str, tests: str) -> dict[str, str]:
    return _pytest(MUTANTS, tests, {**os.environ, "MUTANT_UNDER_TEST": name})


def judge_planted(name: str, tests: str, copy: Path) -> dict[str, str]:
    """Replace the original function by the mutant's body in a copy of the source, run, restore."""
    function = name.rsplit(".", 1)[1]
    module_file = Path(*module_of(name).split(".")).with_suffix(".py")
    mutant_text, mutants = _mutant_functions(MUTANTS / module_file)
    mutant = mutants[function]
    base = function.rsplit("__mutmut_", 1)[0]  # x_name, or xǁClassǁmethod
    source_file = copy / module_file
    original = (ROOT / module_file).read_text()
    scope: ast.AST = ast.parse(original)
    if "ǁ" in base:
        _, class_name, original_name = base.split("ǁ")
        scope = next(node for node in ast.walk(scope) if isinstance(node, ast.ClassDef) and node.name == class_name)
    else:
        original_name = base[2:]
    target = next(
        node for node in ast.iter_child_nodes(scope) if isinstance(node, ast.FunctionDef) and node.name == original_name
    )
    body = (ast.get_source_segment(mutant_text, mutant, padded=True) or "").splitlines()
    indent = len(body[0]) - len(body[0].lstrip())
    body = [" " * target.col_offset + line[indent:] if line.strip() else "" for line in body]
    body[0] = re.sub(r"def \S+?\(", f"def {original_name}(", body[0], count=1)
    lines = original.splitlines()
    source_file.write_text("\n".join([*lines[: target.lineno - 1], *body, *lines[target.end_lineno :]]) + "\n")
    try:
        return _pytest(copy, tests, dict(os.environ))
    finally:
        source_file.write_text(original)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "names", type=Path, help="a file of mutant names (shared.MODULE.FUNCTION__mutmut_N, devharness...)"
    )
    parser.add_argument("--verdicts", type=Path, default=mutation_verdicts.VERDICTS_FILE)
    parser.add_argument("--again", action="store_true", help="judge listed names that already have a verdict")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--tests", help="test files for every mutant, instead of each module's own")
    parser.add_argument(
        "--no-mypy",
        action="store_true",
        help="judge by the tests alone: for mutants mypy rejects only because they are mutmut's copies"
        " (an annotated attribute set in __init__ is declared again in each copy)",
    )
    args = parser.parse_args()
    results = mutation_verdicts.read(args.verdicts)
    names = [name for name in args.names.read_text().split() if args.again or name not in results]
    rejected = set() if args.no_mypy else rejected_by_mypy()
    results.update({name: {"verdict": "mypy", "by": "", "note": ""} for name in names if name in rejected})
    to_test = [name for name in names if name not in rejected]
    print(f"{len(names)} mutants: {len(names) - len(to_test)} rejected by mypy, {len(to_test)} to test", flush=True)
    save = Lock()

    def judge(name: str, copy: Path | None = None) -> None:
        tests = args.tests or tests_of(module_of(name))
        verdict = judge_planted(name, tests, copy) if copy else judge_switched(name, tests)
        with save:
            if verdict["verdict"].startswith("error"):  # pytest's last words, on one line, as the note
                results[name] = {"verdict": verdict["verdict"], "by": "", "note": " ".join(verdict["by"].split())}
            else:
                results[name] = {"verdict": verdict["verdict"], "by": verdict.get("by", ""), "note": ""}
            mutation_verdicts.write(results, args.verdicts)
        print(verdict["verdict"], name, verdict.get("by", ""), flush=True)

    mutation_verdicts.write(results, args.verdicts)  # the mypy verdicts
    planted = [name for name in to_test if IMPORT_TIME.match(name)]
    with ThreadPoolExecutor(args.jobs) as pool:
        list(pool.map(judge, [name for name in to_test if name not in planted]))
    if planted:  # one copy of the source, so one planted mutant at a time
        with tempfile.TemporaryDirectory(prefix="judge-mutants-") as copy:
            ignored = shutil.ignore_patterns(".venv", "mutants", ".git", "__pycache__", ".mypy_cache")
            shutil.copytree(ROOT, copy, dirs_exist_ok=True, ignore=ignored)
            for name in planted:
                judge(name, Path(copy))
    print(mutation_verdicts.summary(results))


if __name__ == "__main__":
    main()
