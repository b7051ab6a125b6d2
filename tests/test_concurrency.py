"""Many requests at once: every view counted exactly, and one choice of the day's fact."""

from __future__ import annotations

import http.client
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime
from urllib.parse import urlsplit

import pytest

from devkit.servers.waiting import wait_until
from shared import instance
from shared.config import parse_database_url
from shared.postgres import PostgresPool
from shared.store import FactStore

from .support.servers import WorkerDatabase

SMALL_CATALOGUE = 10


def _get_many(base: str, path: str, count: int, timeout_s: float = 30.0) -> list[tuple[int, dict]]:
    """GET `path` `count` times over one keep-alive connection."""
    parts = urlsplit(base)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout_s)
    answers = []
    try:
        for _ in range(count):
            connection.request("GET", path)
            response = connection.getresponse()
            answers.append((response.status, json.loads(response.read() or b"{}")))
    finally:
        connection.close()
    return answers


def test_random_counts_every_view_exactly_under_32_connections(harness, db):
    db.run("UPDATE fact_counts SET n = :n WHERE language = 'en'", n=SMALL_CATALOGUE)  # hot rows: real contention
    connections, per_connection = 32, 16
    with ThreadPoolExecutor(connections) as pool:
        results = list(pool.map(lambda _: _get_many(harness, "/random", per_connection), range(connections)))
    answers = [a for batch in results for a in batch]
    ok = [body for status, body in answers if status == 200]
    assert len(answers) == connections * per_connection >= 500
    assert len(ok) == len(answers)
    assert db.run("SELECT sum(views) FROM fact_views")[0][0] == len(ok)
    assert {body["fact_id"] for body in ok} <= {
        r[0] for r in db.run("SELECT fact_id FROM facts WHERE language = 'en' AND seq <= 10")
    }


def test_64_concurrent_first_requests_of_the_day_agree_over_http(harness, db):
    start = threading.Barrier(64)

    def first_request(_):
        start.wait(timeout=30)
        return _get_many(harness, "/today", 1)[0]

    with ThreadPoolExecutor(64) as pool:
        answers = list(pool.map(first_request, range(64)))
    assert {status for status, _ in answers} == {200}
    assert len({body["fact_id"] for _, body in answers}) == 1
    assert db.run("SELECT count(*) FROM daily_facts")[0][0] == 1
    # Every view counted once; an answer includes its own view but may miss others still in flight.
    assert db.run("SELECT views FROM fact_views WHERE fact_id = :id", id=answers[0][1]["fact_id"]) == [[64]]
    assert all(1 <= body["views"] <= 64 for _, body in answers)


def test_64_simultaneous_choices_in_postgres_record_exactly_one(servers, db):
    """Many choices at the same moment, without the server's thread limit (a stress test: how many
    of them truly collide depends on the scheduler; the forced interleaving below does not)."""
    pool = PostgresPool(parse_database_url(servers.database_url), size=64, timeout_s=10, statement_timeout_ms=10_000)
    store = FactStore(pool)
    day = date(2033, 1, 1)
    try:
        pool.prefill(64)  # open the connections first, so the barrier releases statements, not connects
        start = threading.Barrier(64)

        def choose(_):
            start.wait(timeout=30)
            return store.of_the_day(day, "en")

        with ThreadPoolExecutor(64) as executor:
            facts = list(executor.map(choose, range(64)))
    finally:
        pool.close()
    assert len({fact.fact_id for fact in facts}) == 1
    assert db.run("SELECT count(*) FROM daily_facts WHERE day = CAST(:d AS date)", d=day.isoformat())[0][0] == 1
    assert sorted(fact.views for fact in facts) == list(range(1, 65))


def _a_backend_waits_on_a_lock(db) -> bool:
    waiting = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
    return db.run(waiting)[0][0] > 0


@pytest.mark.usefixtures("fresh_instance")
@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_a_first_request_that_loses_the_race_answers_the_winners_fact(servers, today_client, db, method):
    """The race forced, not hoped for: a rival transaction records the day's choice and stays open;
    the function's first request of the day starts and must wait on it; then the rival commits.
    The request must answer the rival's fact, and the rival's choice must stay the day's."""
    day = datetime(2035, 6, 1, 12, 0, tzinfo=UTC)
    instance.set_clock(lambda: day)
    # The function picks among seq 1..10; the rival's fact is seq 11, so no pick of its own can match it.
    db.run("UPDATE fact_counts SET n = 10 WHERE language = 'en'")
    rival_fact = db.run("SELECT fact_id FROM facts WHERE language = 'en' AND seq = 11")[0][0]
    rival = WorkerDatabase(servers.database_url)
    executor = ThreadPoolExecutor(1)
    try:
        rival.run("BEGIN")
        rival.run(
            "INSERT INTO daily_facts (day, language, fact_id) VALUES (CAST(:day AS date), 'en', :fact_id)",
            day=day.date().isoformat(),
            fact_id=rival_fact,
        )
        answer = executor.submit(today_client.open, "/", method=method)

        def request_waits_for_the_rival():
            assert answer.done() or _a_backend_waits_on_a_lock(db)

        wait_until(request_waits_for_the_rival, 10, "the function's request to wait for the rival's choice")
        rival.run("COMMIT")
        response = answer.result(timeout=10)
    finally:
        executor.shutdown(wait=False)
        rival.close()
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.headers["ETag"] == f'W/"{rival_fact}-{day.date().isoformat()}"'
    if method == "GET":
        body = response.get_json()
        assert (body["fact_id"], body["views"]) == (rival_fact, 1)
    chosen = db.run("SELECT fact_id FROM daily_facts WHERE day = CAST(:day AS date)", day=day.date().isoformat())
    assert chosen == [[rival_fact]]
