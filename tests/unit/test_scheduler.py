"""The periodic schedule: periodiq's cron specs (Sunday is 7), which sweeps are due, the
embedded scheduler thread's sends, and the leader lock that keeps one scheduler active."""
from __future__ import annotations

import pendulum
import pytest
from periodiq import cron

import settings
from pipeline.coordination import LocalCoordination
from pipeline.scheduler import LeaderLock, due_actors

SUNDAY_3AM = pendulum.datetime(2026, 11, 29, 3, 0, tz="UTC")
MONDAY_3AM = pendulum.datetime(2026, 11, 30, 3, 0, tz="UTC")


def test_periodiq_reads_sunday_only_as_7():
    # periodiq validates the day of week with ISO numbers (Monday 1 .. Sunday 7): a crontab's
    # usual 0 for Sunday never matches, so every spec of ours writes Sunday as 7.
    assert cron("0 3 * * 7").validate(SUNDAY_3AM)
    assert not cron("0 3 * * 0").validate(SUNDAY_3AM)
    assert not cron("0 3 * * 7").validate(MONDAY_3AM)


def test_default_sweep_specs_never_depend_on_the_day_of_week():
    config = settings.load({}, dotenv_path=None)
    for spec in (config.poll_sweep_cron, config.maintenance_cron, config.usage_report_cron, config.cleanup_cron):
        assert spec.split()[4] == "*", spec


@pytest.mark.parametrize(
    ("interval_seconds", "expected"),
    [(60, "*/1 * * * *"), (900, "*/15 * * * *"), (3600, "0 */1 * * *"), (21600, "0 */6 * * *"), (86400, "0 0 * * *")],
)
def test_cleanup_interval_becomes_a_cron_spec(interval_seconds, expected):
    config = settings.load({"TRACKING_CLEANUP_INTERVAL": str(interval_seconds)}, dotenv_path=None)
    assert config.cleanup_cron == expected


class FakeActor:
    def __init__(self, name: str, spec: str) -> None:
        self.actor_name = name
        self.options = {"periodic": cron(spec)}


def test_due_actors_are_those_whose_spec_matches_the_minute():
    every_minute = FakeActor("poll", "* * * * *")
    hourly = FakeActor("cleanup", "0 * * * *")
    at_quarter = pendulum.datetime(2026, 11, 25, 10, 15, tz="UTC")
    on_the_hour = pendulum.datetime(2026, 11, 25, 10, 0, tz="UTC")
    assert [a.actor_name for a in due_actors([every_minute, hourly], at_quarter)] == ["poll"]
    assert [a.actor_name for a in due_actors([every_minute, hourly], on_the_hour)] == ["poll", "cleanup"]


def test_only_one_scheduler_holds_the_leader_lock_until_it_lapses():
    clock = [0.0]
    coordination = LocalCoordination(clock=lambda: clock[0])
    first = LeaderLock(coordination, ttl=60, identity="first")
    second = LeaderLock(coordination, ttl=60, identity="second")
    assert first.try_acquire()
    assert not second.try_acquire()
    clock[0] = 50
    assert first.renew()
    clock[0] = 100
    assert not second.try_acquire(), "a renewed lock holds"
    clock[0] = 200
    assert second.try_acquire(), "a lock nobody renews lapses"
    assert not first.renew(), "the old holder learns it lost the lock"


def test_releasing_the_lock_lets_a_standby_take_over_at_once():
    coordination = LocalCoordination()
    first = LeaderLock(coordination, identity="first")
    second = LeaderLock(coordination, identity="second")
    assert first.try_acquire()
    first.release()
    assert second.try_acquire()
