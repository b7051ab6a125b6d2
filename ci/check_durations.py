"""Is .test_durations fresh? Every test the suite collects has an entry, no entry names a test that is
gone, and the CI shards it makes (pytest-split's least_duration, the workflow's group count) stay
within 25 % of each other. Part of the lint (.ci/run, the workflow); `./dev durations --check` runs it.

    python ci/check_durations.py                 the check (exit 1 with what is wrong)
    python ci/check_durations.py --missing FILE  write the ids with no entry to FILE (one a line)
    python ci/check_durations.py --prune         drop the entries of tests that are gone
    python ci/check_durations.py --durations F   check (or fill from, or prune) F instead of .test_durations

Collection only (a few seconds): the suite is collected in this process, no test runs.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import tomllib
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DURATIONS = ROOT / ".test_durations"
WORKFLOW = ROOT / ".github" / "workflows" / "ci.yml"
ALGORITHM = "least_duration"  # as the workflow's --splitting-algorithm
# The longest shard may take at most this much more than the shortest: CI waits for the longest.
MOST_UNEVEN = 1.25


class _Item(NamedTuple):
    nodeid: str  # all pytest-split's algorithms read of an item


class _Collector:
    def __init__(self) -> None:
        self.ids: list[str] = []

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.ids = [item.nodeid for item in session.items]


def test_paths() -> list[Path]:
    """Every folder the suite collects (pytest's testpaths: tests/ and bench/tests), as `./dev test` runs it."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return [ROOT / path for path in config["tool"]["pytest"]["ini_options"]["testpaths"]]


def collected_ids() -> list[str]:
    """Every test id of both lanes, in collection order (which pytest-split's ties follow)."""
    collector = _Collector()
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        arguments = ["--collect-only", "-qq", "-p", "no:cacheprovider", *map(str, test_paths())]
        code = pytest.main(arguments, plugins=[collector])
    if code != 0:
        raise SystemExit(f"{output.getvalue()}\ncollection failed (pytest exit {code})")
    return collector.ids


def shard_count() -> int:
    workflow: dict[str, Any] = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    return len(workflow["jobs"]["containers"]["strategy"]["matrix"]["group"])


def shard_seconds(ids: list[str], durations: dict[str, float], shards: int) -> list[float]:
    # Imported here, after collection: imported before pytest.main, pytest-split's plugin module could
    # not be assertion-rewritten and pytest warns.
    from pytest_split.algorithms import Algorithms

    groups = Algorithms[ALGORITHM].value(shards, [_Item(i) for i in ids], durations)
    return [group.duration for group in groups]


def problems(ids: list[str], durations: dict[str, float], shards: int) -> list[str]:
    found: list[str] = []
    known = set(ids)
    missing = [i for i in ids if i not in durations]
    stale = sorted(set(durations) - known)
    if missing:
        found.append(f"{len(missing)} tests have no entry, e.g. {missing[:3]}")
    if stale:
        found.append(f"{len(stale)} entries name tests that are gone, e.g. {stale[:3]}")
    seconds = shard_seconds(ids, durations, shards)
    if min(seconds) <= 0 or max(seconds) > MOST_UNEVEN * min(seconds):
        found.append(f"the {shards} shards are uneven: {', '.join(f'{s:.1f} s' for s in seconds)}")
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--missing", type=Path, help="write the ids with no entry to this file")
    parser.add_argument("--prune", action="store_true", help="drop the entries of tests that are gone")
    parser.add_argument("--durations", type=Path, default=DURATIONS, help="the file to check (.test_durations)")
    options = parser.parse_args()
    durations: dict[str, float] = json.loads(options.durations.read_text(encoding="utf-8"))
    ids = collected_ids()
    if options.missing:
        options.missing.write_text("".join(f"{i}\n" for i in ids if i not in durations), encoding="utf-8")
        return 0
    if options.prune:
        kept = {name: seconds for name, seconds in durations.items() if name in set(ids)}
        options.durations.write_text(json.dumps(kept, indent=4, sort_keys=True) + "\n", encoding="utf-8")
        print(f"{options.durations.name}: dropped {len(durations) - len(kept)} entries of tests that are gone")
        return 0
    found = problems(ids, durations, shard_count())
    for problem in found:
        print(f"{DURATIONS.name}: {problem}", file=sys.stderr)
    if found:
        print("re-record: ./dev durations (whole suite), or ./dev durations --fill (what is missing)", file=sys.stderr)
        return 1
    seconds = shard_seconds(ids, durations, shard_count())
    print(f"{DURATIONS.name}: {len(ids)} tests, shards {', '.join(f'{s:.1f} s' for s in seconds)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
