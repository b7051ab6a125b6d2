"""Facts from an upstream API compatible with uselessfacts (`GET {base}/random?language=xx`).

Optional (FACTS_UPSTREAM_URL). The call has a short timeout; when the upstream fails or is slow
the caller falls back to the catalogue, and the breaker keeps an outage from slowing every request.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass

from .breaker import Breaker

log = logging.getLogger(__name__)
UPSTREAM_PAUSE_S = 5.0
_MAX_BODY = 64 * 1024


@dataclass(frozen=True)
class UpstreamFact:
    fact: str
    source: str


class Upstream:
    def __init__(self, base_url: str, timeout_s: float) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.host = urllib.parse.urlsplit(base_url).hostname or "upstream"
        self.breaker = Breaker(f"upstream {self.host}", log, UPSTREAM_PAUSE_S)

    def fetch_random(self, language: str) -> UpstreamFact | None:
        """A fact from the upstream, or None (logged) when it cannot give one in time."""
        if not self.breaker.allows():
            return None
        url = f"{self.base_url}/random?{urllib.parse.urlencode({'language': language})}"
        headers = {"Accept": "application/json", "User-Agent": "facts-api"}
        request = urllib.request.Request(url, headers=headers)  # noqa: S310 - http(s) only, checked in config
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:  # noqa: S310
                body = json.loads(response.read(_MAX_BODY))
            text = body.get("text") if isinstance(body, dict) else None
            if not isinstance(text, str) or not text.strip():
                raise ValueError("no 'text' in the answer")
        except (OSError, ValueError, urllib.error.URLError) as exc:
            reason = "timed out" if isinstance(exc, TimeoutError) or "timed out" in str(exc) else exc.__class__.__name__
            self.breaker.failed(f"{reason}; falling back to the catalogue")
            return None
        self.breaker.succeeded()
        source = body.get("source") if isinstance(body.get("source"), str) and body.get("source") else self.host
        return UpstreamFact(fact=text.strip(), source=str(source)[:200])
