"""Every gcloud line we ship parses under the real gcloud CLI: the deploy's dry run in each form
(private IP, the Cloud SQL socket form, and the private IP with the servers' CA files mounted)
and every gcloud command in docs/deploy.md.

    python deploy/gcloud_check.py

Each line runs under an empty CLOUDSDK_CONFIG, so no account and no project, with prompts off.
gcloud parses a command line fully (flag names, choices, groups of flags that exclude each
other) before it looks for credentials, so a line that parses stops at exit status 1 with
"You do not currently have an active account selected"; one that does not parse exits with 2
("unrecognized arguments", "Invalid choice", "At most one of ..."). Only the first counts as
parsed (or exit 0, for the few local commands such as `gcloud config set`). Nothing reaches
Google: without an account gcloud sends no request.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "deploy" / "cloud-functions.sh"
DOCS = ROOT / "docs" / "deploy.md"
NO_ACCOUNT = "You do not currently have an active account selected"
# The dry run's forms: the private IP in the secret, the Cloud SQL socket, the CA files mounted; each
# later deploy (the services exist), and the first deploy's lines are checked too.
DRY_RUN_FORMS: dict[str, dict[str, str]] = {
    "private IP": {},
    "Cloud SQL socket": {"CLOUDSQL_INSTANCE": "demo-project:europe-west1:facts-db"},
    "verified TLS": {"DATABASE_CA_SECRET": "facts-database-ca", "REDIS_CA_SECRET": "facts-redis-ca"},
    "first deploy": {"DRY_RUN_AS": "first"},
}
# Values for the shell variables docs/deploy.md uses; a variable missing here fails the check,
# so that a new one is given a value of the right shape rather than an empty string.
DOC_VARIABLES = {
    "PROJECT": "demo-project",
    "REGION": "europe-west1",
    "PROJECT_NUMBER": "123456789012",
    "DB_PASSWORD": "0123456789abcdef",
    "SQL_IP": "10.20.0.3",
    "REDIS_IP": "10.20.0.4",
    "REDIS_PORT": "6378",
    "REDIS_AUTH": "0123456789abcdef-auth",
}
_FENCE = re.compile(r"^```(?:sh|bash|shell)\n(.*?)^```", re.MULTILINE | re.DOTALL)
_INLINE = re.compile(r"`(gcloud [^`]+)`")
_VARIABLE = re.compile(r"\$(?:\{(\w+)\}|(\w+))")
_OPERATORS = {"|", "||", "&&", ";", "&"}
_REDIRECTS = {">", ">>", "<"}


@dataclass(frozen=True)
class Verdict:
    argv: tuple[str, ...]
    parsed: bool
    detail: str


def _substitutions(line: str) -> tuple[str, list[str]]:
    """The line with each `$(...)` replaced by a placeholder word, and the commands inside them."""
    inner: list[str] = []
    out: list[str] = []
    i = 0
    while i < len(line):
        if line.startswith("$(", i):
            depth, j = 1, i + 2
            while j < len(line) and depth:
                depth += {"(": 1, ")": -1}.get(line[j], 0)
                j += 1
            if depth:
                raise ValueError(f"unbalanced $( in: {line}")
            body, nested = _substitutions(line[i + 2 : j - 1])
            inner += [body, *nested]
            out.append("SUBSTITUTED")
            i = j
        else:
            out.append(line[i])
            i += 1
    return "".join(out), inner


def _expand(line: str, variables: Mapping[str, str]) -> str:
    """$VAR and ${VAR} outside single quotes, as a shell would; an unknown variable is an error."""
    parts = re.split(r"('[^']*')", line)

    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in variables:
            raise ValueError(f"docs use ${name}: give it a sample value in DOC_VARIABLES")
        return variables[name]

    return "".join(p if p.startswith("'") else _VARIABLE.sub(value, p) for p in parts)


def gcloud_commands(line: str, variables: Mapping[str, str]) -> list[list[str]]:
    """The gcloud commands of one shell line: in pipelines, lists, assignments and $(...)."""
    outer, inner = _substitutions(line)
    found: list[list[str]] = []
    for text in [outer, *inner]:
        lexer = shlex.shlex(_expand(text, variables), posix=True, punctuation_chars=";&|<>")
        lexer.whitespace_split = True
        lexer.commenters = ""  # a '#' inside a word is not a comment; whole-line comments are dropped earlier
        segment: list[str] = []
        tokens = list(lexer)
        for index, token in enumerate([*tokens, ";"]):
            if token in _OPERATORS:
                while segment and re.match(r"^\w+=", segment[0]):  # leading assignments: NAME=$(gcloud ...)
                    segment.pop(0)
                if segment[:1] == ["gcloud"]:
                    found.append(segment)
                segment = []
            elif token in _REDIRECTS or (index and tokens[index - 1] in _REDIRECTS):
                continue
            else:
                segment.append(token)
    return found


def doc_commands(markdown: str, variables: Mapping[str, str] = DOC_VARIABLES) -> list[list[str]]:
    """Every gcloud command in a Markdown page: in ```sh blocks (continued lines joined, comments
    dropped) and in inline code that starts with `gcloud `."""
    commands: list[list[str]] = []
    for block in _FENCE.findall(markdown):
        for line in block.replace("\\\n", " ").splitlines():
            line = re.sub(r"(^|\s)#.*$", "", line)  # a comment: '#' starting a word
            if "gcloud" in line:
                commands += gcloud_commands(line, variables)
    for span in _INLINE.findall(markdown):
        commands += gcloud_commands(span, variables)
    return commands


def dry_run_commands(extra_env: Mapping[str, str], stage_dir: Path) -> list[list[str]]:
    """The gcloud lines the deploy script prints in a dry run (read back as a shell would)."""
    env = {**_gcloud_env(stage_dir / "gcloud-config"), "PROJECT": "demo-project", "REGION": "europe-west1",
           "STAGE_DIR": str(stage_dir / "uploads"), **extra_env}  # fmt: skip
    result = subprocess.run(["bash", str(SCRIPT), "--dry-run"], capture_output=True, text=True, env=env, timeout=120)
    if result.returncode != 0:
        raise RuntimeError(f"the dry run failed ({result.returncode}):\n{result.stderr}")
    return [shlex.split(line) for line in result.stdout.splitlines() if line and not line.startswith("#")]


def _gcloud_env(config_dir: Path) -> dict[str, str]:
    config_dir.mkdir(parents=True, exist_ok=True)
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(config_dir),
        "CLOUDSDK_CONFIG": str(config_dir),
        "CLOUDSDK_CORE_DISABLE_PROMPTS": "1",
        "CLOUDSDK_COMPONENT_MANAGER_DISABLE_UPDATE_CHECK": "1",
    }


def check(argv: list[str], config_dir: Path, project: str | None = None, timeout_s: float = 60) -> Verdict:
    """Run one gcloud line with no account; parsed when gcloud got as far as asking for one.
    `project` stands for a `gcloud config set project` run before the line (docs/deploy.md's first
    step): without it gcloud cannot parse a resource name such as a secret's."""
    if argv[:1] != ["gcloud"]:
        return Verdict(tuple(argv), False, "not a gcloud command")
    env = _gcloud_env(config_dir) | ({"CLOUDSDK_CORE_PROJECT": project} if project else {})
    try:
        result = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=ROOT,
                                stdin=subprocess.DEVNULL, timeout=timeout_s)  # fmt: skip
    except subprocess.TimeoutExpired:
        return Verdict(tuple(argv), False, f"no answer within {timeout_s:.0f} s (a prompt, or the network?)")
    parsed = result.returncode == 0 or (result.returncode == 1 and NO_ACCOUNT in result.stderr)
    detail = result.stderr.strip().splitlines()[0] if result.stderr.strip() else f"exit {result.returncode}"
    return Verdict(tuple(argv), parsed, detail)


def check_all(commands: Iterable[tuple[list[str], str | None]], workdir: Path, parallel: int = 4) -> list[Verdict]:
    """(argv, project) pairs, each run in its own empty configuration (so that `gcloud config set`
    leaves nothing for the next line), a few at once: gcloud takes about a second to start."""
    jobs = list(commands)
    with ThreadPoolExecutor(max_workers=parallel) as pool:
        futures = [pool.submit(check, argv, workdir / f"config-{n}", project) for n, (argv, project) in enumerate(jobs)]
        return [future.result() for future in futures]


def main() -> int:
    if shutil.which("gcloud") is None:
        print("gcloud is not on PATH: install the Google Cloud CLI (https://cloud.google.com/sdk/docs/install)")
        return 2
    with tempfile.TemporaryDirectory(prefix="gcloud-check-") as work:
        workdir = Path(work)
        # (where, argv, project): the dry run's lines name --project themselves; the docs' lines
        # follow their own `gcloud config set project "$PROJECT"`.
        labelled: list[tuple[str, list[str], str | None]] = []
        for form, extra in DRY_RUN_FORMS.items():
            for argv in dry_run_commands(extra, workdir / form.replace(" ", "-")):
                labelled.append((f"dry run, {form}", argv, None))
        labelled += [("docs/deploy.md", argv, DOC_VARIABLES["PROJECT"]) for argv in doc_commands(DOCS.read_text())]
        verdicts = check_all([(argv, project) for _, argv, project in labelled], workdir)
    failures = 0
    for (where, _, _), verdict in zip(labelled, verdicts, strict=True):
        failures += not verdict.parsed
        mark = "ok  " if verdict.parsed else "FAIL"
        print(f"{mark} [{where}] {shlex.join(verdict.argv)}")
        if not verdict.parsed:
            print(f"     {verdict.detail}")
    print(f"{len(verdicts) - failures} of {len(verdicts)} gcloud lines parse")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
