"""The database side of delivery estimates and delays: journey facts recorded when a shipment
finishes, statistics rebuilt from them (cached per process), each active shipment's estimate and
delay flag refreshed when its milestone changes and by the periodic estimates job. Decisions are
in `pipeline/estimates.py` (pure); this module loads, calls it and writes."""
from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from peewee import JOIN

import models
from models import JourneyFact, TrackingCache
from pipeline import estimates, schedule
from pipeline import status as statuses
from pipeline.canonical import parse_iso
from pipeline.coordination import Coordination
from pipeline.schedule import SchedulePolicy

logger = logging.getLogger(__name__)

# Published once per shipment when it becomes delayed: the hook notifications listen to.
DELAY_CHANNEL = "shipment-delays"
# How long a process reuses statistics before reading the facts again (the estimates job rebuilds sooner).
STATISTICS_MAX_AGE = timedelta(minutes=10)


@dataclass(frozen=True)
class EstimateConfig:
    """What the estimates need from settings: the calendar, the estimator's numbers, how much history."""

    calendar: estimates.BusinessCalendar
    policy: estimates.EstimatePolicy
    history_days: int = 180


def config_from(settings_config: Any) -> EstimateConfig:
    """The estimate configuration of a `settings.Settings`."""
    return EstimateConfig(
        calendar=estimates.BusinessCalendar(settings_config.shop_timezone, settings_config.holidays),
        policy=estimates.EstimatePolicy(min_samples=settings_config.estimate_min_samples,
                                        low_percentile=settings_config.estimate_low_percentile,
                                        high_percentile=settings_config.estimate_high_percentile,
                                        delay_percentile=settings_config.delay_percentile),
        history_days=settings_config.estimate_history_days)


# --- facts -------------------------------------------------------------------------------------------

def fact_row(fact: estimates.JourneyFact, *, shipment_id: int | None,
             first_estimate: datetime | None = None) -> dict[str, Any]:
    """A journey_facts row for a fact."""
    return {
        "tracking_cache": shipment_id, "courier": fact.courier[:64], "service": fact.service,
        "origin_state": fact.origin_state, "origin_country": fact.origin_country,
        "destination_state": fact.destination_state, "destination_country": fact.destination_country,
        "milestones": {name: moment.isoformat() for name, moment in fact.milestones.items()},
        "outcome": fact.outcome, "handed_over_at": fact.handed_over_at, "delivered_at": fact.delivered_at,
        "finished_at": fact.finished_at, "failed_attempts": fact.failed_attempts,
        "business_days": fact.business_days, "first_estimated_delivery": first_estimate,
        "had_exception": statuses.EXCEPTION in fact.milestones,
    }


def record_facts(rows: Iterable[TrackingCache], config: EstimateConfig) -> int:
    """Record the journey facts of finished shipments (again: a second record replaces the first)."""
    values = []
    for row in rows:
        fact = estimates.journey_fact(row.tracking_events or (), service=row.courier_service,
                                      status=row.current_status, calendar=config.calendar)
        if fact is not None:
            values.append(fact_row(fact, shipment_id=row.id, first_estimate=row.first_estimated_delivery))
    for start in range(0, len(values), 500):
        chunk = values[start:start + 500]
        with models.database.atomic():
            JourneyFact.delete().where(JourneyFact.tracking_cache.in_([v["tracking_cache"] for v in chunk])).execute()
            JourneyFact.insert_many(chunk).execute()
    return len(values)


def fact_of(row: JourneyFact) -> estimates.JourneyFact:
    milestones = row.milestones if isinstance(row.milestones, dict) else json.loads(row.milestones or "{}")
    return estimates.JourneyFact(
        courier=row.courier, service=row.service, origin_state=row.origin_state, origin_country=row.origin_country,
        destination_state=row.destination_state, destination_country=row.destination_country,
        milestones={name: parsed for name, text in milestones.items() if (parsed := parse_iso(text))},
        outcome=row.outcome, finished_at=row.finished_at, handed_over_at=row.handed_over_at,
        delivered_at=row.delivered_at, failed_attempts=row.failed_attempts, business_days=row.business_days)


def load_facts(*, since: datetime | None = None, courier: str | None = None) -> list[estimates.JourneyFact]:
    """Journey facts finished since a moment, oldest first."""
    query = JourneyFact.select().order_by(JourneyFact.finished_at, JourneyFact.id)
    if since is not None:
        query = query.where(JourneyFact.finished_at >= since)
    if courier is not None:
        query = query.where(JourneyFact.courier == courier)
    return [fact_of(row) for row in query]


# --- statistics (cached per process) ----------------------------------------------------------------

_cache_lock = threading.Lock()
_cached: dict[str, Any] = {"stats": None, "built_at": None, "key": None}


def statistics(config: EstimateConfig, now: datetime, *, rebuild: bool = False) -> estimates.DeliveryStatistics:
    """The statistics of the last `history_days` of facts, rebuilt when older than a few minutes."""
    key = (config.calendar, config.history_days)
    with _cache_lock:
        built_at = _cached["built_at"]
        if rebuild or _cached["key"] != key or built_at is None or now - built_at > STATISTICS_MAX_AGE \
                or now < built_at:
            facts = load_facts(since=now - timedelta(days=config.history_days))
            _cached.update(stats=estimates.build_statistics(facts, config.calendar), built_at=now, key=key)
        return _cached["stats"]


def forget_statistics() -> None:
    """Drop the cached statistics (tests, and after seeding history)."""
    with _cache_lock:
        _cached.update(stats=None, built_at=None, key=None)


# --- refreshing shipments ------------------------------------------------------------------------------

# What a refresh reads of a shipment (not the raw courier response, the heaviest column).
REFRESH_FIELDS = (
    TrackingCache.id, TrackingCache.order, TrackingCache.courier_tracking_number, TrackingCache.courier_service,
    TrackingCache.current_status, TrackingCache.tracking_events, TrackingCache.consecutive_failures,
    TrackingCache.next_update_due, TrackingCache.update_frequency_minutes, TrackingCache.courier_estimated_delivery,
    *(getattr(TrackingCache, name) for name, _ in models.ESTIMATE_WRITE_COLUMNS if name not in (
        "next_update_due", "update_frequency_minutes")),
)


@dataclass(frozen=True)
class RefreshReport:
    """What a refresh changed: orders whose views changed, shipments newly delayed, facts recorded."""

    order_ids: tuple[str, ...] = ()
    newly_delayed: tuple[dict[str, str], ...] = ()
    facts_recorded: int = 0
    refreshed: int = 0


def _apply_estimate(row: TrackingCache, stats: estimates.DeliveryStatistics, config: EstimateConfig, *,
                    now: datetime, schedule_policy: SchedulePolicy) -> dict[str, Any]:
    """New values of the estimate, delay and schedule columns of one active row (only what changed)."""
    calendar = config.calendar
    situation = estimates.situation_of(row.tracking_events or (), service=row.courier_service,
                                       status=row.current_status)
    estimate = estimates.estimate_delivery(situation, stats, config.policy) if situation else None
    values: dict[str, Any] = {}
    if estimate is not None:
        values.update(estimated_delivery=calendar.midday(estimate.most_likely),
                      estimated_delivery_earliest=calendar.midday(estimate.earliest),
                      estimated_delivery_latest=calendar.midday(estimate.latest),
                      estimate_source=estimates.HISTORY, estimate_basis=estimate.basis[:64])
        if row.first_estimated_delivery is None:
            values["first_estimated_delivery"] = values["estimated_delivery"]
    elif row.courier_estimated_delivery is not None:
        values.update(estimated_delivery=row.courier_estimated_delivery, estimated_delivery_earliest=None,
                      estimated_delivery_latest=None, estimate_source=estimates.COURIER, estimate_basis=None)
    else:
        values.update(estimated_delivery=None, estimated_delivery_earliest=None, estimated_delivery_latest=None,
                      estimate_source=None, estimate_basis=None)
    reason = estimates.delay_reason(situation, estimate, stats, config.policy, now=now) if situation else None
    values.update(is_delayed=reason is not None, delay_reason=reason,
                  delayed_since=(row.delayed_since or now) if reason else None)
    # The poll schedule follows: the delivery day and a delay both shorten the interval.
    minutes = schedule.poll_interval_minutes(status=row.current_status, now=now,
                                             consecutive_failures=row.consecutive_failures or 0,
                                             estimated_delivery=values["estimated_delivery"], policy=schedule_policy,
                                             is_delayed=reason is not None)
    if minutes is not None and row.next_update_due is not None:
        sooner = now + timedelta(minutes=minutes)
        if sooner < row.next_update_due:
            values.update(next_update_due=sooner, update_frequency_minutes=round(minutes))
    return {name: value for name, value in values.items() if getattr(row, name) != value}


def refresh_rows(rows: Sequence[TrackingCache], config: EstimateConfig, *, now: datetime,
                 schedule_policy: SchedulePolicy, stats: estimates.DeliveryStatistics | None = None) -> RefreshReport:
    """Refresh estimates and delay flags of these rows; record facts of the finished ones."""
    stats = stats or statistics(config, now)
    finished = [row for row in rows if statuses.is_final(row.current_status)]
    facts = record_facts(finished, config)
    changed_orders: set[str] = set()
    newly_delayed: list[dict[str, str]] = []
    was_delayed = [row for row in finished if row.is_delayed]
    if was_delayed:
        TrackingCache.update(is_delayed=False, delay_reason=None, delayed_since=None).where(
            TrackingCache.id.in_([row.id for row in was_delayed])).execute()
        changed_orders.update(row.order_id for row in was_delayed)
    active = [row for row in rows if not statuses.is_final(row.current_status)]
    changed: list[TrackingCache] = []
    for row in active:
        values = _apply_estimate(row, stats, config, now=now, schedule_policy=schedule_policy)
        if not values:
            continue
        for name, value in values.items():
            setattr(row, name, value)
        changed.append(row)
        changed_orders.add(row.order_id)
        if values.get("is_delayed"):
            newly_delayed.append({"order_id": row.order_id, "tracking_number": row.courier_tracking_number,
                                  "status": row.current_status, "reason": values["delay_reason"]})
    models.bulk_update_estimates(changed)  # one statement for the batch, not one per row
    return RefreshReport(order_ids=tuple(sorted(changed_orders)), newly_delayed=tuple(newly_delayed),
                         facts_recorded=facts, refreshed=len(active))


def refresh_after_persist(changes: Sequence[Mapping[str, Any]], config: EstimateConfig, *, now: datetime,
                          schedule_policy: SchedulePolicy) -> RefreshReport:
    """The hook persist calls after its commit with its status changes: re-estimate the shipments
    that changed milestone and record the facts of those that finished."""
    if not changes:
        return RefreshReport()
    numbers = sorted({change["tracking_number"] for change in changes})
    orders = {change["order_id"] for change in changes}
    rows = [row for row in TrackingCache.select(*REFRESH_FIELDS).where(TrackingCache.courier_tracking_number.in_(numbers))
            if row.order_id in orders]
    return refresh_rows(rows, config, now=now, schedule_policy=schedule_policy)


def refresh_all_active(config: EstimateConfig, *, now: datetime, schedule_policy: SchedulePolicy,
                       batch_size: int = 500) -> RefreshReport:
    """The estimates job: rebuild the statistics, record missing facts of finished shipments, and
    refresh every active shipment's estimate and delay flag."""
    stats = statistics(config, now, rebuild=True)
    missing = (TrackingCache.select()
               .join(JourneyFact, JOIN.LEFT_OUTER, on=(JourneyFact.tracking_cache == TrackingCache.id))
               .where(TrackingCache.current_status.in_(sorted(statuses.FINAL_STATUSES))
                      & JourneyFact.id.is_null() & (TrackingCache.updated_at >= now - timedelta(days=config.history_days))))
    facts = record_facts(list(missing), config)
    if facts:
        stats = statistics(config, now, rebuild=True)
    orders: set[str] = set()
    delayed: list[dict[str, str]] = []
    refreshed = 0
    last_id = 0
    while True:
        rows = list(TrackingCache.select(*REFRESH_FIELDS)
                    .where((TrackingCache.id > last_id) & TrackingCache.is_active
                           & TrackingCache.current_status.not_in(sorted(statuses.FINAL_STATUSES)))
                    .order_by(TrackingCache.id).limit(batch_size))
        if not rows:
            break
        last_id = rows[-1].id
        report = refresh_rows(rows, config, now=now, schedule_policy=schedule_policy, stats=stats)
        orders.update(report.order_ids)
        delayed.extend(report.newly_delayed)
        refreshed += report.refreshed
    return RefreshReport(order_ids=tuple(sorted(orders)), newly_delayed=tuple(delayed), facts_recorded=facts,
                         refreshed=refreshed)


def publish_delays(coordination: Coordination, delayed: Sequence[Mapping[str, str]]) -> None:
    """One message per newly delayed shipment on DELAY_CHANNEL, for notifications to pick up."""
    for item in delayed:
        coordination.publish(DELAY_CHANNEL, json.dumps(dict(item), sort_keys=True))


def count_delayed() -> int:
    """Active shipments flagged delayed."""
    return TrackingCache.select().where(TrackingCache.is_delayed & TrackingCache.is_active).count()
