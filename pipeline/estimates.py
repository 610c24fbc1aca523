"""Delivery estimates from our own history, pure: business days in the shop's zone, the facts of a
finished journey read from its events, conditional empirical quantiles of the remaining time with a
fallback hierarchy (route -> courier + destination -> courier + origin -> courier -> all), the delay
rule, and the backtest that replays history in time order. No I/O; the clock is an argument."""
from __future__ import annotations

import bisect
import functools
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from pipeline import status as statuses
from pipeline.canonical import iso_utc, parse_iso
from web.views import state_of_location

# Milestones we estimate from: the non-final statuses a journey passes through, in journey order.
MILESTONES: tuple[str, ...] = (
    statuses.INFO_RECEIVED, statuses.IN_TRANSIT, statuses.AVAILABLE_FOR_PICKUP,
    statuses.OUT_FOR_DELIVERY, statuses.FAILED_ATTEMPT, statuses.EXCEPTION,
)
# Fallback levels, most specific first; each names the fact fields its key adds to the milestone.
LEVELS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("route", ("courier", "origin_state", "destination_state")),
    ("courier_destination", ("courier", "destination_state")),
    ("courier_origin", ("courier", "origin_state")),
    ("courier", ("courier",)),
    ("all", ()),
)
HISTORY, COURIER = "history", "courier"


# --- business days ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class BusinessCalendar:
    """Working days in the shop's zone: Monday to Friday except the configured holidays."""

    timezone: str = "Asia/Kuala_Lumpur"
    holidays: frozenset[date] = field(default_factory=frozenset)

    def local_date(self, moment: datetime) -> date:
        return moment.astimezone(ZoneInfo(self.timezone)).date()

    def is_business_day(self, day: date) -> bool:
        return day.weekday() < 5 and day not in self.holidays

    def days_between(self, start: date, end: date) -> int:
        """Business days d with start < d <= end (negative when end is before start)."""
        if end < start:
            return -self.days_between(end, start)
        count, day = 0, start
        while day < end:
            day += timedelta(days=1)
            count += self.is_business_day(day)
        return count

    def add_days(self, start: date, days: int) -> date:
        """The `days`-th business day after `start` (`start` itself for 0)."""
        day = start
        remaining = days
        while remaining > 0:
            day += timedelta(days=1)
            remaining -= self.is_business_day(day)
        return day

    def midday(self, day: date) -> datetime:
        """Noon of a local date, as an aware datetime: how a date-only estimate is stored."""
        return datetime.combine(day, time(12), tzinfo=ZoneInfo(self.timezone))


# --- journey facts ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class JourneyFact:
    """A finished journey, as the estimator learns from it."""

    courier: str
    service: str
    origin_state: str | None
    origin_country: str | None
    destination_state: str | None
    destination_country: str | None
    milestones: Mapping[str, datetime]  # first time each status was reached
    outcome: str  # the final status
    finished_at: datetime
    handed_over_at: datetime | None = None
    delivered_at: datetime | None = None
    failed_attempts: int = 0
    business_days: int | None = None  # handover -> delivery, in business days

    def key(self, names: Sequence[str]) -> tuple[str | None, ...]:
        return tuple(getattr(self, name) for name in names)

    def to_dict(self) -> dict[str, Any]:
        return {
            "courier": self.courier, "service": self.service, "origin_state": self.origin_state,
            "origin_country": self.origin_country, "destination_state": self.destination_state,
            "destination_country": self.destination_country,
            "milestones": {name: iso_utc(moment) for name, moment in self.milestones.items()},
            "outcome": self.outcome, "finished_at": iso_utc(self.finished_at),
            "handed_over_at": iso_utc(self.handed_over_at), "delivered_at": iso_utc(self.delivered_at),
            "failed_attempts": self.failed_attempts, "business_days": self.business_days,
        }


_CARRIER_PATTERNS = (
    re.compile(r"information sent to (?P<name>[^.,;]+?)\s*$", re.IGNORECASE),
    re.compile(r"handover to (?P<name>[^.,;]+?)\s*$", re.IGNORECASE),
)


def carrier_of(events: Iterable[Mapping[str, Any]]) -> str | None:
    """The delivering courier as EasyParcel's texts name it ("Shipment information sent to
    City-Link", "... Awaiting Parcel Handover to DHL": openapi_tracking_response_success_multi.json)."""
    for event in events:
        for pattern in _CARRIER_PATTERNS:
            found = pattern.search(event.get("raw_text") or "")
            if found:
                return found.group("name").strip()
    return None


def _timed(events: Iterable[Mapping[str, Any]]) -> list[tuple[datetime, Mapping[str, Any]]]:
    timed = [(parse_iso(event.get("time")), event) for event in events]
    return sorted(((moment, event) for moment, event in timed if moment is not None), key=lambda pair: pair[0])


@functools.lru_cache(maxsize=4096)
def _place(location: str | None) -> tuple[str, str] | None:
    """(state, country) of a location, cached: the same hub names come back in every journey."""
    state = state_of_location(location)
    return state if state and state[0] else None


def first_reached(events: Iterable[Mapping[str, Any]]) -> dict[str, datetime]:
    """The first time each canonical status appears among the events."""
    reached: dict[str, datetime] = {}
    for moment, event in _timed(events):
        status = event.get("status")
        if status and status not in reached:
            reached[status] = moment
    return reached


def route_of(events: Iterable[Mapping[str, Any]]) -> tuple[tuple[str, str] | None, tuple[str, str] | None]:
    """(origin, destination) as (state, country): the first moving scan with a known state, and the
    newest last-mile scan (out for delivery, attempt, delivery) with one; None while unknown."""
    placed = [(e.get("status"), _place(e.get("location"))) for _, e in _timed(events)]
    origin = next((place for status, place in placed if status == statuses.IN_TRANSIT and place), None)
    last_mile = (statuses.OUT_FOR_DELIVERY, statuses.FAILED_ATTEMPT, statuses.DELIVERED,
                 statuses.AVAILABLE_FOR_PICKUP)
    destination = next((place for status, place in reversed(placed) if status in last_mile and place), None)
    return origin, destination


def journey_fact(events: Sequence[Mapping[str, Any]], *, service: str, status: str,
                 calendar: BusinessCalendar) -> JourneyFact | None:
    """The fact of a finished journey from its stored events (None while it is not final or has
    no dated event)."""
    if not statuses.is_final(status):
        return None
    reached = first_reached(events)
    timed = _timed(events)
    if not timed:
        return None
    origin, destination = route_of(events)
    handed_over = reached.get(statuses.IN_TRANSIT)
    delivered = reached.get(statuses.DELIVERED) if status == statuses.DELIVERED else None
    failed = sum(1 for _, event in timed if event.get("status") == statuses.FAILED_ATTEMPT)
    business_days = None
    if delivered is not None and handed_over is not None:
        business_days = calendar.days_between(calendar.local_date(handed_over), calendar.local_date(delivered))
    return JourneyFact(
        courier=carrier_of(events) or service, service=service,
        origin_state=origin[0] if origin else None, origin_country=origin[1] if origin else None,
        destination_state=destination[0] if destination else None,
        destination_country=destination[1] if destination else None,
        milestones={name: moment for name, moment in reached.items() if name in MILESTONES},
        outcome=status, finished_at=delivered or timed[-1][0], handed_over_at=handed_over,
        delivered_at=delivered, failed_attempts=failed, business_days=business_days,
    )


# --- statistics and the estimator --------------------------------------------------------------------

@dataclass(frozen=True)
class EstimatePolicy:
    """Numbers of the estimator: the range's percentiles, the delay percentile, the smallest sample
    a level may answer from."""

    min_samples: int = 20
    low_percentile: float = 10.0
    high_percentile: float = 90.0
    delay_percentile: float = 95.0


def quantile(sorted_values: Sequence[float], percentile: float) -> float:
    """Nearest-rank percentile of sorted values (a value that occurs in the data)."""
    if not sorted_values:
        raise ValueError("no values")
    rank = max(1, math.ceil(percentile / 100.0 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


@dataclass
class DeliveryStatistics:
    """Sorted samples per (level, milestone, key): business days from reaching a milestone to
    delivery ("remaining"), and hours spent in the milestone before the next one ("dwell")."""

    calendar: BusinessCalendar
    remaining: dict[tuple[Any, ...], list[int]] = field(default_factory=dict)
    dwell: dict[tuple[Any, ...], list[float]] = field(default_factory=dict)
    totals: dict[str, list[int]] = field(default_factory=dict)  # courier -> handover-to-delivery days
    journeys: int = 0

    def add(self, fact: JourneyFact) -> None:
        """Learn one finished journey."""
        self.journeys += 1
        ordered = sorted(fact.milestones.items(), key=lambda pair: pair[1])
        following = [moment for _, moment in ordered[1:]] + [fact.finished_at]
        for (milestone, reached), left_at in zip(ordered, following):
            hours = max(0.0, (left_at - reached).total_seconds() / 3600.0)
            for level, names in LEVELS:
                bisect.insort(self.dwell.setdefault((level, milestone, *fact.key(names)), []), hours)
            if fact.delivered_at is None:
                continue
            days = self.calendar.days_between(self.calendar.local_date(reached),
                                              self.calendar.local_date(fact.delivered_at))
            for level, names in LEVELS:
                bisect.insort(self.remaining.setdefault((level, milestone, *fact.key(names)), []), days)
        if fact.business_days is not None:
            bisect.insort(self.totals.setdefault(fact.courier, []), fact.business_days)


def build_statistics(facts: Iterable[JourneyFact], calendar: BusinessCalendar) -> DeliveryStatistics:
    stats = DeliveryStatistics(calendar=calendar)
    for fact in facts:
        stats.add(fact)
    return stats


@dataclass(frozen=True)
class ShipmentSituation:
    """What the estimator needs to know about a shipment in progress."""

    courier: str
    milestone: str
    reached_at: datetime
    origin_state: str | None = None
    destination_state: str | None = None

    def key(self, names: Sequence[str]) -> tuple[str | None, ...]:
        return tuple(getattr(self, name) for name in names)


def situation_of(events: Sequence[Mapping[str, Any]], *, service: str, status: str) -> ShipmentSituation | None:
    """A shipment's current milestone (first reached) and route from its stored events; None when
    it is final or has no milestone we estimate from."""
    if status not in MILESTONES:
        return None
    reached = first_reached(events).get(status)
    if reached is None:
        return None
    origin, destination = route_of(events)
    return ShipmentSituation(courier=carrier_of(events) or service, milestone=status, reached_at=reached,
                             origin_state=origin[0] if origin else None,
                             destination_state=destination[0] if destination else None)


@dataclass(frozen=True)
class Estimate:
    """A most-likely delivery date and a range, in the shop's zone, and what it was learnt from."""

    most_likely: date
    earliest: date
    latest: date
    level: str
    samples: int

    @property
    def basis(self) -> str:
        return f"{self.level} ({self.samples} journeys)"


def _samples(table: Mapping[tuple[Any, ...], list[Any]], situation: ShipmentSituation,
             policy: EstimatePolicy) -> tuple[str, list[Any]] | None:
    for level, names in LEVELS:
        key = situation.key(names)
        if any(part is None for part in key):
            continue
        found = table.get((level, situation.milestone, *key))
        if found and len(found) >= policy.min_samples:
            return level, found
    return None


def estimate_delivery(situation: ShipmentSituation, stats: DeliveryStatistics,
                      policy: EstimatePolicy) -> Estimate | None:
    """The delivery estimate from the most specific level with enough samples, or None (unknown)."""
    found = _samples(stats.remaining, situation, policy)
    if found is None:
        return None
    level, days = found
    start = stats.calendar.local_date(situation.reached_at)
    add = stats.calendar.add_days
    return Estimate(most_likely=add(start, int(quantile(days, 50))),
                    earliest=add(start, int(quantile(days, policy.low_percentile))),
                    latest=add(start, int(quantile(days, policy.high_percentile))),
                    level=level, samples=len(days))


def delay_reason(situation: ShipmentSituation, estimate: Estimate | None, stats: DeliveryStatistics,
                 policy: EstimatePolicy, *, now: datetime) -> str | None:
    """Why a shipment in progress counts as delayed, or None: in its milestone longer than the
    delay percentile of similar journeys, or past its range's last day."""
    found = _samples(stats.dwell, situation, policy)
    waited = (now - situation.reached_at).total_seconds() / 3600.0
    label = statuses.label_of(situation.milestone).lower()
    if found is not None:
        level, hours = found
        limit = quantile(hours, policy.delay_percentile)
        if waited > limit:
            return (f"{label} for {_duration(waited)}; {policy.delay_percentile:g}% of similar journeys "
                    f"({level}) moved on within {_duration(limit)}")
    if estimate is not None and stats.calendar.local_date(now) > estimate.latest:
        return f"past the estimated range (latest {estimate.latest:%a %d %b})"
    return None


def _duration(hours: float) -> str:
    return f"{hours:.0f} h" if hours < 48 else f"{hours / 24:.1f} days"


# --- the backtest -------------------------------------------------------------------------------------

@dataclass
class _Tally:
    count: int = 0
    abs_error: float = 0.0
    error: float = 0.0
    inside: int = 0
    baseline_abs_error: float = 0.0
    baseline_error: float = 0.0

    def add(self, error: int, baseline_error: int, is_inside: bool) -> None:
        self.count += 1
        self.abs_error += abs(error)
        self.error += error
        self.inside += is_inside
        self.baseline_abs_error += abs(baseline_error)
        self.baseline_error += baseline_error

    def summary(self) -> dict[str, Any]:
        if not self.count:
            return {"predictions": 0}
        return {"predictions": self.count, "mae_days": round(self.abs_error / self.count, 3),
                "bias_days": round(self.error / self.count, 3),
                "inside_range": round(self.inside / self.count, 4),
                "baseline_mae_days": round(self.baseline_abs_error / self.count, 3),
                "baseline_bias_days": round(self.baseline_error / self.count, 3)}


def backtest(facts: Sequence[JourneyFact], calendar: BusinessCalendar, policy: EstimatePolicy) -> dict[str, Any]:
    """Replay history in time order: at each milestone of each delivered journey, predict its delivery
    from the journeys finished before that moment only, and compare with the naive baseline (the
    courier's median handover-to-delivery time, added to the handover or the milestone). Errors are
    in business days (predicted minus actual); both must answer for a prediction to count."""
    timeline: list[tuple[datetime, int, int, str]] = []  # (when, 0 = learn / 1 = predict, fact index, milestone)
    for index, fact in enumerate(facts):
        timeline.append((fact.finished_at, 0, index, ""))
        if fact.delivered_at is None:
            continue
        for milestone, reached in fact.milestones.items():
            if reached < fact.delivered_at:
                timeline.append((reached, 1, index, milestone))
    timeline.sort(key=lambda item: (item[0], item[1]))
    stats = DeliveryStatistics(calendar=calendar)
    overall, unknown = _Tally(), 0
    by_courier: dict[str, _Tally] = {}
    by_milestone: dict[str, _Tally] = {}
    for moment, kind, index, milestone in timeline:
        fact = facts[index]
        if kind == 0:
            stats.add(fact)
            continue
        assert fact.delivered_at is not None
        destination_known = milestone in (statuses.OUT_FOR_DELIVERY, statuses.FAILED_ATTEMPT,
                                          statuses.AVAILABLE_FOR_PICKUP)
        situation = ShipmentSituation(courier=fact.courier, milestone=milestone, reached_at=moment,
                                      origin_state=fact.origin_state if fact.handed_over_at
                                      and fact.handed_over_at <= moment else None,
                                      destination_state=fact.destination_state if destination_known else None)
        estimate = estimate_delivery(situation, stats, policy)
        totals = stats.totals.get(fact.courier)
        if estimate is None or not totals:
            unknown += 1
            continue
        handed = fact.handed_over_at if fact.handed_over_at and fact.handed_over_at <= moment else moment
        baseline = calendar.add_days(calendar.local_date(handed), int(quantile(totals, 50)))
        actual = calendar.local_date(fact.delivered_at)
        error = calendar.days_between(actual, estimate.most_likely)
        baseline_error = calendar.days_between(actual, baseline)
        is_inside = estimate.earliest <= actual <= estimate.latest
        for tally in (overall, by_courier.setdefault(fact.courier, _Tally()),
                      by_milestone.setdefault(milestone, _Tally())):
            tally.add(error, baseline_error, is_inside)
    return {"journeys": len(facts), "unknown": unknown, "overall": overall.summary(),
            "by_courier": {name: tally.summary() for name, tally in sorted(by_courier.items())},
            "by_milestone": {name: tally.summary() for name, tally in by_milestone.items()}}


def backtest_table(report: Mapping[str, Any]) -> str:
    """The backtest report as a Markdown table: overall first, then per courier and per milestone."""
    lines = ["| scope | predictions | MAE (business days) | baseline MAE | share inside range | bias | baseline bias |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]

    def row(name: str, figures: Mapping[str, Any]) -> None:
        if not figures.get("predictions"):
            lines.append(f"| {name} | 0 | - | - | - | - | - |")
            return
        lines.append(f"| {name} | {figures['predictions']} | {figures['mae_days']:.2f} | "
                     f"{figures['baseline_mae_days']:.2f} | {100 * figures['inside_range']:.1f}% | "
                     f"{figures['bias_days']:+.2f} | {figures['baseline_bias_days']:+.2f} |")

    row("**overall**", report["overall"])
    for name, figures in report["by_courier"].items():
        row(f"courier {name}", figures)
    for name, figures in report["by_milestone"].items():
        row(f"from {statuses.label_of(name).lower()}", figures)
    return "\n".join(lines)


def first_estimates(facts: Sequence[JourneyFact], calendar: BusinessCalendar,
                    policy: EstimatePolicy) -> list[date | None]:
    """For each fact, the estimate it would have been given at its first milestone, learning only
    from the journeys finished before then (what the on-time rate compares against)."""
    timeline: list[tuple[datetime, int, int]] = []
    for index, fact in enumerate(facts):
        timeline.append((fact.finished_at, 0, index))
        if fact.milestones:
            timeline.append((min(fact.milestones.values()), 1, index))
    timeline.sort(key=lambda item: (item[0], item[1]))
    stats = DeliveryStatistics(calendar=calendar)
    found: list[date | None] = [None] * len(facts)
    for moment, kind, index in timeline:
        fact = facts[index]
        if kind == 0:
            stats.add(fact)
            continue
        milestone = min(fact.milestones, key=lambda name: fact.milestones[name])
        estimate = estimate_delivery(ShipmentSituation(courier=fact.courier, milestone=milestone, reached_at=moment),
                                     stats, policy)
        found[index] = estimate.most_likely if estimate else None
    return found
