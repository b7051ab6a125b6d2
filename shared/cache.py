"""The day's fact cached in Redis, as JSON, until the next UTC midnight.

Redis is an optimisation: when it is down every call here returns quickly as a miss, one
warning is logged for the outage (not one per request), and caching resumes by itself.
"""

from __future__ import annotations

import json
import logging
import ssl
from collections.abc import Callable
from datetime import date
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from .breaker import Breaker
from .config import DEFAULT_CACHE_PREFIX

log = logging.getLogger(__name__)

# After a failure Redis is left alone this long, so an outage costs requests nothing.
REDIS_PAUSE_S = 2.0


def today_key(prefix: str, language: str, day: date) -> str:
    """The day's key names the language and the date, so it can never answer for another day."""
    return f"{prefix}:today:{language}:{day.isoformat()}"


def failure_reason(exc: BaseException) -> str:
    """The failure's class, and for a TLS failure what TLS refused (an untrusted certificate, a
    name it does not hold): the one thing an operator must see to fix it. Neither holds a secret."""
    cause: BaseException | None = exc
    seen = set()
    while cause is not None and not isinstance(cause, ssl.SSLError) and id(cause) not in seen:
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    if isinstance(cause, ssl.SSLCertVerificationError):
        return f"{exc.__class__.__name__}, TLS certificate refused: {cause.verify_message}"
    if isinstance(cause, ssl.SSLError):
        return f"{exc.__class__.__name__}, TLS failed: {cause.reason or cause.__class__.__name__}"
    return exc.__class__.__name__


class DayCache:
    def __init__(self, url: str, prefix: str = DEFAULT_CACHE_PREFIX, timeout_s: float = 0.25) -> None:
        self.prefix = prefix
        # redis-py's default retry policy retries a refused connection with back-off, longer than a
        # request may wait: one attempt with a short timeout, and the breaker below, keep requests fast.
        self.client = redis.Redis.from_url(
            url,
            socket_connect_timeout=timeout_s,
            socket_timeout=timeout_s,
            retry=Retry(NoBackoff(), 0),
            health_check_interval=0,
        )
        self.breaker = Breaker("Redis", log, REDIS_PAUSE_S)

    def _guarded(self, command: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run a Redis command unless the breaker is open; a failure opens it. None when skipped or failed."""
        if not self.breaker.allows():
            return None
        try:
            result = command(*args, **kwargs)
        except redis.RedisError as exc:
            self.breaker.failed(failure_reason(exc))
            return None
        self.breaker.succeeded()
        return result

    def get(self, language: str, day: date) -> dict[str, Any] | None:
        raw = self._guarded(self.client.get, today_key(self.prefix, language, day))
        if raw is None:
            return None
        try:
            value = json.loads(raw)
        except ValueError:
            return None  # a foreign or corrupt value: treat as a miss, it is overwritten below
        return value if isinstance(value, dict) and "fact_id" in value else None

    def put(self, language: str, day: date, value: dict[str, Any], ttl_s: int) -> None:
        payload = json.dumps(value, ensure_ascii=False)
        self._guarded(self.client.set, today_key(self.prefix, language, day), payload, ex=max(1, ttl_s))

    def ping(self) -> bool:
        try:
            return bool(self.client.ping())
        except redis.RedisError:
            return False

    def close(self) -> None:
        self.client.close()
