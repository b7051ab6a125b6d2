"""The benchmark's headline figures as an SVG chart (docs/bench.svg), drawn from a results document.

    python -m bench.chart [bench/results.json] [docs/bench.svg]   # re-draw without running the benchmark

Three panels: each function's throughput over its reference's, its CPU per request over the
reference's (both with every round's ratio as a dot beside the median bar, and the target as a
dashed line), and the Postgres ceilings of the two view statements, whose ratio has a target too.
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS_FILE = ROOT / "bench" / "results.json"
CHART_FILE = ROOT / "docs" / "bench.svg"

FUNCTIONS = (("/random", "random"), ("/today", "today"))
# (panel title, ratio key per function as "{}" of FUNCTIONS' key, target, whether higher is better)
RATIO_PANELS = (
    ("Throughput ÷ hand-written reference\n(higher is better)", "{}_to_handwritten", 1.0, True),
    ("CPU per request ÷ hand-written reference\n(lower is better)", "{}_cpu_to_handwritten", 1.0, False),
)
STORAGE_TARGET = 0.5  # today's view statement must reach at least half of random's ceiling
BAR_COLOURS = ("#4c72b0", "#dd8452")
HEADROOM = 1.35  # room above the tallest bar for its value and the target's label


def _ratio_panel(axes: Any, doc: dict[str, Any], title: str, key: str, target: float, higher: bool) -> None:
    ratios, rounds = doc.get("ratio", {}), doc.get("ratio_rounds", {})
    highest = target
    for position, ((_, name), colour) in enumerate(zip(FUNCTIONS, BAR_COLOURS, strict=True)):
        value = ratios.get(key.format(name))
        if value is None:  # CPU is not measured everywhere; say so instead of drawing a zero
            axes.text(position, 0.05, "not measured", ha="center", rotation=90)
            continue
        axes.bar(position, value, width=0.6, color=colour)
        axes.annotate(f"{value:.2f}", (position, value), ha="center", va="bottom", xytext=(0, 3),
                      textcoords="offset points")  # fmt: skip
        per_round = rounds.get(key.format(name), [])
        axes.plot([position + 0.2] * len(per_round), per_round, "o", color="black", markersize=3, alpha=0.6)
        highest = max(highest, value, *per_round)
    axes.axhline(
        target, color="crimson", linestyle="--", linewidth=1, label=f"target {'≥' if higher else '≤'} {target:g}"
    )
    axes.legend(loc="upper left", framealpha=1)
    axes.set_xticks(range(len(FUNCTIONS)), [label for label, _ in FUNCTIONS])
    axes.set_xlim(-0.5, 1.5)
    axes.set_ylim(0, highest * HEADROOM)
    axes.set_title(title)


def _storage_panel(axes: Any, doc: dict[str, Any]) -> None:
    tps = doc.get("storage_tps", {})
    statements = (("today's view", "today"), ("random's view", "random"))
    for position, ((_, name), colour) in enumerate(zip(statements, BAR_COLOURS[::-1], strict=True)):
        value = tps.get(name, 0.0)
        axes.bar(position, value, width=0.6, color=colour)
        axes.annotate(f"{value:,.0f}", (position, value), ha="center", va="bottom", xytext=(0, 3),
                      textcoords="offset points")  # fmt: skip
    # The target as a line: today's statement must reach this share of random's ceiling.
    floor = STORAGE_TARGET * tps.get("random", 0.0)
    axes.axhline(
        floor, color="crimson", linestyle="--", linewidth=1, label=f"target: today ≥ {STORAGE_TARGET:g} × random"
    )
    axes.legend(loc="upper left", framealpha=1)
    axes.set_xticks(range(len(statements)), [label for label, _ in statements])
    axes.set_xlim(-0.5, 1.5)
    axes.set_ylim(0, max(1.0, *tps.values()) * HEADROOM)
    axes.set_ylabel("statements/s (pgbench)")
    ratio = doc.get("ratio", {}).get("today_storage_to_random_storage")
    axes.set_title(f"Postgres ceilings\n(today ÷ random {'n/a' if ratio is None else f'{ratio:.2f}'})")


def quiet_mark(doc: dict[str, Any]) -> str:
    """The title's first words where the run was not a quiet one (bench/noise.py)."""
    verdict = doc.get("noise")
    if verdict is None:
        return "QUIET OR NOISY NOT RECORDED: "
    return "NOISY RUN (busy machine): " if verdict["noisy"] else ""


def chart_svg(doc: dict[str, Any]) -> str:
    """The chart as SVG text. The same document always gives the same bytes, so a re-drawn chart
    changes in git only when its figures do."""
    from matplotlib import rc_context  # imported here: only drawing the chart needs matplotlib
    from matplotlib.figure import Figure

    # For this chart only, not the process: fixed ids instead of random ones; text kept as text
    # (smaller, searchable, in the reader's font); the font the layout is measured with.
    with rc_context({"svg.hashsalt": "facts-api-bench", "svg.fonttype": "none", "font.family": "DejaVu Sans"}):
        return _draw(Figure(figsize=(11, 3.8), layout="constrained"), doc)


def _draw(figure: Any, doc: dict[str, Any]) -> str:
    ratio_axes, cpu_axes, storage_axes = figure.subplots(1, 3)
    for axes, (title, key, target, higher) in zip((ratio_axes, cpu_axes), RATIO_PANELS, strict=True):
        _ratio_panel(axes, doc, title, key, target, higher)
    _storage_panel(storage_axes, doc)
    machine = doc.get("machine", {})
    rounds = doc.get("settings", {}).get("rounds", "?")
    figure.suptitle(
        f"{quiet_mark(doc)}facts-api benchmark, {str(machine.get('date', ''))[:10]}, fast paths "
        f"{doc.get('settings', {}).get('fast_paths', '?')}, {machine.get('cpu_count', '?')} CPUs, "
        f"{rounds} rounds: bars are medians of per-round ratios, dots single rounds",
        color="crimson" if quiet_mark(doc) else "black",
    )
    out = io.StringIO()
    figure.savefig(out, format="svg", metadata={"Date": None, "Creator": None})
    return out.getvalue()


def write_chart(doc: dict[str, Any], path: Path = CHART_FILE) -> Path:
    path.write_text(chart_svg(doc))
    return path


def main(argv: list[str]) -> int:
    results = Path(argv[0]) if argv else RESULTS_FILE
    target = Path(argv[1]) if len(argv) > 1 else CHART_FILE
    print(f"written: {write_chart(json.loads(results.read_text()), target)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
