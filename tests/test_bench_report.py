"""bench/report.py's ratios: each round's function against the reference run just before it."""

from __future__ import annotations

import pytest

from bench import report


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
