"""wrk, wrapped: one bounded load run against one URL, summarised as a dict."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

LUA_REPORT = Path(__file__).resolve().with_name("wrk_report.lua")
MARKER = "BENCH_JSON "


def ensure_wrk() -> str:
    """The wrk binary; installed with apt when missing and we are root, else a clear error."""
    return ensure_tool(
        "wrk",
        "bench: the load generator wrk is not installed. Install it (Debian/Ubuntu: `sudo apt-get install wrk`, "
        "macOS: `brew install wrk`) and run again.",
    )


def ensure_tool(name: str, missing: str) -> str:
    """The `name` binary (Debian package of the same name); installed with apt when missing and we are
    root, else SystemExit with the message `missing`."""
    found = shutil.which(name)
    if found:
        return found
    if hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get"):
        print(f"{name} not found: installing it with apt-get ...", flush=True)
        _apt_install(name)
        found = shutil.which(name)
        if found:
            return found
    raise SystemExit(missing)


def _apt_install(package: str) -> None:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}

    def install() -> int:
        return subprocess.run(
            ["apt-get", "install", "-y", "-q", package], env=env, capture_output=True, timeout=600
        ).returncode

    # The package lists may be missing on a fresh machine: update them only if the install fails.
    if install() != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, timeout=600)
        install()


@dataclass(frozen=True)
class LoadSettings:
    duration_s: float = 5.0
    connections: int = 32
    threads: int = 2
    # Requests slower than this are counted as timeouts by wrk, so a stall shows as an error.
    timeout_s: float = 5.0


def run_wrk(wrk: str, url: str, load: LoadSettings) -> dict:
    """Load `url` for `load.duration_s` seconds; requests/s, latencies (ms) and error counts."""
    argv = [
        wrk, f"-t{load.threads}", f"-c{load.connections}", f"-d{max(1, round(load.duration_s))}s",
        f"--timeout={load.timeout_s:g}s", "-s", str(LUA_REPORT), url,
    ]  # fmt: skip
    # wrk stops by itself after -d; the timeout only guards against a wedged wrk.
    done = subprocess.run(argv, capture_output=True, text=True, timeout=load.duration_s + 60)
    line = next((text for text in done.stdout.splitlines() if text.startswith(MARKER)), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed on {url} (exit {done.returncode}): {(done.stderr or done.stdout)[-2000:]}")
    raw = json.loads(line[len(MARKER) :])
    seconds = raw["duration_us"] / 1e6
    latency = raw["latency_us"]
    errors = raw["errors"]
    return {
        "url": url,
        "requests": raw["requests"],
        "seconds": round(seconds, 3),
        "rps": raw["requests"] / seconds if seconds else 0.0,
        "p50_ms": latency["p50"] / 1000,
        "p90_ms": latency["p90"] / 1000,
        "p99_ms": latency["p99"] / 1000,
        "max_ms": latency["max"] / 1000,
        "mean_ms": latency["mean"] / 1000,
        "non2xx": raw["non2xx"],
        "non2xx_statuses": raw["non2xx_statuses"].rstrip(","),
        "socket_errors": errors["connect"] + errors["read"] + errors["write"] + errors["timeout"],
        "errors": errors,
    }
