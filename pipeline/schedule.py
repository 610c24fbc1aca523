"""The polling schedule as a pure policy: when a shipment is polled next, given its status,
failures, estimated delivery and the clock. Every number comes from a `SchedulePolicy` that boot
code builds from settings."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from pipeline import status as statuses
from pipeline.status import Group


@dataclass(frozen=True)
class SchedulePolicy:
    """Numbers of the polling schedule (minutes unless said otherwise)."""

    pre_shipment_minutes: int = 1440
    in_transit_minutes: int = 120
    out_for_delivery_minutes: int = 30
    exception_minutes: int = 60
    delivery_day_max_minutes: int = 30
    max_backoff_exponent: int = 4
    weekend_factor: float = 1.5
    holidays: frozenset[date] = field(default_factory=frozenset)
    jitter_percent: int = 10
    expire_after_days: int = 30
    max_failures: int = 5
    timezone: str = "Asia/Kuala_Lumpur"

    def base_minutes(self, group: Group) -> int | None:
        """Base interval of a polling group; None for finals (never polled again)."""
        return {
            Group.PRE_SHIPMENT: self.pre_shipment_minutes,
            Group.IN_TRANSIT: self.in_transit_minutes,
            Group.OUT_FOR_DELIVERY: self.out_for_delivery_minutes,
            Group.EXCEPTION: self.exception_minutes,
            Group.FINAL: None,
        }[group]


def is_day_off(moment: datetime, policy: SchedulePolicy) -> bool:
    """Saturday, Sunday or a configured holiday, in the policy's time zone."""
    local = moment.astimezone(ZoneInfo(policy.timezone))
    return local.weekday() >= 5 or local.date() in policy.holidays


def is_delivery_day(now: datetime, estimated_delivery: datetime | None, policy: SchedulePolicy) -> bool:
    if estimated_delivery is None:
        return False
    zone = ZoneInfo(policy.timezone)
    return now.astimezone(zone).date() == estimated_delivery.astimezone(zone).date()


def poll_interval_minutes(
    *,
    status: str,
    now: datetime,
    consecutive_failures: int = 0,
    estimated_delivery: datetime | None = None,
    policy: SchedulePolicy,
    jitter: float = 0.0,
    is_delayed: bool = False,
) -> float | None:
    """Minutes until the next poll, or None when the status needs no more polling.

    `jitter` in [0, 1) spreads polls: the interval grows by up to `jitter_percent` percent. A
    delayed shipment is polled at least as often as one in an exception.
    """
    minutes: float | None = policy.base_minutes(statuses.group_of(status))
    if minutes is None:
        return None
    if is_delayed:
        minutes = min(minutes, policy.exception_minutes)
    if is_delivery_day(now, estimated_delivery, policy):
        minutes = min(minutes, policy.delivery_day_max_minutes)
    if consecutive_failures > 0:
        minutes *= 2 ** min(consecutive_failures, policy.max_backoff_exponent)
    if is_day_off(now, policy):
        minutes *= policy.weekend_factor
    return minutes * (1 + policy.jitter_percent / 100.0 * min(max(jitter, 0.0), 0.999999))


def next_poll_at(
    *,
    status: str,
    now: datetime,
    consecutive_failures: int = 0,
    estimated_delivery: datetime | None = None,
    policy: SchedulePolicy,
    jitter: float = 0.0,
    is_delayed: bool = False,
) -> datetime | None:
    """When to poll next, or None for final statuses."""
    minutes = poll_interval_minutes(status=status, now=now, consecutive_failures=consecutive_failures,
                                    estimated_delivery=estimated_delivery, policy=policy, jitter=jitter,
                                    is_delayed=is_delayed)
    return None if minutes is None else now + timedelta(minutes=minutes)


def is_expired(*, status: str, last_event_at: datetime | None, registered_at: datetime, now: datetime,
               policy: SchedulePolicy) -> bool:
    """True when a non-final shipment has had no new event for `expire_after_days`."""
    if statuses.is_final(status):
        return False
    reference = last_event_at or registered_at
    return now - reference > timedelta(days=policy.expire_after_days)


def needs_attention(consecutive_failures: int, policy: SchedulePolicy) -> bool:
    """A shipment whose polls keep failing is flagged for an admin."""
    return consecutive_failures >= policy.max_failures


def spread_first_polls(count: int, *, now: datetime, window: timedelta) -> list[datetime]:
    """First poll times for `count` newly registered shipments, spread evenly over `window` so a
    bulk import does not poll in one burst."""
    if count <= 0:
        return []
    step = window / count
    return [now + step * index for index in range(count)]
