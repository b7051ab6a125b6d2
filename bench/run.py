#!/usr/bin/env python3
"""Benchmark the facts functions against minimal reference functions, on loopback only.

    python -m bench.run                 # full run (~6 minutes on 2 cores): prints a table, writes bench/results.json
    python -m bench.run --quick         # smoke run (~1 minute): short loads, no test-suite timing
    python -m bench.run --rounds 5 --duration 10

One embedded Postgres (durable: commits wait for the disk) and Redis serve everything. The two
functions as deployed (each its own functions-framework app, as Cloud Functions runs it), three
reference functions (hello, minimal_random, minimal_today) and the harness (/random, /today behind
its dispatcher) run as separate gunicorn servers with the harness's own configuration, and wrk loads
them in alternation (A B C ..., A B C ...) so that slow drifts of the machine hit all alike.
Then: the functions' view statements on Postgres alone (bench/storage.py: pgbench, today and
random alternating), cold starts of the functions-framework CLI, /random at 10k and 1M facts, and
the test suite's start-up, and the wall and CPU time of both its lanes. Medians everywhere.
"""

from __future__ import annotations

import argparse
import compileall
import contextlib
import json
import statistics
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import chart, cold_start, dataset, handwritten, noise, report, stage, storage, suite
from bench.app_processes import REFERENCE_DIR, cold_start_ms, http_status
from bench.meter import Meter, describe
from bench.stage import log
from bench.wrkload import LoadSettings, run_wrk

ROOT = Path(__file__).resolve().parents[1]
RESULTS_FILE = ROOT / "bench" / "results.json"
# Each served alone by its own functions-framework app under the harness's gunicorn configuration:
# the references, and the two functions as Cloud Functions runs them (no dispatcher in front).
FUNCTION_SERVERS = {  # name -> (target, source file)
    "hello": ("hello", REFERENCE_DIR / "ref_hello.py"),
    "handwritten_random": ("handwritten_random", REFERENCE_DIR / "ref_handwritten.py"),
    "minimal_random": ("minimal_random", REFERENCE_DIR / "ref_minimal.py"),
    "random": ("random_fact", ROOT / "functions" / "random_fact.py"),
    "handwritten_today": ("handwritten_today", REFERENCE_DIR / "ref_handwritten.py"),
    "minimal_today": ("minimal_today", REFERENCE_DIR / "ref_minimal.py"),
    "today": ("today_fact", ROOT / "functions" / "today_fact.py"),
}
# The alternation order of one round: each function right after its two references (the one written
# by hand, the same statements with nothing around them), then the same function behind the local
# harness (its dispatcher and dashboard log hub cost a little more).
ORDER = (
    "hello", "handwritten_random", "minimal_random", "random", "random_harness",
    "handwritten_today", "minimal_today", "today", "today_harness",
)  # fmt: skip
COLD_STARTS = {  # result key -> (target, source file)
    "hello": ("hello", REFERENCE_DIR / "ref_hello.py"),
    "handwritten_random": ("handwritten_random", REFERENCE_DIR / "ref_handwritten.py"),
    "random": ("random_fact", ROOT / "functions" / "random_fact.py"),
    "handwritten_today": ("handwritten_today", REFERENCE_DIR / "ref_handwritten.py"),
    "today": ("today_fact", ROOT / "functions" / "today_fact.py"),
}
SCALES = {"random_10k": 10_000, "random_1m": 1_000_000}
# The app whose CPU a result counts, where it is not the app of the same name.
SERVER_OF = {"random_harness": "harness", "today_harness": "harness", "random_10k": "random", "random_1m": "random"}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Benchmark /random and /today against minimal reference functions.")
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 1 s loads, 1 cold start each, no test-suite timing"
    )
    parser.add_argument(
        "--rounds", type=int, default=None, help="alternating rounds over all targets (at least 3; default 3)"
    )
    parser.add_argument("--duration", type=float, default=None, help="seconds per load run (default 5; --quick: 1)")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument(
        "--cold-rounds", type=int, default=None, help="rounds of cold starts, every target once a round (default 9)"
    )
    parser.add_argument("--skip-suite", action="store_true", help="do not time the test suite")
    parser.add_argument("--output", type=Path, default=RESULTS_FILE)
    parser.add_argument(
        "--fast-paths",
        choices=("on", "off"),
        default="on",
        help="FACTS_FAST_PATHS for the functions (shared/fast); the figures go under results['modes'][fast|stock]",
    )
    args = parser.parse_args(argv)
    args.rounds = max(3, args.rounds or 3)
    args.duration = args.duration or (1.0 if args.quick else 5.0)
    if args.duration < 1:
        parser.error("--duration must be at least 1 second (wrk's resolution)")
    args.repeats = 1 if args.quick else 3
    args.cold_rounds = args.cold_rounds or (1 if args.quick else 9)
    return args


def storage_ceilings(database_url: str, workdir: Path, args: argparse.Namespace) -> dict[str, list[dict]]:
    """The today and random view statements on Postgres alone (bench/storage.py), alternating."""
    from shared.config import parse_database_url
    from shared.postgres import connect

    day = datetime.now(UTC).date()
    with connect(parse_database_url(database_url), 30.0, statement_timeout_ms=None) as con:
        rows = con.run("SELECT fact_id FROM daily_facts WHERE day = :day AND language = 'en'", day=day)
    if not rows:
        raise RuntimeError("the day's fact was not chosen (the harness's /today answers that first)")
    variables = storage.statement_variables(day, "en", str(rows[0][0]))
    load = storage.StorageLoad(max(1, round(args.duration)), args.connections, args.threads)
    return storage.storage_rounds(database_url, variables, args.rounds, load, workdir, log)


def load_rounds(
    meter: Meter, urls: dict[str, str], args: argparse.Namespace, rounds: list[dict[str, Any]]
) -> dict[str, list[dict]]:
    """The alternating rounds; `rounds` gets the machine's state before and during each."""
    load = LoadSettings(args.duration, args.connections, args.threads)
    warmup = LoadSettings(1.0, args.connections, args.threads)
    runs: dict[str, list[dict]] = {name: [] for name in ORDER}
    for round_no in range(1, args.rounds + 1):
        before = noise.before_round()
        for name in ORDER:
            # Right before each measured run, as every target idles while the others run: the pool
            # closes a connection unused for FACTS_POOL_IDLE_TIMEOUT (5 s), so without it each run of
            # /random and /today would open its connections again (a steady load never does). The
            # references keep theirs for ever; they get the same warm-up.
            run_wrk(meter.wrk, urls[name], warmup)
            run = meter.run(name, urls[name], load)
            run["round"] = round_no
            runs[name].append(run)
            log(f"round {round_no}/{args.rounds} {name:<18} {describe(run)}")
        rounds.append(
            {"round": round_no, "before": before, "during": noise.during_round([r[-1] for r in runs.values()])}
        )
        log(f"round {round_no}: {noise.describe_round(rounds[-1])}")
    return runs


def compile_as_deployed() -> None:
    """Bytecode for every source a cold start imports, as the functions-framework buildpack writes it
    at build time (`python3 -m compileall -f -q .`, GoogleCloudPlatform/buildpacks
    cmd/python/functions_framework): a deployed instance never compiles our modules, so no cold start
    here should either, whatever PYTHONDONTWRITEBYTECODE says."""
    for source in (ROOT / "shared", ROOT / "functions", REFERENCE_DIR):
        compileall.compile_dir(source, quiet=1, force=True)


def cold_starts(env: dict[str, str], log_dir: Path, rounds: int, breakdown_repeats: int) -> dict[str, Any]:
    """Each target's launch to its first 200, in rounds that take every target once in turn: a
    cold start lasts a few hundred ms, so a drift of this shared machine (page cache, a neighbour)
    moves one round's targets alike, and a ratio is taken within a round (report.py)."""
    compile_as_deployed()
    samples: dict[str, list[dict[str, float]]] = {key: [] for key in COLD_STARTS}
    for _ in range(rounds):
        for key, (target, source) in COLD_STARTS.items():
            samples[key].append(cold_start_ms(target, source, env, log_dir))
    result: dict[str, Any] = {}
    for key, (target, source) in COLD_STARTS.items():
        first = [s["first_200"] for s in samples[key]]
        result[key] = {
            "median_ms": statistics.median(first),
            "samples_ms": [round(s, 1) for s in first],
            "listening_median_ms": statistics.median(s["listening"] for s in samples[key]),
            "breakdown_ms": cold_start.median_breakdown_ms(target, source, env, breakdown_repeats),
        }
        done = result[key]
        log(f"cold start {key:<18} {done['median_ms']:6.0f} ms to the first 200"
            f" ({done['listening_median_ms']:.0f} ms to listening);"
            f" {cold_start.describe(done['breakdown_ms'])}")  # fmt: skip
    return result


def scale_runs(meter: Meter, database_url: str, random_url: str, args: argparse.Namespace) -> dict[str, Any]:
    """/random with 10k and with 1M facts in 'en', alternating like the main rounds (medians)."""
    from shared.config import parse_database_url
    from shared.postgres import connect

    load = LoadSettings(args.duration, args.connections, args.threads)
    warmup = LoadSettings(1.0, args.connections, args.threads)
    runs: dict[str, list[dict]] = {key: [] for key in SCALES}
    with connect(parse_database_url(database_url), 600.0, statement_timeout_ms=None) as con:
        grown = dataset.set_catalogue_size(con, "en", max(SCALES.values()))
        log(f"catalogue 'en' grown to {grown['size']:,} facts (added {grown['added']:,} in {grown['seconds']} s)")
        for round_no in range(1, args.rounds + 1):
            for key, size in SCALES.items():
                dataset.set_catalogue_size(con, "en", size)
                if round_no == 1:
                    run_wrk(meter.wrk, random_url, warmup)  # pages of the larger working set into the cache
                run = meter.run(key, random_url, load)
                run["round"] = round_no
                runs[key].append(run)
                log(f"round {round_no}/{args.rounds} /random at {size:>9,} facts: {describe(run)}")
    return {"runs": runs, "catalogue": grown}


def bench_servers(wrk: str, workdir: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Everything that needs the benchmark's own Postgres and Redis; all of it stopped on return."""
    out: dict[str, Any] = {}
    with stage.staged(workdir, FACTS_FAST_PATHS=args.fast_paths) as on:
        out["servers_startup_s"] = round(on.servers.startup_s, 2)
        log("starting the harness, the functions and the reference servers ...")
        harness = on.start_harness("harness")
        urls = {"random_harness": harness.base + "/random", "today_harness": harness.base + "/today"}
        http_status(urls["today_harness"], timeout_s=10)  # chooses and caches the day's fact
        handwritten.prepare(on.servers.database_url, on.servers.redis_url)  # their table, the day's id
        for name, (target, source) in FUNCTION_SERVERS.items():
            urls[name] = on.start_function(name, target, source).base + "/"
        meter = Meter(wrk, on.cpu_roots(), SERVER_OF)
        out["noise_rounds"] = []
        out["runs"] = load_rounds(meter, urls, args, out["noise_rounds"])
        log("Postgres alone: the today and random view statements (pgbench) ...")
        out["storage"] = storage_ceilings(on.servers.database_url, workdir, args)
        log("cold starts of the functions-framework CLI ...")
        out["cold_start"] = cold_starts(on.env, on.log_dir, args.cold_rounds, args.repeats)
        out["scale"] = scale_runs(meter, on.servers.database_url, urls["random"], args)
    return out


def measure(wrk: str, workdir: Path, args: argparse.Namespace) -> dict[str, Any]:
    """The app's figures on the benchmark's servers, then the test suite's."""
    measured = bench_servers(wrk, workdir, args)
    measured["tests"] = test_suite(args, workdir / "logs")
    return measured


def test_suite(args: argparse.Namespace, log_dir: Path) -> dict[str, Any]:
    out: dict[str, Any] = {"startup": {}}
    log("per-worker service start-up: embedded ...")
    embedded = out["startup"]["embedded"] = suite.embedded_startup_s(args.repeats)
    log(f"  embedded: {embedded['startup_s']:.2f} s (+ migrate/seed {embedded['seed_s']:.2f} s)")
    log("per-worker service start-up: containers ...")
    try:
        out["startup"]["containers"] = suite.container_startup_s(args.repeats)
    except Exception as exc:  # a broken Docker setup is a finding, not a reason to lose the run
        out["startup"]["containers"] = {"skipped": f"failed: {exc.__class__.__name__}: {str(exc)[:300]}"}
    log(f"  containers: {out['startup']['containers']}")
    if args.quick or args.skip_suite:
        out["suite"] = {"skipped": "--quick" if args.quick else "--skip-suite"}
        return out
    out["suite"] = {}
    for lane in suite.LANES:  # suite_s.default_lane: ./dev test; suite_s.all: ./dev test --all
        log(
            f"test suite, {lane} (./dev test {' '.join(suite.LANES[lane])}, embedded, fast paths {args.fast_paths}) ..."
        )
        timed = out["suite"][lane] = suite.suite_wall_s(lane, log_dir, args.fast_paths)
        log(f"  {lane}: {timed['wall_s']:.1f} s wall, {timed['cpu_s']:.1f} s CPU, {timed['summary']}")
    return out


def with_mode(output: Path, doc: dict[str, Any], fast_paths: str) -> dict[str, Any]:
    """`doc` as the results file's run, kept too under ["modes"]["fast"|"stock"] beside the other
    mode's last run (one run per mode: `--fast-paths on`, then `--fast-paths off`)."""
    modes: dict[str, Any] = {}
    if output.exists():
        with contextlib.suppress(ValueError, AttributeError):
            modes = dict(json.loads(output.read_text()).get("modes") or {})
    modes["fast" if fast_paths == "on" else "stock"] = {key: value for key, value in doc.items() if key != "modes"}
    return {**doc, "modes": modes}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    info, measured = stage.measured("facts-bench-", lambda wrk, workdir: measure(wrk, workdir, args))
    settings = {"rounds": args.rounds, "duration_s": args.duration, "connections": args.connections,
                "wrk_threads": args.threads, "quick": args.quick, "order": list(ORDER),
                "fast_paths": args.fast_paths}  # fmt: skip
    doc = report.document(info, measured, settings)
    args.output.write_text(json.dumps(with_mode(args.output, doc, args.fast_paths), indent=2) + "\n")
    print(report.table(doc))
    # The chart beside the results: docs/bench.svg (shown in the README) for the default results file.
    drawn = chart.write_chart(doc, chart.CHART_FILE if args.output == RESULTS_FILE else args.output.with_suffix(".svg"))
    print(f"\nwritten: {args.output}, {drawn}")
    if doc["noise"]["noisy"]:
        print("NOISY RUN: taken on a busy machine (reasons above); record only a quiet run.")
    return 0 if all(n == 0 for n in doc["non2xx"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
