"""bench/noise.py's verdict: a run on a busy machine is marked noisy, with its reasons; the report says so."""

from __future__ import annotations

from bench import noise, report


def _round(number: int, idle_before: float, others_during: float) -> dict:
    return {"round": number, "before": {"loadavg_1m": 0.2, "idle_pct": idle_before},
            "during": {"loadavg_1m": 1.9, "idle_pct": 3.0, "others_pct": others_during}}  # fmt: skip


def test_a_quiet_run_is_quiet() -> None:
    verdict = noise.verdict([0.4, 0.5, 0.6], [_round(1, 99.0, 1.0), _round(2, 97.0, 5.0)])
    assert verdict["noisy"] is False and verdict["reasons"] == []
    assert report.noise_lines({"noise": verdict})[0].startswith("QUIET run")


def test_a_busy_start_a_busy_gap_or_others_working_during_a_round_each_make_it_noisy() -> None:
    busy_start = noise.verdict([1.13, 1.58, 1.69], [_round(1, 99.0, 1.0)])
    busy_gap = noise.verdict([0.3], [_round(1, 99.0, 1.0), _round(2, 60.0, 1.0)])
    others = noise.verdict([0.3], [_round(1, 99.0, 12.0)])
    assert busy_start["reasons"] == ["load average 1.13 at the start (quiet: under 1)"]
    assert busy_gap["reasons"] == ["round 2: 60% idle before it (quiet: 85% or more)"]
    assert others["reasons"] == ["round 1: others used 12% during it (quiet: 5%)"]
    lines = report.noise_lines({"noise": others})
    assert lines[0].startswith("NOISY RUN") and "others used 12%" in lines[1]


def test_a_results_file_from_before_says_it_was_not_recorded() -> None:
    assert "not recorded" in report.noise_lines({})[0]
