"""The pool has a connection for every thread of the server, however the function is started:
here by the functions-framework CLI with THREADS unset, as `functions-framework --target
random_fact` runs it (four threads per CPU in one worker, functions_framework/_http/gunicorn.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from devkit.servers.ports import start_on_free_port
from devkit.servers.processes import spawn, terminate
from devkit.servers.waiting import NotReady, ServerExited, wait_until
from shared.config import FRAMEWORK_THREADS_PER_CPU, parse_database_url
from shared.postgres import connect

from .support.plain_http import get as http_get

ROOT = Path(__file__).resolve().parents[1]


def _start(port: int, env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    cli = Path(sys.executable).parent / "functions-framework"
    argv = [str(cli), "--target", "random_fact", "--source", str(ROOT / "functions" / "random_fact.py")]
    with open(log_path, "ab") as log:
        process = spawn([*argv, "--host", "127.0.0.1", "--port", str(port)], log, None, signal.SIGTERM, env=env)

    def answers() -> None:
        if process.poll() is not None:
            raise ServerExited(f"functions-framework exited with {process.returncode}")
        if http_get(f"http://127.0.0.1:{port}/")[0] != 200:
            raise NotReady("no 200 yet")

    try:
        wait_until(answers, 60, "functions-framework", lambda: log_path.read_text(errors="replace")[-3000:])
    except BaseException:
        terminate(process, signal.SIGTERM)
        raise
    return process


@contextmanager
def framework_cli(env: dict[str, str]) -> Iterator[str]:
    log_path = Path(tempfile.mkstemp(prefix="facts-ff-", suffix=".log")[1])
    started: list[tuple[subprocess.Popen[bytes], int]] = []
    try:
        start_on_free_port(lambda port: started.append((_start(port, env, log_path), port)))
        yield f"http://127.0.0.1:{started[-1][1]}/"
    finally:
        if started:
            terminate(started[-1][0], signal.SIGTERM, grace_s=10)
        log_path.unlink(missing_ok=True)


def test_the_cli_s_default_threads_each_get_a_connection(servers):
    threads = FRAMEWORK_THREADS_PER_CPU * (os.cpu_count() or 1)
    env = {key: value for key, value in os.environ.items() if key not in ("THREADS", "WORKERS", "FACTS_POOL_SIZE")}
    # Statements wait on the lock below for as long as the test needs, not the deployed 1.5 s.
    env.update(servers.environ(), FACTS_STATEMENT_TIMEOUT_MS="20000")
    settings = parse_database_url(servers.database_url)
    with framework_cli(env) as url, connect(settings, 10.0, statement_timeout_ms=None) as holder:
        holder.run("BEGIN")
        holder.run("LOCK TABLE facts IN SHARE MODE")  # every view now waits, holding its connection
        answers: list[int] = []
        clients = [threading.Thread(target=lambda: answers.append(http_get(url)[0])) for _ in range(threads)]
        for client in clients:
            client.start()
        watcher = connect(settings, 10.0, statement_timeout_ms=None)
        waiting = (
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
            " AND backend_type = 'client backend'"
        )

        def all_wait() -> None:
            count = watcher.run(waiting)[0][0]
            if count < threads:
                raise NotReady(f"{count} of {threads} requests wait in Postgres (the rest queue for a connection)")

        try:
            wait_until(all_wait, 15, "every thread's statement in Postgres", lambda: "")
        finally:
            watcher.close()
            holder.run("ROLLBACK")
            for client in clients:
                client.join(timeout=20)
    assert answers == [200] * threads
