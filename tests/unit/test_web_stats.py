"""The in-process rolling figures behind the alert rules: read p95, cache hits and misses, error
answers, each forgetting samples older than its window."""
from __future__ import annotations

from web.stats import RollingStats


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_p95_of_recent_reads_and_the_cache_and_error_counts():
    clock = Clock()
    stats = RollingStats(clock=clock)
    for ms in range(1, 101):
        stats.record_read(ms / 1000)
    stats.record_cache(is_hit=True)
    stats.record_cache(is_hit=False)
    for status in (200, 404, 429, 500, 503):
        stats.record_status(status)
    snap = stats.snapshot()
    assert snap.reads == 100 and abs(snap.read_p95_seconds - 0.095) < 0.0011
    assert (snap.cache_hits, snap.cache_misses, snap.server_errors, snap.rate_limited) == (1, 1, 2, 1)


def test_old_samples_fall_out_of_their_windows():
    clock = Clock()
    stats = RollingStats(clock=clock)
    stats.record_read(5.0)
    stats.record_status(500)
    stats.record_cache(is_hit=False)
    clock.now = 301
    snap = stats.snapshot()
    assert (snap.reads, snap.read_p95_seconds, snap.server_errors, snap.cache_misses) == (0, None, 0, 1)
    clock.now = 601
    assert stats.snapshot().cache_misses == 0
