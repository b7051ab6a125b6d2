"""The CI shards together run the whole suite, each test exactly once, split by recorded durations.

.github/workflows/ci.yml runs `./dev test --splits N --group K` (pytest-split over .test_durations)
on one runner per group; a test in no shard would never run anywhere, one in two would run twice.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import yaml

from .support.scripts import load_script

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / ".github" / "workflows" / "ci.yml"
# Each collection takes a few seconds (five at once, on a loaded machine, far longer); the bound only
# keeps a broken run from hanging the suite.
COLLECT_TIMEOUT_S = 240
ALGORITHM = ("--splitting-algorithm", "least_duration")  # as the workflow asks for it


def shard_groups() -> list[int]:
    """The groups of the workflow's sharded job (its --splits is the matrix's size)."""
    workflow = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    groups: list[int] = workflow["jobs"]["containers"]["strategy"]["matrix"]["group"]
    return groups


def _start_collection(*options: str) -> subprocess.Popen[str]:
    # --rootdir: the durations copy under /tmp is a path argument too, and pytest would otherwise take
    # the common folder of it and a checkout that also lies under /tmp as the root of the node ids.
    command = [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
               "--rootdir", str(ROOT), *options]  # fmt: skip
    return subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _finish_collection(process: subprocess.Popen[str]) -> tuple[list[str], str]:
    """The node ids the run collected, and its whole output."""
    try:
        output, _ = process.communicate(timeout=COLLECT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
        raise AssertionError(f"collection took over {COLLECT_TIMEOUT_S} s:\n{output}") from None
    assert process.returncode == 0, output
    return [line for line in output.splitlines() if "::" in line], output


def test_the_workflow_matrix_numbers_its_groups_from_one():
    groups = shard_groups()
    assert len(groups) >= 2
    assert groups == list(range(1, len(groups) + 1))
    assert " ".join(ALGORITHM) in WORKFLOW.read_text(encoding="utf-8")


@pytest.mark.slow  # four collections of the whole suite
def test_the_shards_partition_the_suite_by_recorded_durations(tmp_path):
    groups = shard_groups()
    # Every collection reads the same copy: `./dev durations` rewrites the file as its workers finish.
    durations = tmp_path / "durations.json"
    shutil.copyfile(ROOT / ".test_durations", durations)
    # All collections at once: together they take about as long as one.
    whole = _start_collection()
    shards = [
        _start_collection(
            "--splits", str(len(groups)), "--group", str(group), *ALGORITHM, "--durations-path", str(durations)
        )
        for group in groups
    ]
    # The durations check's own collection: with an empty file, every test it sees is missing.
    empty = tmp_path / "empty.json"
    empty.write_text("{}")
    missing = tmp_path / "missing.txt"
    check = subprocess.Popen(
        [sys.executable, "ci/check_durations.py", "--durations", str(empty), "--missing", str(missing)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    everything, _ = _finish_collection(whole)
    results = [_finish_collection(shard) for shard in shards]
    _finish_collection(check)
    # It sees what the suite runs, bench/tests included: a test it missed would have no entry and no shard.
    assert any(node_id.startswith("bench/tests/") for node_id in everything)
    assert sorted(missing.read_text().splitlines()) == sorted(everything)

    assert f"{Path(__file__).name}::{test_the_shards_partition_the_suite_by_recorded_durations.__name__}" in "\n".join(
        everything
    )
    seen: dict[str, int] = {}
    for group, (node_ids, output) in zip(groups, results, strict=True):
        # Without durations pytest-split would split by count, and one shard would take most of the time.
        assert "No test durations found" not in output, output
        assert node_ids, f"shard {group} is empty:\n{output}"
        for node_id in node_ids:
            assert node_id not in seen, f"{node_id} is in shards {seen[node_id]} and {group}"
            seen[node_id] = group
    assert sorted(seen) == sorted(everything)


# --- ci/check_durations.py, the lint's check that .test_durations fits the suite ---------------


def _check_durations() -> ModuleType:
    return load_script("ci/check_durations.py")


def test_a_fresh_file_with_even_shards_passes_the_check():
    check = _check_durations()
    ids = [f"tests/test_x.py::test_{n}" for n in range(6)]
    assert check.problems(ids, dict.fromkeys(ids, 1.0), shards=3) == []


def test_a_test_without_an_entry_and_an_entry_without_a_test_fail_the_check():
    check = _check_durations()
    ids = [f"tests/test_x.py::test_{n}" for n in range(6)]
    durations = dict.fromkeys(ids[1:], 1.0) | {"tests/test_gone.py::test_old": 1.0}
    found = check.problems(ids, durations, shards=3)
    assert len(found) == 2, found
    assert found[0].startswith("1 tests have no entry") and "tests/test_x.py::test_0" in found[0]
    assert found[1].startswith("1 entries name tests that are gone") and "test_gone.py::test_old" in found[1]


def test_shards_more_than_25_percent_apart_fail_the_check():
    check = _check_durations()
    ids = ["tests/test_x.py::test_long", "tests/test_x.py::test_short"]
    assert check.problems(ids, {ids[0]: 1.25, ids[1]: 1.0}, shards=2) == []
    found = check.problems(ids, {ids[0]: 1.3, ids[1]: 1.0}, shards=2)
    assert found == ["the 2 shards are uneven: 1.3 s, 1.0 s"]
