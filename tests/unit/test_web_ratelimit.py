"""Hourly rate limits counted in the (here in-process) coordination store: the limit-th request
passes, the next is refused with Retry-After, windows are per key and expire, costs add up, and a
store that fails lets requests through."""
from __future__ import annotations

from pipeline.coordination import LocalCoordination
from web.ratelimit import charge, customer_key, guest_key


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_limit_th_request_passes_and_the_next_is_refused_with_retry_after():
    clock = Clock()
    store = LocalCoordination(clock=clock)
    verdicts = [charge(store, guest_key("1.2.3.4"), limit=10) for _ in range(11)]
    assert all(v.is_allowed for v in verdicts[:10]) and not verdicts[10].is_allowed
    assert verdicts[9].headers() == {"RateLimit-Limit": "10", "RateLimit-Remaining": "0"}
    clock.now += 600
    refused = charge(store, guest_key("1.2.3.4"), limit=10)
    assert refused.headers()["Retry-After"] == "3000"


def test_windows_are_per_client_and_reset_after_an_hour():
    clock = Clock()
    store = LocalCoordination(clock=clock)
    for _ in range(3):
        charge(store, customer_key("c1"), limit=3)
    assert not charge(store, customer_key("c1"), limit=3).is_allowed
    assert charge(store, customer_key("c2"), limit=3).is_allowed
    clock.now += 3601
    assert charge(store, customer_key("c1"), limit=3).is_allowed


def test_costs_add_up():
    store = LocalCoordination()
    assert charge(store, "k", limit=10, cost=3).used == 3
    assert charge(store, "k", limit=10, cost=8).is_allowed is False


def test_an_unreachable_store_lets_requests_through():
    class Broken(LocalCoordination):
        def incr(self, key, amount=1, *, ttl_seconds=None):
            raise ConnectionError("redis is down")

    verdict = charge(Broken(), "k", limit=1)
    assert verdict.is_allowed
