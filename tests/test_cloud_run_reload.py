"""serve --like cloud-run --reload as a real process: a change to functions/ deploys a new revision
that takes the traffic once it listens (the old instance stopped), and a revision that does not
start leaves the traffic where it was."""

from __future__ import annotations

import json
import shutil
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from devkit.servers.waiting import wait_until

from .support.harness_process import ROOT, harness_server, project_copy

pytestmark = pytest.mark.slow  # a harness process, instances of two revisions

# What the deploy's dry run and the upload set need beside what the harness needs.
DEPLOY_FILES = ("deploy", ".gcloudignore", ".gitignore", "requirements.txt", "pyproject.toml")
ANSWERS = (
    "import _source_root  # noqa: F401\nimport functions_framework\n\n\n"
    "@functions_framework.http\ndef random_fact(request):\n    return {!r}\n"
)


def _get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=40) as response:
        return int(response.status), response.read()


def _platform(base: str) -> dict[str, Any]:
    return dict(json.loads(_get(base + "/_dashboard/api/platform")[1]))


def _evict(base: str, name: str) -> tuple[int, Any]:
    """The dashboard's Evict button, as its page presses it (same origin, a JSON body)."""
    body = json.dumps({"instance": name}).encode()
    headers = {"Origin": base, "Content-Type": "application/json"}
    request = urllib.request.Request(base + "/_dashboard/api/platform/evict", body, headers, method="POST")
    with urllib.request.urlopen(request, timeout=40) as response:
        return int(response.status), json.loads(response.read())


def _assert(condition: bool, message: str = "") -> None:
    assert condition, message


def test_a_change_deploys_a_new_revision_and_a_broken_one_keeps_the_traffic(servers, tmp_path: Path) -> None:
    root = project_copy(tmp_path / "project")
    for name in DEPLOY_FILES:
        source = ROOT / name
        (shutil.copytree if source.is_dir() else shutil.copy2)(source, root / name)
    function = root / "functions" / "random_fact.py"
    function.write_text(ANSWERS.format("revision one"))
    with harness_server(servers.environ(), "--like", "cloud-run", "--reload", root=root) as (base, log):
        assert _get(base + "/random") == (200, b"revision one")
        function.write_text(ANSWERS.format("revision two"))
        wait_until(lambda: _assert(_get(base + "/random") == (200, b"revision two")), 60, "revision 2 answering",
                   lambda: log.read_text(errors="replace")[-3000:])  # fmt: skip
        random = _platform(base)["services"][0]
        assert random["revision"] == 2
        old = [i for i in random["instances"] if i["revision"] == 1]
        wait_until(
            lambda: _assert(all(i["state"] == "stopped" for i in _platform(base)["services"][0]["instances"]
                                if i["revision"] == 1)),
            15, "revision 1 stopped",
        )  # fmt: skip
        assert old, "revision 1 had an instance"
        function.write_text("this is not Python\n")
        wait_until(lambda: _assert("revision 3 failed to start" in log.read_text(errors="replace")), 60,
                   "revision 3 refused")  # fmt: skip
        assert _get(base + "/random") == (200, b"revision two")  # the traffic stayed
        # and so did the launches: the next cold start is revision 2's again, from its own copy
        running = [i["name"] for i in _platform(base)["services"][0]["instances"] if i["state"] != "stopped"]
        assert len(running) == 1
        assert _evict(base, running[0]) == (200, {"evicted": running[0]})
        assert _get(base + "/random") == (200, b"revision two")
        instances = _platform(base)["services"][0]["instances"]
        assert [i["revision"] for i in instances if i["state"] != "stopped"] == [2]
