"""Where a cold start's time goes: a fresh process timed stage by stage up to its first answer.

    python -m bench.cold_start --child TARGET SOURCE    # what bench/run.py runs, once per sample

The child is what the functions-framework CLI does before its first answer, with each stage timed
apart: the interpreter's start (from the parent's launch to the child's first line), the imports
(functions-framework, the function's module and what it imports: `create_app`), the first Postgres
connection (the instance's pool), the schema check, and the first answer (`GET /` through the app,
which still makes its statement, and for /today its Redis client). `hello` has no store, and the
hand-written references connect within their first answer: their connection and schema stages are
0. The CLI's own gunicorn start is the rest of bench/run.py's launch-to-first-200 figure.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

STAGES = ("interpreter", "imports", "first_connection", "schema_check", "first_answer")
OUR_FUNCTIONS = ("random_fact", "today_fact")  # the references connect within their first answer
ROOT = Path(__file__).resolve().parents[1]


def child(target: str, source: str) -> dict[str, float]:
    """Run in the fresh process: the stages' ends, as wall-clock times (time.time, comparable across processes)."""
    marks = {"started": time.time()}
    import functions_framework

    app = functions_framework.create_app(target, source)
    marks["imports"] = time.time()
    if target in OUR_FUNCTIONS:
        from shared import instance

        state = instance.state(migrate=False)
        state.store.pool.prefill(1)
        marks["first_connection"] = time.time()
        instance.ensure_schema(state)
        marks["schema_check"] = time.time()
    status = app.test_client().get("/").status_code
    marks["first_answer"] = time.time()
    if status != 200:
        raise SystemExit(f"{target} answered {status}")
    return marks


def breakdown_ms(target: str, source: Path, env: Mapping[str, str]) -> dict[str, float]:
    """One fresh process's stages, in milliseconds."""
    launched = time.time()
    done = subprocess.run(
        [sys.executable, "-m", "bench.cold_start", "--child", target, str(source)],
        env=dict(env), cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"cold start breakdown of {target} failed: {done.stderr[-2000:]}")
    marks = json.loads(done.stdout.strip().splitlines()[-1])
    previous, out = launched, {}
    for stage, mark in (("interpreter", marks["started"]), *((s, marks.get(s)) for s in STAGES[1:])):
        if mark is None:  # hello: no store
            out[f"{stage}_ms"] = 0.0
            continue
        out[f"{stage}_ms"] = round((mark - previous) * 1000, 1)
        previous = mark
    return out


def median_breakdown_ms(target: str, source: Path, env: Mapping[str, str], repeats: int) -> dict[str, float]:
    samples = [breakdown_ms(target, source, env) for _ in range(repeats)]
    return {key: statistics.median(sample[key] for sample in samples) for key in samples[0]}


def describe(breakdown: Mapping[str, float]) -> str:
    return ", ".join(f"{stage.replace('_', ' ')} {breakdown[f'{stage}_ms']:.0f}" for stage in STAGES) + " ms"


def main() -> int:
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        marks = child(sys.argv[2], sys.argv[3])
        sys.stdout.flush()
        os.write(1, ("\n" + json.dumps(marks) + "\n").encode())
        return 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main())
