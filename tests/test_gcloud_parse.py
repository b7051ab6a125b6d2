"""deploy/gcloud_check.py: how it finds gcloud lines, and that the real gcloud tells a line that
parses from one that does not. (The full check of every line is its own step of .ci/run.)"""

from __future__ import annotations

import pytest

from .support.deploy_copy import gcloud_env
from .support.scripts import load_script

gcloud_check = load_script("deploy/gcloud_check.py")

# In the slow lane: the gcloud CLI, about a second a line.
pytestmark = pytest.mark.slow


@pytest.fixture
def gcloud(tmp_path):
    """The gcloud CLI: these tests skip without it, saying so (and fail in CI, which has it)."""
    gcloud_env(tmp_path / "gcloud-config")


GOOD = ["gcloud", "run", "jobs", "deploy", "facts-migrate", "--project=demo", "--region=europe-west1",
        "--source=.", "--network=default", "--subnet=default", "--vpc-egress=private-ranges-only"]  # fmt: skip


def test_a_line_that_parses_passes(tmp_path, gcloud):
    verdict = gcloud_check.check(GOOD, tmp_path)
    assert verdict.parsed, verdict.detail
    assert gcloud_check.NO_ACCOUNT in verdict.detail


@pytest.mark.parametrize(
    "bad",
    [
        [arg.replace("--subnet", "--subnett") for arg in GOOD],  # a misspelled flag
        [arg.replace("private-ranges-only", "private-only") for arg in GOOD],  # not one of the choices
        [*GOOD, "--base-image=python312"],  # a flag of `run deploy` that `run jobs deploy` lacks
    ],
    ids=["misspelled", "bad-choice", "other-command"],
)
def test_a_line_that_does_not_parse_fails(tmp_path, bad, gcloud):
    verdict = gcloud_check.check(bad, tmp_path)
    assert not verdict.parsed
    assert gcloud_check.NO_ACCOUNT not in verdict.detail


def test_doc_commands_are_found_in_blocks_substitutions_pipes_and_inline_code():
    page = """
Rotate with `gcloud secrets versions add facts-database-url --data-file=-`.

```sh
# gcloud in a comment is not a command
NUMBER=$(gcloud projects describe "$PROJECT" --format='value(projectNumber)')
printf x |
  gcloud secrets create s --data-file=-
gcloud run deploy x --region="$REGION" \\
  --set-env-vars='A=$NOT_EXPANDED' && echo done
```
"""
    found = gcloud_check.doc_commands(page, {"PROJECT": "p", "REGION": "r"})
    assert found == [
        ["gcloud", "projects", "describe", "p", "--format=value(projectNumber)"],
        ["gcloud", "secrets", "create", "s", "--data-file=-"],
        ["gcloud", "run", "deploy", "x", "--region=r", "--set-env-vars=A=$NOT_EXPANDED"],
        ["gcloud", "secrets", "versions", "add", "facts-database-url", "--data-file=-"],
    ]
    with pytest.raises(ValueError, match="UNKNOWN"):
        gcloud_check.doc_commands("```sh\ngcloud x --y=$UNKNOWN\n```\n", {})


def test_the_docs_and_both_dry_run_forms_yield_the_deploy_commands(tmp_path, gcloud):
    docs = gcloud_check.doc_commands(gcloud_check.DOCS.read_text())
    assert any(argv[:3] == ["gcloud", "services", "enable"] and "sql-component.googleapis.com" in argv for argv in docs)
    for form, extra in gcloud_check.DRY_RUN_FORMS.items():
        commands = gcloud_check.dry_run_commands(extra, tmp_path / form.replace(" ", "-"))
        assert sum(argv[1:3] == ["run", "deploy"] for argv in commands) == 2, form
        assert sum(argv[1:4] == ["run", "jobs", "deploy"] for argv in commands) == 1, form
