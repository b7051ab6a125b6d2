"""bench.profile's header says whether its figures come from a quiet machine, by the load at its start."""

from __future__ import annotations

from bench import noise, profile


def test_the_header_calls_a_machine_quiet_only_under_the_benchmarks_load_threshold() -> None:
    assert profile.machine(0.4) == "load average 0.40 at the start: a quiet machine"
    busy = profile.machine(noise.QUIET_LOADAVG)
    assert busy.startswith("load average 1.00 at the start: a busy machine") and "regenerate" in busy
    assert "a quiet machine" in profile.section({}, {}, 10, 0.4)
