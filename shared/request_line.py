"""The request line: one log record per answered request, from the functions and the harness alike.

Its fields ride on the record as `record.fields`; the formatters and the harness's live log read
the keys from here, and `logs.log_request` is the one place that makes a line.
"""

from __future__ import annotations

from typing import Any, Final, NotRequired, TypedDict, TypeGuard

# The functional form, as the trace key is no identifier (and mypy wants the keys as literals).
RequestLine = TypedDict(
    "RequestLine",
    {
        "function": str,  # the function's target, or "harness" for the harness's own paths
        "method": str,
        "path": str,  # as the client asked for it (with the harness's mount point)
        "status": int,
        "latency_ms": float,  # to the hundredth
        "cache": NotRequired[str],  # "hit" or "miss": what the day cache did (/today)
        "logging.googleapis.com/trace": NotRequired[str],  # TRACE_KEY
    },
)

TRACE_KEY: Final = "logging.googleapis.com/trace"
"""Cloud Logging's trace field: it groups a request's lines under its trace."""

REQUEST_LINE_KEYS: tuple[str, ...] = tuple(RequestLine.__annotations__)
"""Every key a request line may carry, in the order a line lists them."""

_REQUIRED = frozenset(RequestLine.__required_keys__)


def is_request_line(fields: Any) -> TypeGuard[RequestLine]:
    """Whether a record's `fields` are a request line (other records may carry fields too)."""
    return isinstance(fields, dict) and _REQUIRED <= fields.keys()


def latency_s(fields: Any) -> float | None:
    """A request line's latency in seconds (say, read back from an instance's JSON log); None for
    anything that is not a request line."""
    return float(fields["latency_ms"]) / 1000 if is_request_line(fields) else None
