"""bench/cloudrun_overhead.py in a quick mode: it runs end to end and reports every figure."""

from __future__ import annotations

import pytest

from bench import cloudrun_overhead
from devkit.servers.embedded import postgres_bin_dir

pytestmark = pytest.mark.slow  # instances started from the upload set, a scratch Postgres


def test_the_overhead_bench_reports_the_front_and_both_cold_starts(tmp_path) -> None:
    try:
        postgres_bin_dir()
    except FileNotFoundError as exc:
        pytest.skip(f"the bench starts its own Postgres: {exc}")
    figures = cloudrun_overhead.measure(requests=10, cold_starts=1, logs=tmp_path)
    print()
    print(cloudrun_overhead.report(figures))
    assert figures["direct"]["median_ms"] > 0 and figures["through_front"]["median_ms"] > 0
    assert len(figures["cold_start_plain_cli_s"]) == len(figures["cold_start_through_mode_s"]) == 1
    assert all(s > 0 for s in figures["cold_start_plain_cli_s"] + figures["cold_start_through_mode_s"])
