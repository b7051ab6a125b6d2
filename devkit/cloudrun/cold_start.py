"""A cold start, timed from outside the instance and from its own log.

The instance runs with PYTHONPROFILEIMPORTTIME, so Python itself writes each import's time to its
log; the rest is what the front sees: the spawn, the first accepted connection (Cloud Run's TCP
startup probe) and the first answer. The first Postgres and Redis connections are paid inside the
first request: the function's own request lines give its time for the first request and for the
next one, and the difference is what the first one paid for its connections (and lazy imports).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared.request_line import latency_s

# "import time: self [us] | cumulative | imported package"; a top-level import has no indent.
_TOP_LEVEL_IMPORT = re.compile(r"^import time:\s+\d+ \|\s+(\d+) \| (\S.*)$")
PROFILE_IMPORTS_ENV = {"PYTHONPROFILEIMPORTTIME": "1"}


def _top_level_imports_s(log_text: str) -> float:
    total = 0
    for line in log_text.splitlines():
        found = _TOP_LEVEL_IMPORT.match(line)
        if found:
            total += int(found.group(1))
    return total / 1e6


def request_latencies_s(log_text: str) -> list[float]:
    """The function's own time for each request it answered, in order, from its JSON request lines."""
    found = []
    for line in log_text.splitlines():
        if not line.startswith("{"):
            continue
        try:
            record: Any = json.loads(line)
        except ValueError:
            continue
        latency = latency_s(record)
        if latency is not None:
            found.append(latency)
    return found


@dataclass
class ColdStart:
    instance: str
    revision: int
    started: float  # time.time() of the spawn, for the page
    process_s: float | None = None  # spawn to listening, less the imports: the interpreter and gunicorn
    imports_s: float | None = None
    first_answer_s: float | None = None  # listening to the first answer through the front
    connections_s: float | None = None  # the first request's extra time in the function
    total_s: float | None = None  # spawn to the first answer
    outcome: str = "starting"  # starting, served, ready (started ahead of its traffic), failed
    ahead: bool = False  # a new revision's instance, started before any request for it

    def listened(self, spawn_to_listen_s: float, log_path: Path) -> None:
        self.imports_s = _top_level_imports_s(_read(log_path))
        self.process_s = max(0.0, spawn_to_listen_s - self.imports_s)
        if self.ahead:  # no request waited for it: its cold start ends here
            self.total_s, self.outcome = spawn_to_listen_s, "ready"

    def answered(self, spawn_to_answer_s: float, spawn_to_listen_s: float) -> None:
        self.total_s = spawn_to_answer_s
        self.first_answer_s = max(0.0, spawn_to_answer_s - spawn_to_listen_s)
        self.outcome = "served"

    def settle_connections(self, log_path: Path) -> None:
        """Once the instance has answered twice: the first request's extra time over the second's."""
        if self.connections_s is None:
            latencies = request_latencies_s(_read(log_path))
            if len(latencies) >= 2:
                self.connections_s = max(0.0, latencies[0] - latencies[1])

    def view(self) -> dict[str, Any]:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in self.__dict__.items()}


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""
