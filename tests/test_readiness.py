"""The readiness path (shared/readiness.py) that Cloud Run's startup probe and the deploy's smoke
request ask: it counts no view, writes no request line, takes at most one pooled Postgres
connection, and answers 503 with Retry-After while Postgres cannot be reached."""

from __future__ import annotations

import pytest

from devkit.servers.ports import free_port
from shared import instance
from shared.readiness import READY_PATH

VIEWS = "SELECT coalesce(sum(views), 0) FROM fact_views"


@pytest.mark.parametrize("client", ["random_client", "today_client"])
def test_the_probe_counts_no_view_and_takes_one_pooled_connection(request, client, db, fresh_instance, caplog):
    functions = request.getfixturevalue(client)
    before = db.run(VIEWS)[0][0]
    for _ in range(3):
        response = functions.get(READY_PATH)
        assert response.status_code == 200
        assert response.get_json() == {"status": "ready", "postgres": "ok", "redis": "ok"}
        assert response.headers["Cache-Control"] == "no-store"
    assert db.run(VIEWS)[0][0] == before
    assert instance.state(migrate=False).store.pool.open_connections == 1
    assert not [r for r in caplog.records if r.name == "facts.requests"]  # a probe is no request of the API
    assert functions.get("/").status_code == 200 and db.run(VIEWS)[0][0] == before + 1  # the path is what differs


def test_the_probe_answers_503_without_postgres_and_reports_redis(random_client, servers, monkeypatch, fresh_instance):
    monkeypatch.setenv("DATABASE_URL", f"postgresql://facts:x@127.0.0.1:{free_port()}/facts")
    monkeypatch.setenv("REDIS_URL", f"redis://127.0.0.1:{free_port()}/0")
    instance.reset()
    response = random_client.get(READY_PATH)
    assert response.status_code == 503 and response.headers["Retry-After"] == "2"
    assert response.get_json() == {"status": "not_ready", "postgres": "down", "redis": "down"}
    assert "x@" not in response.get_data(as_text=True)

    monkeypatch.setenv("DATABASE_URL", servers.database_url)  # Postgres back, Redis still gone: ready
    instance.reset()
    response = random_client.get(READY_PATH)
    assert response.status_code == 200 and response.get_json()["redis"] == "down"


def test_the_probe_takes_only_get_and_head(random_client, fresh_instance):
    assert random_client.head(READY_PATH).status_code == 200
    assert random_client.post(READY_PATH).status_code == 405
