"""bench/report.py's ratios (each round's function against the reference run just before it), and
the chart bench/chart.py draws from them."""

from __future__ import annotations

import functools
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from bench import chart, report


def _runs(*rps: float) -> list[dict]:
    return [{"rps": value, "round": number} for number, value in enumerate(rps, 1)]


def test_a_ratio_pairs_each_round_with_the_same_rounds_reference() -> None:
    # The machine slows down over the run; in every round the function is 10 % ahead.
    runs = {"random": _runs(1100, 550, 880), "minimal_random": _runs(1000, 500, 800)}
    assert report.paired_ratios(runs, "random", "minimal_random", "rps") == pytest.approx([1.1, 1.1, 1.1])


def test_rounds_that_do_not_pair_up_are_refused() -> None:
    runs = {"random": _runs(1100, 550), "minimal_random": _runs(1000, 500, 800)}
    with pytest.raises(ValueError):
        report.paired_ratios(runs, "random", "minimal_random", "rps")


def test_the_stock_mode_s_throughput_target_is_0_9_and_the_fast_mode_s_1() -> None:
    doc = {
        **_results(random_to_handwritten=0.92),
        "rps": dict.fromkeys(("random", "handwritten_random", "today", "handwritten_today"), 1.0),
    }
    fast = "\n".join(report.headline({**doc, "settings": {"fast_paths": "on"}}))
    stock = "\n".join(report.headline({**doc, "settings": {"fast_paths": "off"}}))
    assert re.search(r"/random / handwritten_random \(throughput\)\s+0.92x\s+>= 1\s+NOT met", fast)
    assert re.search(r"/random / handwritten_random \(throughput\)\s+0.92x\s+>= 0.9\s+met", stock)
    assert re.search(r"CPU per request, /random / handwritten_random\s+0.98x\s+<= 1\s+met", stock)


# The chart (bench/chart.py, docs/bench.svg): read back from the SVG it writes, panel by panel.
SVG = "{http://www.w3.org/2000/svg}"
BAR_FILLS = ("fill: #4c72b0", "fill: #dd8452")
TARGET_STROKE = "stroke: #dc143c"  # crimson, the dashed target lines


def _results(**ratio: float) -> dict:
    ratios = {"random_to_handwritten": 1.08, "today_to_handwritten": 1.53, "random_cpu_to_handwritten": 0.98,
              "today_cpu_to_handwritten": 0.70, "today_storage_to_random_storage": 0.69, **ratio}  # fmt: skip
    return {
        "machine": {"date": "2026-11-27T07:54:16+00:00", "cpu_count": 2},
        "settings": {"rounds": 3},
        "ratio": ratios,
        "ratio_rounds": {"random_to_handwritten": [0.9, 1.08, 1.4]},
        "storage_tps": {"today": 4701.0, "random": 6645.0},
    }


@functools.cache
def _default_svg() -> str:
    # Drawn once for the tests that read the same results (matplotlib takes ~0.5 s a chart).
    return chart.chart_svg(_results())


def _panels(doc: dict | None = None) -> list[ET.Element]:
    """The chart's panels, of `doc`'s results or (None) of _results()'s."""
    svg = _default_svg() if doc is None else chart.chart_svg(doc)
    root = ET.fromstring(svg)  # noqa: S314 - our own output, not untrusted input
    return [g for g in root.iter(f"{SVG}g") if g.get("id", "").startswith("axes_")]


def _texts(panel: ET.Element) -> list[str]:
    return ["".join(text.itertext()) for text in panel.iter(f"{SVG}text")]


def _ys(path: ET.Element) -> list[float]:
    return [float(y) for y in re.findall(r"[ML] [\d.]+ ([\d.]+)", path.get("d", ""))]


def _bars(panel: ET.Element) -> list[tuple[float, float]]:
    """Each bar's (baseline, top) in SVG units, left to right (y grows downwards)."""
    bars = [path for path in panel.iter(f"{SVG}path") if any(fill in path.get("style", "") for fill in BAR_FILLS)]
    return [(max(_ys(bar)), min(_ys(bar))) for bar in bars]


def _target_y(panel: ET.Element) -> float:
    (line,) = [path for group in panel if group.get("id", "").startswith("line2d")
               for path in group.iter(f"{SVG}path") if TARGET_STROKE in path.get("style", "")]  # fmt: skip
    return _ys(line)[0]


def _dots(panel: ET.Element) -> int:
    return sum(len(group.findall(f".//{SVG}use")) for group in panel if group.get("id", "").startswith("line2d"))


def test_the_chart_has_a_panel_per_figure_with_its_values_and_targets() -> None:
    throughput, cpu, storage = _panels()
    assert {"/random", "/today", "Throughput ÷ hand-written reference", "1.08", "1.53", "target ≥ 1"} <= set(
        _texts(throughput)
    )
    assert {"/random", "/today", "CPU per request ÷ hand-written reference", "0.98", "0.70", "target ≤ 1"} <= set(
        _texts(cpu)
    )
    assert {"today's view", "random's view", "4,701", "6,645", "(today ÷ random 0.69)"} <= set(_texts(storage))
    assert "target: today ≥ 0.5 × random" in _texts(storage)


@pytest.mark.parametrize(
    ("panel", "values", "target"),
    [(0, (1.08, 1.53), 1.0), (1, (0.98, 0.70), 1.0), (2, (4701.0, 6645.0), 0.5 * 6645.0)],
)
def test_bars_and_target_lines_stand_at_their_values(panel: int, values: tuple[float, float], target: float) -> None:
    drawn = _panels()[panel]
    (base, random_top), (_, today_top) = _bars(drawn)
    scale = (base - random_top) / values[0]  # SVG units per unit of the figure
    assert base - today_top == pytest.approx(values[1] * scale, rel=1e-3)
    assert base - _target_y(drawn) == pytest.approx(target * scale, rel=1e-3)


def test_other_values_draw_another_chart() -> None:
    after = _results(random_to_handwritten=0.84, today_cpu_to_handwritten=1.2)
    assert _default_svg() != chart.chart_svg(after)
    throughput, cpu, _ = _panels(after)
    assert "0.84" in _texts(throughput) and "1.08" not in _texts(throughput)
    assert "1.20" in _texts(cpu) and "0.70" not in _texts(cpu)
    (base, random_top), (_, today_top) = _bars(throughput)
    assert (base - random_top) / (base - today_top) == pytest.approx(0.84 / 1.53, rel=1e-3)


def test_every_round_is_a_dot_and_a_figure_not_measured_is_said_so() -> None:
    doc = _results()
    del doc["ratio"]["today_cpu_to_handwritten"]
    throughput, cpu, _ = _panels(doc)
    assert _dots(throughput) == 3  # the three rounds of /random; /today has none recorded
    assert "not measured" in _texts(cpu) and len(_bars(cpu)) == 1


def test_the_same_results_draw_the_same_bytes_and_the_command_writes_them(tmp_path: Path) -> None:
    results = tmp_path / "results.json"
    results.write_text(json.dumps(_results()))
    assert chart.main([str(results), str(tmp_path / "chart.svg")]) == 0
    assert (tmp_path / "chart.svg").read_text() == _default_svg()


def test_a_noisy_run_is_marked_in_the_chart_and_a_quiet_one_is_not() -> None:
    quiet = {**_results(), "noise": {"noisy": False, "reasons": [], "thresholds": {}}}
    noisy = {**_results(), "noise": {"noisy": True, "reasons": ["load average 1.7 at the start"], "thresholds": {}}}
    assert "NOISY RUN" in chart.chart_svg(noisy) and "NOISY" not in chart.chart_svg(quiet)


def test_the_recorded_chart_is_drawn_from_the_recorded_results() -> None:
    # docs/bench.svg and bench/results.json are committed together: the chart must be the results'.
    recorded = json.loads(chart.RESULTS_FILE.read_text())
    assert chart.CHART_FILE.read_text() == chart.chart_svg(recorded), "re-draw it: python -m bench.chart"


def test_a_cold_start_ratio_pairs_each_round_with_the_same_rounds_hello() -> None:
    # Round 2 ran on a slow moment of the machine; within each round random takes 1.2x hello's time.
    cold = {
        key: {"median_ms": 0, "samples_ms": samples, "listening_median_ms": 0, "breakdown_ms": {}}
        for key, samples in {
            "hello": [200, 400, 250],
            "random": [240, 480, 300],
            "handwritten_random": [300, 600, 375],
            "today": [300, 600, 375],
            "handwritten_today": [240, 480, 300],
        }.items()
    }
    doc: dict = {"ratio": {}, "ratio_rounds": {}}
    report._add_cold_start(doc, cold)
    assert doc["ratio"]["cold_start_random_to_hello"] == pytest.approx(1.2)
    assert doc["ratio_rounds"]["cold_start_today_to_hello"] == pytest.approx([1.5, 1.5, 1.5])
    assert doc["ratio"]["cold_start_random_to_handwritten"] == pytest.approx(0.8)
    assert doc["ratio"]["cold_start_today_to_handwritten"] == pytest.approx(1.25)
    lines = "\n".join(report.cold_start_lines(doc))
    assert "random / hello 1.20 (rounds 1.20-1.20) (target <= 1.25)" in lines
