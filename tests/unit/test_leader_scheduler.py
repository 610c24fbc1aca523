"""The production scheduler loop through a Redis outage (issue 18 point 3), on a clock and a
coordination store the test controls: no step raises, the lock is re-taken after Redis comes
back empty, only the lock holder sends, and a send that failed is retried once Redis is back.
tests/e2e/test_scheduler_outage.py runs the same story against a real Redis."""
from __future__ import annotations

from typing import Any

import pendulum
import redis.exceptions
from periodiq import cron

from pipeline.coordination import LocalCoordination
from pipeline.scheduler import LeaderLock, LeaderScheduler


class Clock:
    def __init__(self) -> None:
        self.now = pendulum.datetime(2026, 11, 30, 10, 0, 10, tz="UTC")

    def advance(self, seconds: float) -> None:
        self.now = self.now.add(seconds=seconds)

    def monotonic(self) -> float:
        return self.now.timestamp()


class FlakyRedis(LocalCoordination):
    """The in-process store, made to refuse connections while `is_down`, and to come back empty."""

    def __init__(self, clock: Clock) -> None:
        super().__init__(clock=clock.monotonic)
        self.is_down = False

    def _check(self) -> None:
        if self.is_down:
            raise redis.exceptions.ConnectionError("Error 111 connecting to 127.0.0.1:1. Connection refused.")

    def set(self, *args: Any, **kwargs: Any) -> bool:
        self._check()
        return super().set(*args, **kwargs)

    def get(self, key: str) -> bytes | None:
        self._check()
        return super().get(key)

    def expire_if_value(self, *args: Any) -> bool:
        self._check()
        return super().expire_if_value(*args)

    def restart_empty(self) -> None:
        self.is_down = False
        with self._lock:
            self._values.clear()


class Sweep:
    """A periodic actor every minute whose sends go through the flaky store."""

    def __init__(self, store: FlakyRedis, log: list[tuple[str, str]], who: list[str]) -> None:
        self.actor_name = "sweep_poll"
        self.options = {"periodic": cron("* * * * *")}
        self.store, self.log, self.who = store, log, who

    def send_with_options(self, *, scheduled_at: str) -> None:
        self.store._check()
        self.log.append((self.who[0], scheduled_at))


def scheduler(name: str, store: FlakyRedis, clock: Clock, sends: list[tuple[str, str]]) -> LeaderScheduler:
    who = [name]
    return LeaderScheduler([Sweep(store, sends, who)], LeaderLock(store, ttl=60, identity=name),
                           clock=lambda: clock.now, monotonic=clock.monotonic)


def run_for(seconds: float, clock: Clock, *schedulers: LeaderScheduler, tick: float = 1.0) -> None:
    for _ in range(int(seconds / tick)):
        for each in schedulers:
            each.step()
        clock.advance(tick)


def test_a_redis_outage_neither_ends_the_schedulers_nor_lets_two_of_them_schedule():
    clock = Clock()
    store = FlakyRedis(clock)
    sends: list[tuple[str, str]] = []
    active, standby = scheduler("active", store, clock, sends), scheduler("standby", store, clock, sends)
    # given one active scheduler and one standby
    run_for(60, clock, active, standby)
    assert active.is_leader and not standby.is_leader
    assert [who for who, _ in sends] == ["active"]
    # when Redis is down across a minute boundary (no step may raise) ...
    store.is_down = True
    run_for(45, clock, active, standby)
    assert sends[-1][1] == "2026-11-30 10:01:00+00:00", "nothing was sent during the outage"
    # ... and comes back empty, the lock with it
    store.restart_empty()
    run_for(10, clock, active, standby)
    # then exactly one scheduler holds the lock again, and the send that failed went out once
    assert [active.is_leader, standby.is_leader].count(True) == 1
    assert [minute for _, minute in sends].count("2026-11-30 10:02:00+00:00") == 1
    run_for(180, clock, active, standby)
    minutes = [minute for _, minute in sends]
    assert len(minutes) == len(set(minutes)), f"a minute was sent twice: {sends}"
    assert len(minutes) >= 5


def test_the_holder_stops_sending_once_it_cannot_renew_for_the_locks_ttl():
    clock = Clock()
    store = FlakyRedis(clock)
    sends: list[tuple[str, str]] = []
    active = scheduler("active", store, clock, sends)
    run_for(5, clock, active)
    assert active.is_leader
    store.is_down = True
    run_for(65, clock, active)
    assert not active.is_leader, "after a TTL without renewal a standby may hold the lock"


def test_a_lost_lock_is_noticed_before_the_next_send():
    # given an active scheduler whose lock is gone (Redis restarted empty between two renewals)
    # and a standby that took it
    clock = Clock()
    store = FlakyRedis(clock)
    sends: list[tuple[str, str]] = []
    active, standby = scheduler("active", store, clock, sends), scheduler("standby", store, clock, sends)
    run_for(2, clock, active)
    store.restart_empty()
    run_for(2, clock, standby)
    assert standby.is_leader
    # when the next minute comes
    run_for(60, clock, active, standby)
    # then only the new holder sent it
    assert {who for who, _ in sends} == {"standby"} and not active.is_leader
