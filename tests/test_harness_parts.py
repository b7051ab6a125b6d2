"""The harness's parts answered in-process: the dashboard's data from this worker's real Postgres and
Redis (devharness/dashboard_data.py), /healthz (devharness/app.py), and how functions/ becomes
routes (devharness/routes.py)."""

from __future__ import annotations

import json
import locale
import sys
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from werkzeug.test import Client

from devharness import app, dashboard_data, routes
from devharness.dashboard import DashboardSetup
from shared import instance
from shared.cache import today_key
from shared.config import parse_database_url
from shared.postgres import connect

DAY = date(2031, 5, 17)


def test_todays_facts_are_the_days_choices_by_language_with_their_views(servers: Any) -> None:
    store = instance.state().store
    de, en = store.of_the_day(DAY, "de"), store.of_the_day(DAY, "en")
    store.of_the_day(DAY, "en")
    assert de is not None and en is not None
    assert dashboard_data.todays_facts(store.pool, DAY) == [
        {"language": "de", "fact_id": de.fact_id, "fact": de.fact, "views": 1},
        {"language": "en", "fact_id": en.fact_id, "fact": en.fact, "views": 2},
    ]
    assert dashboard_data.todays_facts(store.pool, date(2031, 5, 18)) == []


def test_the_most_viewed_are_ordered_by_views_then_id_and_limited(db: Any) -> None:
    store = instance.state().store
    ids = ["00000000000000a2", "00000000000000a1", "00000000000000a3"]
    for views, fact_id in zip((3, 2, 2), ids, strict=True):
        for _ in range(views):
            store.view_external(fact_id, f"Fact {fact_id}.", "en", "test")
    found = dashboard_data.most_viewed(store.pool, limit=2)
    assert found == [
        {"fact_id": "00000000000000a2", "language": "en", "fact": "Fact 00000000000000a2.", "views": 3},
        {"fact_id": "00000000000000a1", "language": "en", "fact": "Fact 00000000000000a1.", "views": 2},
    ]
    assert [row["fact_id"] for row in dashboard_data.most_viewed(store.pool)] == ids  # no unviewed fact
    assert dashboard_data.MOST_VIEWED == 10


def test_catalogue_sizes_are_the_stored_counts_by_language(db: Any) -> None:
    stored = {language: int(n) for language, n in db.run("SELECT language, count(*) FROM facts GROUP BY language")}
    assert dashboard_data.catalogue_sizes(instance.state().store.pool) == stored


def test_todays_cache_keys_show_each_cached_language_with_its_ttl_and_fact(redis_client: Any) -> None:
    client, prefix = instance.state().cache.client, instance.state().settings.cache_prefix
    en, de, fr = (today_key(prefix, language, DAY) for language in ("en", "de", "fr"))
    redis_client.set(en, json.dumps({"fact_id": "00000000000000e1"}), ex=600)
    redis_client.set(de, "not json", ex=90)
    redis_client.set(fr, json.dumps(["a list"]), ex=30)
    found = dashboard_data.todays_cache_keys(client, prefix, ("en", "de", "fr", "it"), DAY)
    assert [(row["key"], row["fact_id"]) for row in found] == [(en, "00000000000000e1"), (de, None), (fr, None)]
    assert [row["ttl_s"] for row in found] == pytest.approx([600, 90, 30], abs=5)
    assert all(type(row["ttl_s"]) is int for row in found)


def test_health_is_200_while_postgres_answers_and_names_each_check(servers: Any) -> None:
    assert app.health() == (200, {"status": "ok", "postgres": "ok", "redis": "ok"})


def test_health_says_what_is_misconfigured_without_the_url(servers: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    instance.reset()
    monkeypatch.setenv("DATABASE_URL", "mysql://app:hunter22@db/facts")
    try:
        status, body = app.health()
    finally:
        monkeypatch.undo()
        instance.reset()
    assert status == 503 and body["status"] == "down" and "DATABASE_URL" in body["error"]
    assert "hunter22" not in body["error"]


def test_build_app_serves_the_functions_with_or_without_the_dashboard(servers: Any) -> None:
    plain = app.build_app()
    assert [r.path for r in plain.routes] == ["/random", "/today"] and plain.dashboard is None
    setup = DashboardSetup("external", "the suite's servers", "127.0.0.1")
    with_dashboard = app.build_app(setup)
    assert with_dashboard.dashboard is not None and with_dashboard.dashboard.setup is setup
    live_log = with_dashboard.dashboard.requests
    assert live_log is not None
    live_log.detach()  # it collects this process's lines: let go before the next test
    assert [f["path"] for f in with_dashboard.dashboard.functions()] == ["/random", "/today"]


def _functions(folder: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder


HTTP = "import functions_framework\n\n@functions_framework.http\ndef {}(request):\n    return 'ok'\n"


def test_routes_come_from_the_decorated_functions_and_the_table(tmp_path: Path) -> None:
    folder = _functions(
        tmp_path,
        {
            "alpha.py": HTTP.format("alpha"),
            "beta.py": "from functions_framework import http\n\n@http\ndef beta(request):\n    return 'ok'\n",
            "helper.py": "def not_http(request):\n    return 'no'\n\n@other.http\ndef also_not(request):\n    pass\n",
            "broken.py": "def broken(:\n",
            "routes.toml": 'alpha = "/a/"\nbroken = "b"\nmissing = "/m"\n',
        },
    )
    found = [(r.path, r.target, r.source.name) for r in routes.discover(folder)]
    assert found == [("/a", "alpha", "alpha.py"), ("/b", "broken", "broken.py"), ("/beta", "beta", "beta.py")]


def test_a_source_is_read_in_the_coding_it_declares(tmp_path: Path) -> None:
    source = HTTP.format("grusse").replace("'ok'", "'Grüße'")
    (tmp_path / "grusse.py").write_bytes(b"# -*- coding: latin-1 -*-\n" + source.encode("latin-1"))
    assert routes.http_targets(tmp_path / "grusse.py") == ["grusse"]


@pytest.mark.usefixtures("ascii_locale")
def test_sources_and_the_table_in_utf8_are_read_whatever_the_locale(tmp_path: Path) -> None:
    (tmp_path / "grusse.py").write_text("# Grüße\n" + HTTP.format("grusse"), encoding="utf-8")
    (tmp_path / "routes.toml").write_text('# Grüße\ngrusse = "/gruss"\n', encoding="utf-8")
    assert [(r.path, r.target) for r in routes.discover(tmp_path)] == [("/gruss", "grusse")]


@pytest.fixture
def ascii_locale() -> Iterator[None]:
    """Text read without an encoding decodes as ASCII here (the C locale), as on a server with no LANG."""
    if sys.flags.utf8_mode:
        pytest.skip("Python's UTF-8 mode is on (PYTHONUTF8=1, or started in the C locale): the locale decodes nothing")
    before = locale.setlocale(locale.LC_CTYPE)
    locale.setlocale(locale.LC_CTYPE, "C")
    try:
        assert locale.getpreferredencoding(False) == "ANSI_X3.4-1968"
        yield
    finally:
        locale.setlocale(locale.LC_CTYPE, before)


def test_two_functions_claiming_one_path_are_refused(tmp_path: Path) -> None:
    table = 'one = "/x"\ntwo = "x"\n'
    folder = _functions(tmp_path, {"one.py": HTTP.format("one"), "two.py": HTTP.format("two"), "routes.toml": table})
    with pytest.raises(ValueError, match=r"^two.py:two and one.py:one both claim /x$"):
        routes.discover(folder)


def test_the_shipped_functions_are_found_where_the_table_mounts_them() -> None:
    assert [(r.path, r.target) for r in routes.discover()] == [("/random", "random_fact"), ("/today", "today_fact")]
    assert routes.http_targets(routes.FUNCTIONS_DIR / "random_fact.py") == ["random_fact"]


@pytest.mark.usefixtures("fresh_instance")
def test_neither_health_nor_the_dashboard_migrates_a_database(
    scratch_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Migrating is the deploy's step and the first request's: a probe polled every few seconds, or the
    dashboard's refresh, must not start it (on an empty database it would create and seed the schema)."""
    monkeypatch.setenv("DATABASE_URL", scratch_database)
    instance.reset()
    assert app.health() == (200, {"status": "ok", "postgres": "ok", "redis": "ok"})
    dashboard = DashboardSetup("external", "the suite's servers", "127.0.0.1")
    served = app.build_app(dashboard)
    answer = Client(served).get("/_dashboard/api/servers", headers={"Host": "127.0.0.1"})
    assert served.dashboard is not None and served.dashboard.requests is not None
    served.dashboard.requests.detach()
    assert answer.status_code == 200
    with connect(parse_database_url(scratch_database), 5.0, statement_timeout_ms=None) as con:
        assert con.run("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == [[0]]


def test_todays_cache_keys_skip_an_uncached_language_and_go_on(redis_client: Any) -> None:
    client, prefix = instance.state().cache.client, instance.state().settings.cache_prefix
    redis_client.set(today_key(prefix, "de", DAY), json.dumps({"fact_id": "00000000000000d1"}), ex=60)
    found = dashboard_data.todays_cache_keys(client, prefix, ("en", "de"), DAY)
    assert [row["fact_id"] for row in found] == ["00000000000000d1"]


def test_build_app_hands_the_dashboard_the_cloud_run_platform(servers: Any) -> None:
    class Platform:
        def view(self) -> dict[str, Any]:
            return {"mode": "cloud-run"}

        def evict(self, name: str) -> bool:
            return False

        def fault(self, server: str, action: str) -> str:
            return "running"

    served = app.build_app(DashboardSetup("external", "the suite's servers", "127.0.0.1"), Platform())
    assert served.dashboard is not None and served.dashboard.requests is not None
    served.dashboard.requests.detach()
    answer = Client(served).get("/_dashboard/api/platform", headers={"Host": "127.0.0.1"})
    assert json.loads(answer.get_data()) == {"mode": "cloud-run"}


def test_a_route_keeps_its_name_and_a_function_without_a_table_entry_is_at_its_own_name(tmp_path: Path) -> None:
    folder = _functions(tmp_path, {"xenon.py": HTTP.format("xenon"), "beta.py": HTTP.format("beta")})
    assert [r.path for r in routes.discover(folder)] == ["/beta", "/xenon"]  # no routes.toml at all
    (folder / "routes.toml").write_text('xenon = "/Xray/"\nbeta = "Box"\n')
    assert [r.path for r in routes.discover(folder)] == ["/Box", "/Xray"]
