"""The smoke request a new revision must pass before it takes traffic: GET / answers 200, and the
readiness path answers 200 with Postgres and Redis both "ok".

Standard library only: deploy/cloud-functions.sh runs it against the tagged URL of a real
revision (reading the URL from `gcloud run services describe --format=json` on stdin), and
devkit.cloudrun.rollout runs the same check against instances on loopback.

    gcloud run services describe NAME --format=json | SMOKE_TOKEN=... python3 -m devkit.cloudrun.smoke --tag=TAG
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any

READY_PATH = "/_ready"
REQUEST_TIMEOUT_S = 20.0


def revision_url(service: Mapping[str, Any], tag: str = "") -> str:
    """The URL of the revision under `tag` in a Cloud Run service's description (v1 JSON), or the
    service's own URL without a tag."""
    status = service.get("status", {})
    if not tag:
        url = status.get("url")
    else:
        url = next((t.get("url") for t in status.get("traffic", []) if t.get("tag") == tag), None)
    if not url:
        raise LookupError(f"the service's description has no URL for {'tag ' + tag if tag else 'the service'}")
    return str(url)


def _get(url: str, token: str, timeout_s: float) -> tuple[int, bytes]:
    if not url.startswith(("https://", "http://")):
        raise ValueError(f"not an HTTP URL: {url!r}")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 - the scheme is checked above
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310 - checked above
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def problems(
    base_url: str, token: str = "", ready_path: str = READY_PATH, timeout_s: float = REQUEST_TIMEOUT_S
) -> list[str]:
    """What is wrong with the revision at `base_url` (empty: it passes). Readiness is asked first:
    the root request counts a view, which a revision that cannot reach its servers never should."""
    found: list[str] = []
    try:
        status, body = _get(base_url.rstrip("/") + ready_path, token, timeout_s)
        if status != 200:
            found.append(f"{ready_path} answered {status}: {body[:200]!r}")
        else:
            ready = json.loads(body)
            found += [
                f"{server} is {ready.get(server)!r}" for server in ("postgres", "redis") if ready.get(server) != "ok"
            ]
        if not found:
            status, body = _get(base_url.rstrip("/") + "/", token, timeout_s)
            if status != 200:
                found.append(f"/ answered {status}: {body[:200]!r}")
    except (OSError, ValueError) as error:  # refused, timed out, not JSON
        found.append(f"no answer: {error.__class__.__name__}: {error}")
    return found


def check(
    base_url: str, token: str = "", ready_path: str = READY_PATH, attempts: int = 3, pause_s: float = 5.0
) -> list[str]:
    """`problems`, asked up to `attempts` times while it finds any: a revision that has just
    become ready may still be warming its first connections."""
    for attempt in range(attempts):
        found = problems(base_url, token, ready_path)
        if not found or attempt == attempts - 1:
            return found
        time.sleep(pause_s)
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tag", default="", help="the revision's traffic tag (empty: the service's URL)")
    parser.add_argument("--ready-path", default=READY_PATH)
    parser.add_argument("--url", help="the base URL itself, instead of a service description on stdin")
    parser.add_argument("--attempts", type=int, default=3)
    args = parser.parse_args(argv)
    url = args.url or revision_url(json.load(sys.stdin), args.tag)
    found = check(url, os.environ.get("SMOKE_TOKEN", ""), args.ready_path, attempts=args.attempts)
    for problem in found:
        print(f"smoke request to {url}: {problem}", file=sys.stderr)
    if not found:
        print(f"# smoke request to {url}: 200, postgres and redis ready")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
