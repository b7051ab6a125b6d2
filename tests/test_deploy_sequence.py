"""deploy/cloud-functions.sh run for real (not a dry run) against a stub gcloud: the script's own
decisions after each answer, with no Google project. The stub (a shell script named `gcloud`,
first on PATH) records every call and answers as a project would: the services exist, the
candidate's tagged URL is a stub revision on loopback (tests/support/stub_revision.py), and the
public binding is there or not. `gcloud meta` (staging the uploads, local) goes to the real CLI.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from .support.deploy_copy import BASE_ENV, SCRIPT, gcloud_env
from .support.stub_revision import READY, REDIS_DOWN, stub_revision

# In the slow lane: the deploy script run whole, its uploads staged by the gcloud CLI.
pytestmark = pytest.mark.slow

STUB_GCLOUD = """#!/bin/bash
# A stub of the gcloud CLI for tests/test_deploy_sequence.py: records, answers, reaches nothing.
printf '%s\\n' "$*" >>"$STUB_CALLS"
case "$*" in
    meta\\ *) exec "$REAL_GCLOUD" "$@" ;;
    "secrets versions list"*) echo 1 ;;
    "run services describe"*--format=json*) cat "$STUB_SERVICE_JSON" ;;
    "run services describe"*) echo "${3}" ;;
    "auth print-identity-token"*) echo stub-token ;;
    "run services get-iam-policy"*) echo "$STUB_INVOKER" ;;
esac
exit 0
"""


def _run(tmp_path: Path, candidate_url: str, invoker: str) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    real = shutil.which("gcloud")
    env = gcloud_env(tmp_path / "gcloud-config")  # skips (or fails in CI) without the real CLI
    stub_dir = tmp_path / "stub-bin"
    stub_dir.mkdir()
    (stub_dir / "gcloud").write_text(STUB_GCLOUD)
    (stub_dir / "gcloud").chmod(0o755)
    service = {"status": {"url": "https://unused.invalid", "traffic": [{"tag": "candidate", "url": candidate_url}]}}
    (tmp_path / "service.json").write_text(json.dumps(service))
    calls = tmp_path / "calls"
    result = subprocess.run(
        ["bash", str(SCRIPT)], capture_output=True, text=True, timeout=120,
        env={**env, **BASE_ENV, "PATH": f"{stub_dir}:{BASE_ENV['PATH']}", "REAL_GCLOUD": str(real),
             "STUB_CALLS": str(calls), "STUB_SERVICE_JSON": str(tmp_path / "service.json"), "STUB_INVOKER": invoker,
             "STAGE_DIR": str(tmp_path / "stage"), "SMOKE_ATTEMPTS": "1",
             "PYTHON": os.environ.get("PYTHON", "python3")},
    )  # fmt: skip
    return result, calls.read_text().splitlines()


def _called(calls: list[str], *words: str) -> list[str]:
    return [call for call in calls if call.startswith(" ".join(words))]


def test_a_verified_candidate_takes_the_traffic_and_the_binding_is_checked(tmp_path):
    with stub_revision({"/_ready": READY, "/": (200, {})}) as url:
        result, calls = _run(tmp_path, url, "allUsers")
    assert result.returncode == 0, result.stderr
    assert len(_called(calls, "run deploy")) == 2 and all("--no-traffic" in c for c in _called(calls, "run deploy"))
    assert len(_called(calls, "run services update-traffic")) == 2
    assert len(_called(calls, "run services get-iam-policy")) == 2


def test_a_candidate_that_fails_its_smoke_request_moves_no_traffic_and_says_where_to_look(tmp_path):
    with stub_revision({"/_ready": REDIS_DOWN, "/": (200, {})}) as url:
        result, calls = _run(tmp_path, url, "allUsers")
    assert result.returncode == 1
    assert "redis is 'down'" in result.stderr
    assert "FAILED: the candidate revision of random-fact" in result.stderr
    assert "gcloud run services logs read random-fact" in result.stderr
    assert not _called(calls, "run services update-traffic")  # the old revisions keep every request


@pytest.mark.parametrize("invoker", ["", "user:someone@example.com"])
def test_a_missing_public_binding_fails_loudly_after_promotion(tmp_path, invoker):
    with stub_revision({"/_ready": READY, "/": (200, {})}) as url:
        result, calls = _run(tmp_path, url, invoker)
    assert result.returncode == 1
    assert len(_called(calls, "run services update-traffic")) == 2  # checked after promotion
    assert "FAILED: random-fact is deployed but not public" in result.stderr
    assert "403" in result.stderr
