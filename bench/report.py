"""The results document (bench/results.json) and its human-readable table."""

from __future__ import annotations

import os
import statistics
from typing import Any

from bench import noise


def median_of(runs: list[dict], key: str) -> float:
    return statistics.median(run[key] for run in runs)


def summarise(runs: list[dict]) -> dict[str, Any]:
    cpu_fields = ("app_cpu_ms_per_req", "db_cpu_ms_per_req", "others_pct")
    return {
        **{field: median_of(runs, field) for field in cpu_fields if all(field in run for run in runs)},
        "rps": median_of(runs, "rps"),
        "p50_ms": median_of(runs, "p50_ms"),
        "p90_ms": median_of(runs, "p90_ms"),
        "p99_ms": median_of(runs, "p99_ms"),
        "non2xx": sum(run["non2xx"] for run in runs),
        "socket_errors": sum(run["socket_errors"] for run in runs),
        "requests": sum(run["requests"] for run in runs),
    }


# Each ratio of a target to its reference: (target, reference, per-run metric). Throughput ratios:
# 1.0 means as fast as the reference; CPU ratios: 1.0 means as much CPU per request.
RATIOS = {
    # Against the hand-written references (one table, one primary-key update): the targets.
    "random_to_handwritten": ("random", "handwritten_random", "rps"),
    "today_to_handwritten": ("today", "handwritten_today", "rps"),
    "random_cpu_to_handwritten": ("random", "handwritten_random", "app_cpu_ms_per_req"),
    "today_cpu_to_handwritten": ("today", "handwritten_today", "app_cpu_ms_per_req"),
    # The project's own statements with nothing around them, over the hand-written: what the schema costs.
    "minimal_random_to_handwritten": ("minimal_random", "handwritten_random", "rps"),
    "minimal_today_to_handwritten": ("minimal_today", "handwritten_today", "rps"),
    "random_to_minimal": ("random", "minimal_random", "rps"),
    "today_to_minimal": ("today", "minimal_today", "rps"),
    "random_to_hello": ("random", "hello", "rps"),
    "today_to_hello": ("today", "hello", "rps"),
    # The same functions behind the local harness (information; the targets are the above).
    "random_harness_to_minimal": ("random_harness", "minimal_random", "rps"),
    "today_harness_to_minimal": ("today_harness", "minimal_today", "rps"),
    "random_cpu_to_minimal": ("random", "minimal_random", "app_cpu_ms_per_req"),
    "today_cpu_to_minimal": ("today", "minimal_today", "app_cpu_ms_per_req"),
}


def paired_ratios(runs: dict[str, list[dict]], target: str, reference: str, metric: str) -> list[float]:
    """`target` over `reference`, round by round. Within a round the function runs right after its
    reference, so a drift of this shared machine over the minutes of a run (a neighbour's load, the
    host's clock) moves both alike and cancels in their ratio; a ratio of the two medians would set
    one round's reference against another round's function."""
    return [t[metric] / r[metric] for t, r in zip(runs[target], runs[reference], strict=True)]


def _by_target(summary: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Each run's medians, by metric then by target; CPU figures only where measured."""

    def measured(field: str) -> dict[str, Any]:
        return {name: s[field] for name, s in summary.items() if field in s}

    return {
        "rps": measured("rps"),
        "p50_ms": measured("p50_ms"),
        "p99_ms": measured("p99_ms"),
        "non2xx": measured("non2xx"),
        "socket_errors": measured("socket_errors"),
        "app_cpu_ms_per_req": measured("app_cpu_ms_per_req"),
        "db_cpu_ms_per_req": measured("db_cpu_ms_per_req"),
        "others_cpu_pct": measured("others_pct"),
    }


def _add_ratios(doc: dict[str, Any], runs: dict[str, list[dict]]) -> None:
    doc.update({"ratio": {}, "ratio_rounds": {}, "ratio_of_medians": {}})
    for key, (target, reference, metric) in RATIOS.items():
        if not all(metric in run for run in runs[target] + runs[reference]):
            continue  # CPU not measured
        per_round = paired_ratios(runs, target, reference, metric)
        doc["ratio"][key] = statistics.median(per_round)
        doc["ratio_rounds"][key] = per_round
        doc["ratio_of_medians"][key] = median_of(runs[target], metric) / median_of(runs[reference], metric)


def _add_cold_start(doc: dict[str, Any], cold_start: dict[str, Any]) -> None:
    doc["cold_start_ms"] = {key: v["median_ms"] for key, v in cold_start.items()}
    doc["cold_start_samples_ms"] = {key: v["samples_ms"] for key, v in cold_start.items()}
    doc["cold_start_listening_ms"] = {key: v["listening_median_ms"] for key, v in cold_start.items()}
    doc["cold_start_breakdown_ms"] = {key: v["breakdown_ms"] for key, v in cold_start.items()}
    # Sample i of every target was taken in round i (bench/run.py), so each ratio is paired by round.
    samples = {key: [{"first_200": ms} for ms in v["samples_ms"]] for key, v in cold_start.items()}
    for key, (target, reference) in COLD_START_RATIOS.items():
        if target in samples and reference in samples:
            per_round = paired_ratios(samples, target, reference, "first_200")
            doc["ratio"][key] = statistics.median(per_round)
            doc["ratio_rounds"][key] = [round(r, 3) for r in per_round]


COLD_START_RATIOS = {
    "cold_start_random_to_hello": ("random", "hello"),
    "cold_start_today_to_hello": ("today", "hello"),
    "cold_start_random_to_handwritten": ("random", "handwritten_random"),
    "cold_start_today_to_handwritten": ("today", "handwritten_today"),
}


def _add_storage(doc: dict[str, Any], storage_runs: dict[str, list[dict]]) -> None:
    doc["storage_tps"] = {name: median_of(runs, "tps") for name, runs in storage_runs.items()}
    doc["storage_failed"] = {name: sum(run["failed"] for run in runs) for name, runs in storage_runs.items()}
    # Each round's today run beside the random run right after it, so a drift of the machine cancels.
    per_round = paired_ratios(storage_runs, "today", "random", "tps")
    doc["ratio"]["today_storage_to_random_storage"] = statistics.median(per_round)
    doc["ratio_rounds"]["today_storage_to_random_storage"] = per_round
    doc["storage_runs"] = storage_runs


def _add_scale(doc: dict[str, Any], scale_runs: dict[str, list[dict]]) -> None:
    for metric, by_target in _by_target({key: summarise(runs) for key, runs in scale_runs.items()}).items():
        doc[metric].update(by_target)


def _add_tests(doc: dict[str, Any], tests: dict[str, Any]) -> None:
    startup = tests["startup"]
    doc["startup_s"] = {kind: v["startup_s"] for kind, v in startup.items() if "startup_s" in v}
    doc["startup_seed_s"] = {kind: v["seed_s"] for kind, v in startup.items() if "seed_s" in v}
    doc["startup_skipped"] = {kind: v["skipped"] for kind, v in startup.items() if "skipped" in v}
    suite_result = tests["suite"]
    # Keys always present; null when not measured (--quick, --skip-suite).
    doc["suite_s"] = {"default_lane": None, "all": None}  # ./dev test, and ./dev test --all (both lanes)
    doc["suite_s"].update({key: v["wall_s"] for key, v in suite_result.items() if isinstance(v, dict)})
    doc["suite_summary"] = {key: v["summary"] for key, v in suite_result.items() if isinstance(v, dict)}
    if "skipped" in suite_result:
        doc["suite_skipped"] = suite_result["skipped"]


def document(info: dict[str, Any], measured: dict[str, Any], settings: dict[str, Any]) -> dict[str, Any]:
    """The results as written to bench/results.json: medians by metric, then by target (`rps.hello`)."""
    runs = measured["runs"]
    doc: dict[str, Any] = {"machine": info, "settings": settings}
    doc.update(_by_target({name: summarise(target_runs) for name, target_runs in runs.items()}))
    _add_ratios(doc, runs)
    _add_cold_start(doc, measured["cold_start"])
    # The function tier's CPU per request (what each instance spends; Postgres and Redis apart).
    doc["cpu_ms_per_req"] = dict(doc["app_cpu_ms_per_req"])
    _add_storage(doc, measured["storage"])
    _add_scale(doc, measured["scale"]["runs"])
    _add_tests(doc, measured["tests"])
    doc["machine"]["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    doc["noise"] = noise.verdict(info.get("loadavg_at_start", []), measured.get("noise_rounds", []))
    doc["runs"] = runs
    doc["scale"] = measured["scale"]
    # The headline figures also flat ("rps.hello"), for tools that look a figure up by one key.
    for metric in ("rps", "p50_ms", "p99_ms", "ratio", "ratio_of_medians", "cold_start_ms", "suite_s", "startup_s",
                   "storage_tps", "cpu_ms_per_req"):  # fmt: skip
        doc.update({f"{metric}.{target}": value for target, value in doc[metric].items()})
    return doc


LABELS = {
    "hello": "hello (ref)",
    "handwritten_random": "handwritten_random (ref)",
    "minimal_random": "minimal_random (ref)",
    "random": "/random",
    "random_harness": "/random (harness)",
    "handwritten_today": "handwritten_today (ref)",
    "minimal_today": "minimal_today (ref)",
    "today": "/today",
    "today_harness": "/today (harness)",
}


def _fmt(value: Any, spec: str, unit: str = "") -> str:
    return "n/a" if value is None else f"{value:{spec}}{unit}"


def _row(doc: dict[str, Any], name: str) -> str:
    """req/s, p50, p99, non-2xx, then (when measured) CPU per request and the share others used."""
    text = f"{doc['rps'][name]:>8.0f}{doc['p50_ms'][name]:>9.2f}{doc['p99_ms'][name]:>9.2f}{doc['non2xx'][name]:>9}"
    if name in doc.get("app_cpu_ms_per_req", {}):
        app, db, others = doc["app_cpu_ms_per_req"][name], doc["db_cpu_ms_per_req"][name], doc["others_cpu_pct"][name]
        text += f"{'':>15}{app:>6.2f}{db:>6.2f}{others:>11.0f}%"
    return text


# The headline figures: (label, ratio key, target or None for information, whether higher is better).
# The targets are against the hand-written references; the same-statement references (minimal_*)
# and the Postgres ceiling are shown beside them.
HEADLINE = (
    ("/random / handwritten_random (throughput)", "random_to_handwritten", 1.0, True),
    ("/today / handwritten_today (throughput)", "today_to_handwritten", 1.0, True),
    ("CPU per request, /random / handwritten_random", "random_cpu_to_handwritten", 1.0, False),
    ("CPU per request, /today / handwritten_today", "today_cpu_to_handwritten", 1.0, False),
    ("minimal_random / handwritten_random (the schema)", "minimal_random_to_handwritten", None, True),
    ("minimal_today / handwritten_today (the schema)", "minimal_today_to_handwritten", None, True),
    ("/random / minimal_random (throughput)", "random_to_minimal", None, True),
    ("/today / minimal_today (throughput)", "today_to_minimal", None, True),
    ("CPU per request, /random / minimal_random", "random_cpu_to_minimal", None, False),
    ("CPU per request, /today / minimal_today", "today_cpu_to_minimal", None, False),
    ("Postgres ceiling, today's view statement / random's", "today_storage_to_random_storage", 0.5, True),
)


# With the fast paths off (`--fast-paths off`) the functions run the libraries' own paths, whose
# target is within 10 % of the references' throughput rather than at them.
STOCK_THROUGHPUT_TARGET = 0.9


def _target(doc: dict[str, Any], key: str, target: float | None) -> float | None:
    stock = doc.get("settings", {}).get("fast_paths") == "off"
    return STOCK_THROUGHPUT_TARGET if stock and key in ("random_to_handwritten", "today_to_handwritten") else target


def _detail(doc: dict[str, Any], key: str) -> str:
    if key == "today_storage_to_random_storage":
        return f"{doc['storage_tps']['today']:.0f} vs {doc['storage_tps']['random']:.0f} statements/s"
    target, reference, metric = RATIOS[key]
    if metric == "rps":
        return f"{doc['rps'][target]:.0f} vs {doc['rps'][reference]:.0f} req/s"
    cpu = doc.get("cpu_ms_per_req", {})
    return f"{cpu.get(target, 0):.3f} vs {cpu.get(reference, 0):.3f} ms"


def headline(doc: dict[str, Any]) -> list[str]:
    """Each headline figure with its target, where it has one, and its rounds' range."""
    lines = [f"{'figure':<54}{'this run':>9}  {'target':<8}{'':<8}detail"]
    for label, key, target_of_fast, higher in HEADLINE:
        target = _target(doc, key, target_of_fast)
        value = doc["ratio"].get(key)
        if value is None:
            lines.append(f"{label:<54}{'n/a':>9}")
            continue
        if target is None:
            goal, verdict = "", "(info)"
        else:
            goal = f"{'>=' if higher else '<='} {target:g}"
            verdict = "met" if (value >= target if higher else value <= target) else "NOT met"
        lines.append(f"{label:<54}{value:>8.2f}x  {goal:<8}{verdict:<8}{_detail(doc, key)}")
        rounds = doc.get("ratio_rounds", {}).get(key)
        if rounds:
            spread = f"rounds {min(rounds):.2f}-{max(rounds):.2f}"
            of_medians = doc.get("ratio_of_medians", {}).get(key)
            more = f", ratio of the medians {of_medians:.2f}" if of_medians is not None else ""
            lines.append(f"{'':<81}{spread}{more}")
    return lines


def noise_lines(doc: dict[str, Any]) -> list[str]:
    """The run's verdict, quiet or noisy, with its reasons."""
    verdict = doc.get("noise")
    if verdict is None:
        return ["quiet or noisy: not recorded (a run from before the benchmark measured it)"]
    if not verdict["noisy"]:
        limits = verdict["thresholds"]
        return [
            f"QUIET run: load average under {limits['loadavg_1m']:g} at the start; before every round "
            f"{limits['idle_pct']:g}% idle or more, during it others' CPU {limits['others_pct']:g}% or less"
        ]
    return [
        "NOISY RUN: the machine was busy, so every server starved alike and the ratios close in on 1;"
        " do not record it. Why:",
        *(f"  {reason}" for reason in verdict["reasons"]),
    ]


def cold_start_lines(doc: dict[str, Any]) -> list[str]:
    """The cold start against hello's (target: within 1.25x) and the hand-written reference's (medians
    of ratios paired by round), and its stages in a fresh process."""
    ratio, rounds, stages = doc["ratio"], doc["ratio_rounds"], doc.get("cold_start_breakdown_ms", {})

    def paired(key: str) -> str:
        spread = rounds[key]
        return f"{ratio[key]:.2f} (rounds {min(spread):.2f}-{max(spread):.2f})"

    lines = [f"  {key} / hello {paired(f'cold_start_{key}_to_hello')} (target <= {COLD_START_TARGET:g});"
             f"  / handwritten_{key} {paired(f'cold_start_{key}_to_handwritten')}"
             for key in ("random", "today") if f"cold_start_{key}_to_handwritten" in ratio]  # fmt: skip
    lines += [f"  {key:<6} stages (ms): " + ", ".join(f"{k.removesuffix('_ms')} {v:.0f}" for k, v in parts.items())
              for key, parts in stages.items()]  # fmt: skip
    return lines


COLD_START_TARGET = 1.25


def _heading(doc: dict[str, Any]) -> list[str]:
    s, m = doc["settings"], doc["machine"]
    return [
        f"facts-api benchmark  {m['date']}  commit {m['git_commit']}  {m['cpu_count']} CPUs  Python {m['python']}",
        f"gunicorn {m['gunicorn_workers']} workers x {m['gunicorn_threads']} threads (gthread);  "
        f"wrk {s['wrk_threads']} threads, {s['connections']} connections, {s['duration_s']:g} s per run, "
        f"{s['rounds']} alternating rounds (medians)",
        f"load average at start {m['loadavg_at_start']}, at end {m['loadavg_at_end']} (see the verdict above)",
    ]


def _targets(doc: dict[str, Any]) -> list[str]:
    return [
        f"{'target':<26}{'req/s':>8}{'p50 ms':>9}{'p99 ms':>9}{'non-2xx':>9}"
        f"   CPU ms/req: {'app':>6}{'db':>6}   others' CPU",
        # A run recorded before a target was added has none of its figures.
        *(f"{label:<26}{_row(doc, name)}" for name, label in LABELS.items() if name in doc["rps"]),
    ]


def _storage_and_ratios(doc: dict[str, Any]) -> list[str]:
    r, tps = doc["ratio"], doc["storage_tps"]
    return [
        f"Postgres alone (pgbench, {doc['settings']['connections']} connections, prepared, the functions' own"
        " statements):",
        f"  today's view statement {tps['today']:8.0f} statements/s   random's {tps['random']:8.0f}"
        f"   ratio {r['today_storage_to_random_storage']:.2f} (median of per-round ratios)",
        "",
        "CPU ms/req: CPU time of the target's gunicorn (app) and of Postgres + Redis (db) per answered request;",
        "others' CPU: share of the machine used by processes not ours during the runs (noise).",
        "",
        "throughput ratios (1.00 = as fast as the reference; medians of the per-round ratios):",
        f"  /random / minimal_random {r['random_to_minimal']:.2f}"
        f"    /today / minimal_today {r['today_to_minimal']:.2f}",
        f"  /random / hello          {r['random_to_hello']:.2f}    /today / hello         {r['today_to_hello']:.2f}",
        f"  behind the harness: /random / minimal_random {r['random_harness_to_minimal']:.2f}"
        f"    /today / minimal_today {r['today_harness_to_minimal']:.2f}",
    ]


def _cold_start_and_catalogue(doc: dict[str, Any]) -> list[str]:
    lines = [
        "cold start, functions-framework CLI launch -> first 200 on GET / (median ms; in brackets: port listening):",
        "  "
        + ", ".join(f"{k} {v:.0f} ({doc['cold_start_listening_ms'][k]:.0f})" for k, v in doc["cold_start_ms"].items()),
        *cold_start_lines(doc),
        "",
        "/random by catalogue size ('en'; alternating, medians):",
    ]
    for key, label in (("random_10k", "10,000 facts"), ("random_1m", "1,000,000 facts")):
        if key in doc["p50_ms"]:
            lines.append(f"  {label:<20}{_row(doc, key)}")
    return lines


def _suite(doc: dict[str, Any]) -> list[str]:
    lines = ["test suite:"]
    for kind, seconds in doc["startup_s"].items():
        seed = doc["startup_seed_s"].get(kind)
        extra = f" (+ migrate/seed {seed:.2f} s)" if seed is not None else ""
        lines.append(f"  per-worker start-up, {kind:<10} {seconds:6.2f} s{extra}")
    for kind, why in doc.get("startup_skipped", {}).items():
        lines.append(f"  per-worker start-up, {kind:<10} not measured: {why}")
    for key, seconds in doc["suite_s"].items():
        if seconds is None:
            continue
        command = "./dev test" if key == "default_lane" else "./dev test --all"
        lines.append(f"  {command:<16} --servers=embedded  {seconds:6.1f} s   {doc['suite_summary'].get(key, '')}")
    if doc.get("suite_skipped"):
        lines.append(f"  suite wall time not measured ({doc['suite_skipped']})")
    return lines


def _warnings(doc: dict[str, Any]) -> list[str]:
    bad = {k: v for k, v in doc["non2xx"].items() if v}
    bad.update({f"storage {k}": v for k, v in doc["storage_failed"].items() if v})
    errors = {k: v for k, v in doc["socket_errors"].items() if v}
    lines = []
    if bad:
        lines += ["", f"WARNING: non-2xx responses: {bad}"]
    if errors:
        lines += ["", f"WARNING: socket errors/timeouts: {errors}"]
    return lines


def table(doc: dict[str, Any]) -> str:
    """The results for a reader: the headline figures against their targets, then every measurement."""
    lines = [
        "",
        *noise_lines(doc),
        "",
        "headline figures (each the median of one run's per-round ratios; a round runs a function right"
        " after its references):",
        *headline(doc),
        "",
        *_heading(doc),
        "",
        *_targets(doc),
        "",
        *_storage_and_ratios(doc),
        "",
        *_cold_start_and_catalogue(doc),
        "",
        *_suite(doc),
        *_warnings(doc),
    ]
    return "\n".join(lines)
