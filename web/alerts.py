"""The alert rules of the seed plan as a pure function over live figures: critical when more than
100 jobs are pending, couriers fail more than 10% of calls, the database is unreachable or
customer reads are slower than 1 s (p95); warnings when the budget is nearly spent, jobs are
delayed, errors spike, the read cache misses too often or many shipments are delayed. Thresholds come from settings;
deploy/prometheus/alerts.yml states the same rules over the /metrics names."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

CRITICAL, WARNING = "critical", "warning"
# Below these sample sizes a rate says nothing (one failed call of two is not an outage).
MIN_COURIER_CALLS = 10
MIN_CACHE_LOOKUPS = 20


@dataclass(frozen=True)
class Thresholds:
    pending_jobs: int = 100
    failure_rate_percent: int = 10
    read_p95_ms: int = 1000
    budget_percent: int = 90
    job_delay_minutes: int = 15
    error_spike: int = 50
    failed_inbox: int = 10
    cache_miss_percent: int = 50
    delayed_shipments: int = 25


def thresholds_from(config: Any) -> Thresholds:
    """The thresholds of a `settings.Settings`."""
    return Thresholds(
        pending_jobs=config.alert_pending_jobs, failure_rate_percent=config.alert_failure_rate,
        read_p95_ms=config.alert_read_p95_ms, budget_percent=config.alert_budget_percent,
        job_delay_minutes=config.alert_job_delay_minutes, error_spike=config.alert_error_spike,
        failed_inbox=config.alert_failed_inbox, cache_miss_percent=config.alert_cache_miss_percent,
        delayed_shipments=config.alert_delayed_shipments,
    )


@dataclass(frozen=True)
class Figures:
    """Live figures the rules look at (None: not known, e.g. the database is down)."""

    database_ok: bool = True
    pending_jobs: int | None = 0
    oldest_pending_age_seconds: float | None = None
    courier_calls_last_hour: int | None = 0
    courier_failures_last_hour: int | None = 0
    read_p95_seconds: float | None = None
    budget_used: int | None = 0
    budget_total: int | None = 0
    server_errors_5m: int = 0
    rate_limited_5m: int = 0
    failed_inbox_last_hour: int | None = 0
    cache_hits: int = 0
    cache_misses: int = 0
    delayed_shipments: int | None = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Alert:
    name: str
    severity: str
    summary: str
    value: float | int | None
    threshold: float | int | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def evaluate(figures: Figures, limits: Thresholds) -> list[Alert]:
    """Every rule that fires for these figures, critical ones first."""
    fired: list[Alert] = []
    if not figures.database_ok:
        fired.append(Alert("database_unreachable", CRITICAL, "the database does not answer", None, None))
    if figures.pending_jobs is not None and figures.pending_jobs > limits.pending_jobs:
        fired.append(Alert("job_backlog", CRITICAL, f"{figures.pending_jobs} jobs are pending",
                           figures.pending_jobs, limits.pending_jobs))
    calls, failures = figures.courier_calls_last_hour, figures.courier_failures_last_hour
    if calls is not None and failures is not None and calls >= MIN_COURIER_CALLS:
        rate = 100.0 * failures / calls
        if rate > limits.failure_rate_percent:
            fired.append(Alert("courier_failure_rate", CRITICAL,
                               f"{rate:.0f}% of {calls} courier calls failed in the last hour",
                               round(rate, 1), limits.failure_rate_percent))
    if figures.read_p95_seconds is not None and figures.read_p95_seconds * 1000 > limits.read_p95_ms:
        fired.append(Alert("slow_customer_reads", CRITICAL,
                           f"customer reads take {figures.read_p95_seconds * 1000:.0f} ms at p95",
                           round(figures.read_p95_seconds * 1000), limits.read_p95_ms))
    if figures.budget_used is not None and figures.budget_total:
        spent = 100.0 * figures.budget_used / figures.budget_total
        if spent >= limits.budget_percent:
            fired.append(Alert("budget_nearly_spent", WARNING,
                               f"{figures.budget_used} of {figures.budget_total} courier calls of today are spent",
                               round(spent, 1), limits.budget_percent))
    delay = figures.oldest_pending_age_seconds
    if delay is not None and delay > limits.job_delay_minutes * 60:
        fired.append(Alert("job_delay", WARNING, f"the oldest due job has waited {delay / 60:.0f} minutes",
                           round(delay / 60, 1), limits.job_delay_minutes))
    errors = figures.server_errors_5m + figures.rate_limited_5m
    if errors > limits.error_spike:
        fired.append(Alert("error_spike", WARNING,
                           f"{figures.server_errors_5m} server errors and {figures.rate_limited_5m} rate-limited "
                           "answers in five minutes", errors, limits.error_spike))
    if figures.failed_inbox_last_hour is not None and figures.failed_inbox_last_hour > limits.failed_inbox:
        fired.append(Alert("failed_webhooks", WARNING,
                           f"{figures.failed_inbox_last_hour} webhooks failed or were rejected in the last hour",
                           figures.failed_inbox_last_hour, limits.failed_inbox))
    lookups = figures.cache_hits + figures.cache_misses
    if lookups >= MIN_CACHE_LOOKUPS:
        miss_rate = 100.0 * figures.cache_misses / lookups
        if miss_rate > limits.cache_miss_percent:
            fired.append(Alert("read_cache_misses", WARNING,
                               f"{miss_rate:.0f}% of {lookups} read-cache lookups missed",
                               round(miss_rate, 1), limits.cache_miss_percent))
    if figures.delayed_shipments is not None and figures.delayed_shipments > limits.delayed_shipments:
        fired.append(Alert("delayed_shipments", WARNING,
                           f"{figures.delayed_shipments} active shipments are delayed",
                           figures.delayed_shipments, limits.delayed_shipments))
    return sorted(fired, key=lambda alert: alert.severity != CRITICAL)
