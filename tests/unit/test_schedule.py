"""The polling schedule policy, table-driven: base intervals by status group, the delivery-day
cap, failure backoff and its cap, weekends and holidays, jitter, expiry."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest

from pipeline import schedule
from pipeline.schedule import SchedulePolicy

POLICY = SchedulePolicy(jitter_percent=0)
MYT = timezone(timedelta(hours=8))
# Wednesday 2026-11-25 10:00 in Kuala Lumpur.
WEDNESDAY = datetime(2026, 11, 25, 10, 0, tzinfo=MYT)
SATURDAY = datetime(2026, 11, 28, 10, 0, tzinfo=MYT)
SUNDAY = datetime(2026, 11, 29, 10, 0, tzinfo=MYT)


@pytest.mark.parametrize(
    ("status", "now", "failures", "eta", "expected_minutes"),
    [
        # base intervals by group (seed: 24 h, 2 h, 30 min, 1 h)
        ("pending", WEDNESDAY, 0, None, 1440),
        ("info_received", WEDNESDAY, 0, None, 1440),
        ("in_transit", WEDNESDAY, 0, None, 120),
        ("available_for_pickup", WEDNESDAY, 0, None, 120),
        ("out_for_delivery", WEDNESDAY, 0, None, 30),
        ("failed_attempt", WEDNESDAY, 0, None, 60),
        ("exception", WEDNESDAY, 0, None, 60),
        # finals are never polled again
        ("delivered", WEDNESDAY, 0, None, None),
        ("returned", WEDNESDAY, 0, None, None),
        ("cancelled", WEDNESDAY, 0, None, None),
        ("expired", WEDNESDAY, 0, None, None),
        # at most 30 min on the estimated delivery day (in the shop's zone)
        ("in_transit", WEDNESDAY, 0, datetime(2026, 11, 25, 15, 0, tzinfo=timezone.utc), 30),
        ("pending", WEDNESDAY, 0, datetime(2026, 11, 25, 2, 0, tzinfo=timezone.utc), 30),
        ("out_for_delivery", WEDNESDAY, 0, datetime(2026, 11, 25, 2, 0, tzinfo=timezone.utc), 30),
        ("in_transit", WEDNESDAY, 0, datetime(2026, 11, 26, 2, 0, tzinfo=timezone.utc), 120),
        # 2025-11-24 17:00 UTC is already the 25th in Kuala Lumpur: the day is the local one
        ("in_transit", WEDNESDAY, 0, datetime(2026, 11, 24, 17, 0, tzinfo=timezone.utc), 30),
        # x 2^min(failures, 4)
        ("in_transit", WEDNESDAY, 1, None, 240),
        ("in_transit", WEDNESDAY, 2, None, 480),
        ("in_transit", WEDNESDAY, 4, None, 1920),
        ("in_transit", WEDNESDAY, 5, None, 1920),
        ("in_transit", WEDNESDAY, 40, None, 1920),
        ("out_for_delivery", WEDNESDAY, 3, None, 240),
        # x 1.5 on weekends
        ("in_transit", SATURDAY, 0, None, 180),
        ("in_transit", SUNDAY, 0, None, 180),
        ("out_for_delivery", SUNDAY, 0, None, 45),
        # all together: delivery day cap, then backoff, then the weekend
        ("in_transit", SATURDAY, 2, datetime(2026, 11, 28, 4, 0, tzinfo=timezone.utc), 180),
    ],
)
def test_poll_interval(status, now, failures, eta, expected_minutes):
    minutes = schedule.poll_interval_minutes(status=status, now=now, consecutive_failures=failures,
                                             estimated_delivery=eta, policy=POLICY)
    assert minutes == expected_minutes


def test_a_configured_holiday_counts_like_a_weekend():
    policy = SchedulePolicy(jitter_percent=0, holidays=frozenset({date(2026, 11, 25)}))
    assert schedule.poll_interval_minutes(status="in_transit", now=WEDNESDAY, policy=policy) == 180


def test_weekend_is_judged_in_the_shop_zone_not_utc():
    # Friday 2026-11-27 20:00 UTC is Saturday 04:00 in Kuala Lumpur.
    friday_night_utc = datetime(2026, 11, 27, 20, 0, tzinfo=timezone.utc)
    assert schedule.poll_interval_minutes(status="in_transit", now=friday_night_utc, policy=POLICY) == 180


def test_intervals_come_from_the_policy():
    policy = SchedulePolicy(jitter_percent=0, in_transit_minutes=5, weekend_factor=2.0, max_backoff_exponent=2)
    assert schedule.poll_interval_minutes(status="in_transit", now=SATURDAY, consecutive_failures=9,
                                          policy=policy) == 5 * 4 * 2


@pytest.mark.parametrize("jitter", [0.0, 0.25, 0.5, 0.999])
def test_jitter_only_lengthens_and_stays_within_its_percent(jitter):
    policy = SchedulePolicy(jitter_percent=10)
    minutes = schedule.poll_interval_minutes(status="in_transit", now=WEDNESDAY, policy=policy, jitter=jitter)
    assert 120 <= minutes < 132
    assert minutes == pytest.approx(120 * (1 + 0.1 * jitter))


def test_next_poll_at_adds_the_interval_and_is_none_for_finals():
    assert schedule.next_poll_at(status="in_transit", now=WEDNESDAY, policy=POLICY) == WEDNESDAY + timedelta(hours=2)
    assert schedule.next_poll_at(status="delivered", now=WEDNESDAY, policy=POLICY) is None


@pytest.mark.parametrize(
    ("status", "days_since_event", "expected"),
    [("in_transit", 29, False), ("in_transit", 31, True), ("pending", 31, True), ("delivered", 400, False)],
)
def test_expiry_after_n_days_without_a_new_event(status, days_since_event, expected):
    last = WEDNESDAY - timedelta(days=days_since_event)
    assert schedule.is_expired(status=status, last_event_at=last, registered_at=last, now=WEDNESDAY,
                               policy=POLICY) is expected


def test_expiry_counts_from_registration_when_no_event_was_ever_seen():
    registered = WEDNESDAY - timedelta(days=31)
    assert schedule.is_expired(status="pending", last_event_at=None, registered_at=registered, now=WEDNESDAY,
                               policy=POLICY)


@pytest.mark.parametrize(("failures", "flagged"), [(0, False), (4, False), (5, True), (9, True)])
def test_requires_attention_at_max_failures(failures, flagged):
    assert schedule.needs_attention(failures, POLICY) is flagged


def test_first_polls_of_a_bulk_import_are_spread_over_the_window():
    times = schedule.spread_first_polls(4, now=WEDNESDAY, window=timedelta(minutes=60))
    assert times == [WEDNESDAY + timedelta(minutes=m) for m in (0, 15, 30, 45)]
    assert schedule.spread_first_polls(0, now=WEDNESDAY, window=timedelta(minutes=60)) == []


@pytest.mark.parametrize(("status", "is_delayed", "expected_minutes"), [
    ("in_transit", False, 120),
    ("in_transit", True, 60),          # a delayed shipment is polled on the exception interval
    ("info_received", True, 60),
    ("out_for_delivery", True, 30),    # never less often than it already was
    ("delivered", True, None),         # finals are never polled, delayed or not
])
def test_delayed_shipments_are_polled_on_the_exception_interval(status, is_delayed, expected_minutes):
    minutes = schedule.poll_interval_minutes(status=status, now=WEDNESDAY, is_delayed=is_delayed, policy=POLICY)
    assert minutes == expected_minutes
