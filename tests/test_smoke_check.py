"""devkit/cloudrun/smoke.py, the deploy's smoke request: the URL it reads from a service's
description, and what it calls a failure, against a stub revision on loopback (a stand-in
for a Cloud Run revision, answering what each case sets)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devkit.cloudrun import smoke
from devkit.servers.ports import free_port

from .support.stub_revision import READY, StubRevision, stub_revision

SERVICE = {
    "status": {
        "url": "https://random-fact-abc-ew.a.run.app",
        "traffic": [
            {"revisionName": "random-fact-00001", "percent": 100},
            {
                "revisionName": "random-fact-00002",
                "tag": "candidate",
                "url": "https://candidate---random-fact-abc-ew.a.run.app",
            },
        ],
    }
}


def test_the_url_is_the_tags_or_the_services():
    assert smoke.revision_url(SERVICE, "candidate") == "https://candidate---random-fact-abc-ew.a.run.app"
    assert smoke.revision_url(SERVICE) == "https://random-fact-abc-ew.a.run.app"
    with pytest.raises(LookupError, match="tag other"):
        smoke.revision_url(SERVICE, "other")


@pytest.fixture
def stub() -> Iterator[str]:
    with stub_revision({}) as url:
        yield url


@pytest.mark.parametrize(
    ("answers", "expected"),
    [
        ({"/_ready": READY, "/": (200, {})}, []),
        ({"/_ready": (200, {"status": "ready", "postgres": "ok", "redis": "down"}), "/": (200, {})},
         ["redis is 'down'"]),
        ({"/_ready": (503, {"status": "not_ready"}), "/": (200, {})}, ["/_ready answered 503"]),
        ({"/_ready": READY, "/": (503, {})}, ["/ answered 503"]),
        ({"/_ready": READY, "/": (403, {})}, ["/ answered 403"]),
    ],
    ids=["passes", "redis-down", "not-ready", "root-503", "root-403"],
)  # fmt: skip
def test_a_revision_passes_only_with_a_200_and_both_servers_ready(stub, answers, expected):
    StubRevision.answers = answers
    found = smoke.problems(stub, token="t0ken", timeout_s=5)
    assert [f.split(":")[0] for f in found] == expected
    assert all(auth == "Bearer t0ken" for _, auth in StubRevision.seen)
    if expected and expected[0].startswith(("redis", "/_ready")):
        assert [path for path, _ in StubRevision.seen] == ["/_ready"]  # no view counted on a revision not ready


def test_a_revision_that_does_not_answer_fails():
    found = smoke.problems(f"http://127.0.0.1:{free_port()}", timeout_s=2)
    assert len(found) == 1 and found[0].startswith("no answer")
