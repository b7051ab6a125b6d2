"""A certificate authority of a test's own, and server certificates it signs (openssl CLI, never committed).

The certificates carry what a strict verifier asks for (key usages, key identifiers), so that
Python's default TLS context accepts them on every supported Python.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

_DAYS = "2"  # made per run: they need outlive only the run
_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]  # EC keys: made at once


@dataclass(frozen=True)
class Authority:
    name: str
    cert_file: Path
    key_file: Path


def _openssl(*argv: str) -> None:
    subprocess.run(["openssl", *argv], check=True, capture_output=True, timeout=60)


def make_authority(folder: Path, name: str) -> Authority:
    folder.mkdir(parents=True, exist_ok=True)
    cert, key = folder / f"{name}.crt", folder / f"{name}.key"
    _openssl(
        "req", "-x509", *_KEY, "-days", _DAYS, "-subj", f"/CN={name}", "-keyout", str(key), "-out", str(cert),
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    )  # fmt: skip
    return Authority(name, cert, key)


def make_server_certificate(authority: Authority, folder: Path, name: str, alt_names: str) -> tuple[Path, Path]:
    """A certificate for `alt_names` (openssl's subjectAltName syntax, e.g. "IP:127.0.0.1") signed
    by `authority`: its certificate file and its key file."""
    cert, key, request = folder / f"{name}.crt", folder / f"{name}.key", folder / f"{name}.csr"
    extensions = folder / f"{name}.ext"
    extensions.write_text(
        f"subjectAltName={alt_names}\nbasicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
        "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n"
    )
    _openssl("req", "-new", *_KEY, "-subj", f"/CN={name}", "-keyout", str(key), "-out", str(request))
    _openssl(
        "x509", "-req", "-in", str(request), "-CA", str(authority.cert_file), "-CAkey", str(authority.key_file),
        "-CAcreateserial", "-days", _DAYS, "-extfile", str(extensions), "-out", str(cert),
    )  # fmt: skip
    key.chmod(0o600)
    return cert, key
