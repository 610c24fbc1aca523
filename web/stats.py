"""Rolling figures this web process keeps in memory for the alert rules: customer read latency
(p95), read-cache hits and misses, and error answers (5xx, 429), over the last few minutes.
Per process by design: each web process judges the reads it served."""
from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from pipeline.service import percentile

READ_WINDOW_SECONDS = 300.0
CACHE_WINDOW_SECONDS = 600.0
ERROR_WINDOW_SECONDS = 300.0
MAX_SAMPLES = 20_000


@dataclass(frozen=True)
class Snapshot:
    reads: int
    read_p95_seconds: float | None
    cache_hits: int
    cache_misses: int
    server_errors: int
    rate_limited: int


class RollingStats:
    """Thread-safe windows of recent samples; old samples fall out as time passes."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._reads: deque[tuple[float, float]] = deque(maxlen=MAX_SAMPLES)
        self._cache: deque[tuple[float, bool]] = deque(maxlen=MAX_SAMPLES)
        self._errors: deque[tuple[float, int]] = deque(maxlen=MAX_SAMPLES)

    def record_read(self, seconds: float, *, is_cache_hit: bool | None = None, status: int = 200) -> None:
        """A read's latency, whether the read cache had it (when given) and its answer's status:
        one lock, one clock."""
        with self._lock:
            now = self._clock()
            self._reads.append((now, seconds))
            if is_cache_hit is not None:
                self._cache.append((now, is_cache_hit))
            if status >= 500 or status == 429:
                self._errors.append((now, status))

    def record_cache(self, *, is_hit: bool) -> None:
        with self._lock:
            self._cache.append((self._clock(), is_hit))

    def record_status(self, status: int) -> None:
        if status >= 500 or status == 429:
            with self._lock:
                self._errors.append((self._clock(), status))

    def snapshot(self) -> Snapshot:
        now = self._clock()
        with self._lock:
            reads = sorted(int(s * 1_000_000) for t, s in self._reads if now - t <= READ_WINDOW_SECONDS)
            cache = [hit for t, hit in self._cache if now - t <= CACHE_WINDOW_SECONDS]
            errors = [status for t, status in self._errors if now - t <= ERROR_WINDOW_SECONDS]
        p95 = percentile(reads, 95)
        return Snapshot(
            reads=len(reads),
            read_p95_seconds=None if p95 is None else p95 / 1_000_000,
            cache_hits=sum(1 for hit in cache if hit),
            cache_misses=sum(1 for hit in cache if not hit),
            server_errors=sum(1 for status in errors if status >= 500),
            rate_limited=sum(1 for status in errors if status == 429),
        )

    def reset(self) -> None:
        with self._lock:
            self._reads.clear()
            self._cache.clear()
            self._errors.clear()


STATS = RollingStats()
