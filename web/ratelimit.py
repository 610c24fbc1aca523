"""Hourly rate limits on customer reads, counted in the coordination store: Redis (shared by
every web process) when REDIS_URL is set, in process otherwise. A fixed window per client that
starts at its first request; lookups that find nothing cost more than successful ones."""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from pipeline.coordination import Coordination

logger = logging.getLogger(__name__)

WINDOW_SECONDS = 3600


@dataclass(frozen=True)
class Verdict:
    is_allowed: bool
    limit: int
    used: int
    retry_after: int  # seconds until the window resets (meaningful when refused)

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.used)

    def headers(self) -> dict[str, str]:
        """Rate-limit headers for the answer (Retry-After only when refused)."""
        headers = {"RateLimit-Limit": str(self.limit), "RateLimit-Remaining": str(self.remaining)}
        if not self.is_allowed:
            headers["Retry-After"] = str(self.retry_after)
        return headers


def guest_key(address: str | None) -> str:
    return f"ratelimit:guest:{address or 'unknown'}"


def customer_key(customer_id: str) -> str:
    return f"ratelimit:customer:{customer_id}"


def verdict_of(used: int, limit: int, ttl_seconds: float | None, *, window_seconds: int = WINDOW_SECONDS) -> Verdict:
    """The verdict for a window that holds `used` units and ends in `ttl_seconds` (None: unknown)."""
    retry_after = 0
    if used > limit:
        left = ttl_seconds if ttl_seconds is not None else window_seconds
        retry_after = min(window_seconds, max(1, math.ceil(left)))
    return Verdict(is_allowed=used <= limit, limit=limit, used=used, retry_after=retry_after)


def open_verdict(limit: int) -> Verdict:
    """The verdict when the count cannot be taken: let through (see `charge`)."""
    return Verdict(is_allowed=True, limit=limit, used=0, retry_after=0)


def charge(coordination: Coordination, key: str, *, limit: int, cost: int = 1,
           window_seconds: int = WINDOW_SECONDS) -> Verdict:
    """Count `cost` units against a key's window; refused once the window holds more than `limit`.

    If the coordination store cannot be reached the request is let through (and logged): the
    limit protects the store, it must not take customer reads down with Redis.
    """
    try:
        used = coordination.incr(key, cost, ttl_seconds=window_seconds)
        left = coordination.ttl(key) if used > limit else None
    except Exception as error:  # redis errors, OSError: fail open
        logger.warning("rate limit %s not counted, coordination store unavailable: %s", key, error)
        return open_verdict(limit)
    return verdict_of(used, limit, left, window_seconds=window_seconds)
