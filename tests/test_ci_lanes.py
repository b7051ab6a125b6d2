"""Every test run of CI runs both lanes: .ci/run and every job of the GitHub workflow run the
default lane and the slow one (`./dev test --all`, or `./dev test` and `./dev test --slow` with the
same servers and settings) in every mode they run, the deployed-versions and fast-paths-off lanes
included. A run of one lane only would leave the other's tests (the deploy rehearsals, the gunicorn
fleets, the browser) unmet by that mode's servers or Python.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DEV_TEST = re.compile(r"\./dev test\b")


def dev_test_commands(script: str) -> list[str]:
    """Each command of a shell script that runs `./dev test`, its continued lines joined into one."""
    commands = []
    for line in script.replace("\\\n", " ").splitlines():
        if DEV_TEST.search(line) and not line.lstrip().startswith("#"):
            commands.append(" ".join(line.split()))
    return commands


def one_lane_runs(commands: list[str]) -> list[str]:
    """The runs that run one lane only, and have no run of the other lane with the same settings."""
    lanes: dict[str, set[str]] = {}
    for command in commands:
        words = command.split()
        lane = "both" if "--all" in words else "slow" if "--slow" in words else "default"
        settings = " ".join(word for word in words if word not in ("--all", "--slow"))
        lanes.setdefault(settings, set()).add(lane)
    return [settings for settings, found in lanes.items() if "both" not in found and found != {"default", "slow"}]


def ci_run_commands() -> list[str]:
    return dev_test_commands((ROOT / ".ci" / "run").read_text(encoding="utf-8"))


def workflow_commands() -> dict[str, list[str]]:
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "ci.yml").read_text(encoding="utf-8"))
    return {
        name: dev_test_commands("\n".join(step.get("run", "") for step in job["steps"]))
        for name, job in workflow["jobs"].items()
    }


def test_every_run_of_ci_run_runs_both_lanes():
    commands = ci_run_commands()
    assert one_lane_runs(commands) == []
    # The lanes that pin their settings are among them: a lane dropped from the file fails here.
    assert any("FACTS_FAST_PATHS=off" in command for command in commands), commands
    assert any("FACTS_VENV=.venv-deployed" in command for command in commands), commands
    modes = {mode for command in commands for mode in re.findall(r"--servers=(\w+)", command)}
    assert modes == {"embedded", "containers", "external"}


@pytest.mark.parametrize("job", sorted(workflow_commands()))
def test_every_run_of_each_github_job_runs_both_lanes(job):
    assert one_lane_runs(workflow_commands()[job]) == []


def test_the_check_finds_a_mode_that_runs_one_lane_only():
    """The checker itself, on the shapes a lane can take in a script."""
    assert one_lane_runs(["./dev test --all -n 2 --servers=embedded"]) == []
    assert one_lane_runs(["./dev test -n 2 --servers=embedded", "./dev test --slow -n 2 --servers=embedded"]) == []
    script = "FACTS_FAST_PATHS=off \\\n    ./dev test -n 2 --servers=embedded\n# ./dev test --slow in a comment\n"
    assert one_lane_runs(dev_test_commands(script)) == ["FACTS_FAST_PATHS=off ./dev test -n 2 --servers=embedded"]
    # The slow lane with other settings is no partner: each mode needs both.
    assert one_lane_runs(["./dev test --servers=embedded", "./dev test --slow --servers=containers"]) == [
        "./dev test --servers=embedded",
        "./dev test --servers=containers",
    ]


def test_no_run_looks_a_setting_up_in_its_own_assignment_prefix():
    """`VAR=$(lookup) ./dev test` runs the tests even when the lookup fails (set -e does not see it):
    each lookup is assigned on a line of its own first, which stops the script at once."""
    commands = ci_run_commands() + [command for job in workflow_commands().values() for command in job]
    assert [command for command in commands if "$(" in command or "`" in command] == []
