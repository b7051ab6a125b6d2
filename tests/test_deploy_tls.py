"""The deploy's TLS hunk: each server's CA, a secret of its own, granted to the runtime account,
pinned like the URLs, and mounted as a file at the path the URLs of docs/deploy.md name."""

from __future__ import annotations

import re
from pathlib import Path

from .support.deploy_copy import dry_run, flags

DOCS = Path(__file__).resolve().parents[1] / "docs" / "deploy.md"
POSTGRES_CA = "/secrets/postgres-ca/server-ca.pem"
REDIS_CA = "/secrets/redis-ca/server-ca.pem"
TLS_SECRETS = {"DATABASE_CA_SECRET": "facts-database-ca", "REDIS_CA_SECRET": "facts-redis-ca"}


def test_the_ca_secrets_are_granted_pinned_and_mounted_where_the_urls_look(tmp_path):
    run = dry_run(tmp_path, **TLS_SECRETS, DATABASE_CA_SECRET_VERSION="4", REDIS_CA_SECRET_VERSION="5")
    granted = sorted(argv[3] for argv in run.named("secrets", "add-iam-policy-binding"))
    assert granted == sorted(["facts-database-url", "facts-redis-url", *TLS_SECRETS.values()])
    job = flags(run.named("run", "jobs", "deploy")[0])["set-secrets"].split(",")
    assert f"{POSTGRES_CA}=facts-database-ca:4" in job and not any(REDIS_CA in entry for entry in job)
    for argv in run.named("run", "deploy"):
        mounted = flags(argv)["set-secrets"].split(",")
        assert {f"{POSTGRES_CA}=facts-database-ca:4", f"{REDIS_CA}=facts-redis-ca:5"} <= set(mounted), mounted


def test_without_ca_secrets_nothing_is_mounted(tmp_path):
    run = dry_run(tmp_path)
    assert not any("/secrets/" in arg for argv in run.commands for arg in argv)


def test_the_documented_urls_name_the_mounted_files():
    text = DOCS.read_text()
    assert re.search(rf"sslmode=verify-full&sslrootcert=%s' [^\n]*\n\s*{re.escape(POSTGRES_CA)}", text)
    assert re.search(rf"rediss://:%s@%s:%s/0\?ssl_ca_certs=%s' [^\n]*{re.escape(REDIS_CA)}", text)
