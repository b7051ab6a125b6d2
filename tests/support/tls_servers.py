"""`tls_servers`: a Postgres and a Redis of the worker's own that speak only TLS, with a certificate
of a CA made for the run (for 127.0.0.1 only), and a second CA that signed nothing of theirs.

Started on first use, once per worker. The wheels' servers have no TLS; the packaged ones
(Debian's postgresql and redis-server) have: without them the tests skip, and fail under CI=true,
where .ci/run installs them. Loaded by tests/conftest.py through `pytest_plugins`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest

from devkit.servers import Servers
from devkit.servers.embedded import ServerTls, embedded_servers, tls_postgres_bin_dir, tls_redis_server

from .certificates import Authority, make_authority, make_server_certificate
from .scratch import scratch_dir
from .servers import worker_name


@dataclass(frozen=True)
class TlsServers:
    servers: Servers  # their URLs verify the certificate and the name (verify-full, rediss:// with the CA)
    authority: Authority  # signed the servers' certificate
    stranger: Authority  # signed nothing the servers hold


def changed(url: str, host: str | None = None, **query: str) -> str:
    """`url` with another host and/or some of its query parameters replaced."""
    parts = urlsplit(url)
    netloc = parts.netloc if host is None else parts.netloc.replace(f"@{parts.hostname}:", f"@{host}:")
    params = dict(parse_qsl(parts.query)) | query
    return urlunsplit(parts._replace(netloc=netloc, query=urlencode(params)))


def _missing() -> str | None:
    if tls_postgres_bin_dir() is None:
        return "no PostgreSQL built with OpenSSL (apt-get install postgresql)"
    if tls_redis_server() is None:
        return "no redis-server built with TLS (apt-get install redis-server)"
    return None


@pytest.fixture(scope="session")
def tls_servers() -> Iterator[TlsServers]:
    missing = _missing()
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the TLS tests: {missing}")
        pytest.skip(missing)
    with scratch_dir(f"{worker_name()}-tls") as scratch:
        certificates = scratch / "certificates"
        authority = make_authority(certificates, "facts-test-ca")
        stranger = make_authority(certificates, "stranger-ca")
        cert, key = make_server_certificate(authority, certificates, "server", "IP:127.0.0.1")
        with embedded_servers(scratch / "servers", tls=ServerTls(cert, key, authority.cert_file)) as servers:
            yield TlsServers(servers, authority, stranger)
