#!/usr/bin/env python3
"""Choose the harness's gunicorn configuration (WORKERS x THREADS) by measurement, on loopback only.

    python -m bench.server_config                       # 3 rounds x 5 s x 7 configurations x 2 targets, ~4 min
    python -m bench.server_config --rounds 5 --duration 10 --configs 1x8,2x4,4x2

One embedded Postgres and Redis (durable, migrated and seeded: bench/stage.py, as for bench/run.py) and one
`harness.py serve --servers external` per configuration (WORKERS and THREADS in its environment).
wrk (32 connections, 2 threads) loads /random then /today of each configuration in turn, round after
round, so that slow drifts of the machine hit every configuration alike. Medians per configuration
and target; the recommendation is the best sum of /random and /today throughput, each normalised to
the best configuration's median. Writes bench/server_config.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from bench import report, stage
from bench.meter import Meter, describe
from bench.stage import log
from bench.wrkload import LoadSettings, run_wrk

ROOT = Path(__file__).resolve().parents[1]
OUTPUT = ROOT / "bench" / "server_config.json"
# 1x8 is functions-framework's own default on 2 cores (1 worker, 4 threads per CPU).
DEFAULT_CONFIGS = "1x8,1x16,2x2,2x4,2x8,3x4,4x2"
TARGETS = ("random", "today")
CONNECTIONS, WRK_THREADS = 32, 2


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Measure gunicorn WORKERSxTHREADS configurations of the harness.")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (at least 3)")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per load run (default 5)")
    parser.add_argument("--configs", default=DEFAULT_CONFIGS, help=f"WORKERSxTHREADS list (default {DEFAULT_CONFIGS})")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    args.rounds = max(3, args.rounds)
    if args.duration < 1:
        parser.error("--duration must be at least 1 second (wrk's resolution)")
    try:
        pairs = [tuple(int(n) for n in item.lower().split("x")) for item in args.configs.split(",") if item.strip()]
        args.configs = {f"{w}x{t}": (w, t) for w, t in pairs if w > 0 and t > 0}
    except ValueError:
        parser.error("--configs takes WORKERSxTHREADS items, e.g. 1x8,2x4")
    if not args.configs or len(args.configs) != len(pairs):
        parser.error("--configs: distinct WORKERSxTHREADS items, both at least 1")
    return args


def measure(wrk: str, workdir: Path, args: argparse.Namespace) -> dict[str, dict[str, list[dict]]]:
    """Every run, by configuration then target; every server stopped on return."""
    with stage.staged(workdir) as on:
        urls: dict[str, str] = {}
        for label, (workers, threads) in args.configs.items():
            log(f"starting the harness with WORKERS={workers} THREADS={threads} ...")
            urls[label] = on.start_harness(label, WORKERS=str(workers), THREADS=str(threads)).base
        meter = Meter(wrk, on.cpu_roots())
        load = LoadSettings(args.duration, CONNECTIONS, WRK_THREADS)
        for label in args.configs:  # opens every thread's connections and prepares statements first
            for target in TARGETS:
                run_wrk(wrk, f"{urls[label]}/{target}", LoadSettings(1.0, CONNECTIONS, WRK_THREADS))
        runs: dict[str, dict[str, list[dict]]] = {label: {t: [] for t in TARGETS} for label in args.configs}
        for round_no in range(1, args.rounds + 1):
            for label in args.configs:
                for target in TARGETS:
                    run = meter.run(label, f"{urls[label]}/{target}", load)
                    run["round"] = round_no
                    runs[label][target].append(run)
                    log(f"round {round_no}/{args.rounds} {label:>5} /{target:<6} {describe(run)}")
    return runs


def analyse(runs: dict[str, dict[str, list[dict]]], args: argparse.Namespace) -> dict[str, Any]:
    summary = {label: {t: report.summarise(by_target[t]) for t in TARGETS} for label, by_target in runs.items()}
    best_rps = {t: max(s[t]["rps"] for s in summary.values()) for t in TARGETS}
    configs: dict[str, Any] = {}
    for label, s in summary.items():
        # The same normalisation per round: the spread of these is the noise of the score.
        rounds = [sum(runs[label][t][i]["rps"] / best_rps[t] for t in TARGETS) for i in range(args.rounds)]
        workers, threads = args.configs[label]
        configs[label] = {"workers": workers, "threads": threads, **s,
                          "score": sum(s[t]["rps"] / best_rps[t] for t in TARGETS),
                          "round_scores": [round(x, 3) for x in rounds]}  # fmt: skip
    best = max(configs, key=lambda label: configs[label]["score"])
    shape = stage.app_shape()
    current = f"{shape.workers}x{shape.threads}"
    verdict: dict[str, Any] = {"config": current, "measured": current in configs}
    if current in configs:
        mine, top = configs[current], configs[best]
        verdict["score_gap_pct"] = round(100 * (1 - mine["score"] / top["score"]), 1)
        pairs = zip(top["round_scores"], mine["round_scores"], strict=True)
        verdict["rounds_won_by_best"] = sum(a > b for a, b in pairs)
        verdict["rounds"] = args.rounds
        # Within noise: the default's best round reaches the recommended configuration's worst round.
        verdict["within_noise"] = current == best or max(mine["round_scores"]) >= min(top["round_scores"])
    return {
        "configs": configs,
        "recommendation": {"config": best, "WORKERS": configs[best]["workers"], "THREADS": configs[best]["threads"],
                           "score": configs[best]["score"],
                           **{f"{t}_{k}": configs[best][t][k] for t in TARGETS for k in ("rps", "p99_ms")}},
        "current_default": verdict,
    }  # fmt: skip


def table(result: dict[str, Any]) -> str:
    best, current = result["recommendation"]["config"], result["current_default"]["config"]
    lines = [
        f"{'config':<9}{'/random req/s':>14}{'p50':>8}{'p99':>8}{'/today req/s':>14}{'p50':>8}{'p99':>8}"
        f"{'CPU/req r|t':>13}{'others':>8}{'score':>7}  rounds",
    ]
    for label, c in sorted(result["configs"].items(), key=lambda item: -item[1]["score"]):
        r, t = c["random"], c["today"]
        mark = ("*" if label == best else " ") + ("d" if label == current else " ")
        cpu_ms = f"{r.get('app_cpu_ms_per_req', 0):.2f}|{t.get('app_cpu_ms_per_req', 0):.2f}"
        others = (r.get("others_pct", 0) + t.get("others_pct", 0)) / 2
        rounds = " ".join(f"{x:.3f}" for x in c["round_scores"])
        lines.append(
            f"{label + mark:<9}{r['rps']:>14.0f}{r['p50_ms']:>8.1f}{r['p99_ms']:>8.1f}{t['rps']:>14.0f}"
            f"{t['p50_ms']:>8.1f}{t['p99_ms']:>8.1f}{cpu_ms:>13}{others:>7.0f}%{c['score']:>7.3f}  {rounds}"
        )
    rec, verdict = result["recommendation"], result["current_default"]
    lines += [
        "medians; latencies in ms; CPU/req = the harness's CPU ms per request; others = CPU share not ours;",
        "score = /random + /today req/s, each divided by the best median (2.000 = best at both). * best, d default",
        f"recommendation: WORKERS={rec['WORKERS']} THREADS={rec['THREADS']} ({rec['config']}): "
        f"/random {rec['random_rps']:.0f} req/s p99 {rec['random_p99_ms']:.1f} ms, "
        f"/today {rec['today_rps']:.0f} req/s p99 {rec['today_p99_ms']:.1f} ms",
    ]
    if not verdict["measured"]:
        lines.append(f"current default {verdict['config']}: not among the measured configurations")
    elif verdict["config"] != rec["config"]:
        noise = "within noise of it" if verdict["within_noise"] else "worse beyond the rounds' spread"
        lines.append(f"current default {verdict['config']}: score {verdict['score_gap_pct']}% below the best, which"
                     f" beat it in {verdict['rounds_won_by_best']}/{verdict['rounds']} rounds: {noise}")  # fmt: skip
    else:
        lines.append(f"current default {verdict['config']} is the best measured")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    info, runs = stage.measured("facts-server-config-", lambda wrk, workdir: measure(wrk, workdir, args))
    result = analyse(runs, args)
    settings = {"rounds": args.rounds, "duration_s": args.duration, "connections": CONNECTIONS,
                "wrk_threads": WRK_THREADS, "order": [f"{c}/{t}" for c in args.configs for t in TARGETS]}  # fmt: skip
    doc = {"machine": info, "settings": settings, **result, "runs": runs}
    args.output.write_text(json.dumps(doc, indent=2) + "\n")
    print(table(result))
    print(f"\nwritten: {args.output}")
    non2xx = sum(run["non2xx"] for by_target in runs.values() for rs in by_target.values() for run in rs)
    return 0 if non2xx == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
