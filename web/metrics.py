"""Prometheus metrics of the web process: an HTTP latency histogram by route template (recorded
by `RequestMetrics`), customer read latency and read-cache lookups, and `StoreCollector`, which
reads the figures that hold across processes (courier calls today, ledger, queues, data age,
unmapped codes, budget) from the database and the broker at scrape time."""
from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import REGISTRY, Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import pipeline.metrics  # noqa: F401  (registers the pipeline's counters in this process too)
from web.stats import STATS

logger = logging.getLogger(__name__)

HTTP_DURATION = Histogram(
    "trackcache_http_request_duration_seconds",
    "HTTP request latency by method, route template and status.",
    ["method", "route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
CUSTOMER_READ_SECONDS = Histogram(
    "trackcache_customer_read_seconds",
    "Latency of customer and guest tracking reads (found or not).",
    ["audience"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
READ_CACHE_LOOKUPS = Counter(
    "trackcache_read_cache_lookups_total",
    "Read-cache lookups of tracking reads, by result (hit or miss).",
    ["result"],
)


def route_template(scope: Scope) -> str:
    """The matched route's path template (`/api/admin/shipments/{order_id}`), or `unmatched`."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"


class RequestMetrics:
    """ASGI middleware: observe every HTTP request's latency by route template and status, and
    count error answers in the in-process rolling figures."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            record_request(scope["method"], route_template(scope), status, time.perf_counter() - started)


# Labelled children by label values: prometheus_client's `labels()` validates and locks on every
# call (py-spy: about 4% of a cached read's CPU); a child, once made, is the same object.
_children: dict[tuple[Any, ...], Any] = {}


def _child(metric: Any, *values: str) -> Any:
    key = (metric, *values)
    child = _children.get(key)
    if child is None:
        child = _children[key] = metric.labels(*values)
    return child


def record_request(method: str, template: str, status: int, seconds: float) -> None:
    """Observe one HTTP request's latency by route template and status, and count its status."""
    _child(HTTP_DURATION, method, template, str(status)).observe(seconds)
    STATS.record_status(status)


def record_read(audience: str, seconds: float, *, is_cache_hit: bool) -> None:
    _child(CUSTOMER_READ_SECONDS, audience).observe(seconds)
    _child(READ_CACHE_LOOKUPS, "hit" if is_cache_hit else "miss").inc()
    STATS.record_read(seconds)
    STATS.record_cache(is_hit=is_cache_hit)


class StoreCollector(Collector):
    """Figures read from the database and the broker on each scrape. A failing source is
    reported as down (`trackcache_database_up 0`) instead of failing the scrape."""

    def collect(self) -> Iterator[Any]:
        from pipeline import runtime, service

        rt = runtime.current()
        now = rt.now()
        database_up = GaugeMetricFamily("trackcache_database_up", "1 when the database answered this scrape.")
        try:
            families = list(self._database_families(rt, now))
            database_up.add_metric([], 1)
        except Exception as error:
            logger.warning("metrics: database figures unavailable: %s", error)
            families = []
            database_up.add_metric([], 0)
        yield database_up
        yield from families
        depth = GaugeMetricFamily("trackcache_queue_depth", "Messages waiting per lane (delayed included).",
                                  labels=["lane"])
        try:
            for lane, count in service.queue_depths().items():
                depth.add_metric([lane], count)
            yield depth
        except Exception as error:
            logger.warning("metrics: queue depths unavailable: %s", error)

    @staticmethod
    def _database_families(rt: Any, now: Any) -> Iterator[Any]:
        from pipeline import service
        from web import queries

        jobs = GaugeMetricFamily("trackcache_jobs", "Ledger jobs by status.", labels=["status"])
        for status, count in service.ledger_counts().items():
            jobs.add_metric([status], count)
        yield jobs
        oldest = queries.oldest_due_pending_age(now)
        yield GaugeMetricFamily("trackcache_oldest_pending_job_age_seconds",
                                "Seconds the oldest due pending job has waited (0 when none).", value=oldest or 0)
        day_start = now.replace(hour=0, minute=0, second=0, microsecond=0)
        for name, since, text in (("trackcache_courier_calls_today", day_start, "today (UTC)"),
                                  ("trackcache_courier_calls_last_hour", now - timedelta(hours=1), "in the last hour")):
            calls = GaugeMetricFamily(name, f"Courier tracking calls {text}, by courier and outcome.",
                                      labels=["courier", "outcome"])
            for (courier, ok), count in sorted(queries.courier_calls_since(since).items()):
                calls.add_metric([courier, "success" if ok else "failure"], count)
            yield calls
        latency = GaugeMetricFamily("trackcache_courier_call_latency_ms_today",
                                    "Courier tracking call latency today (UTC), by courier and quantile.",
                                    labels=["courier", "quantile"])
        for courier, values in sorted(queries.courier_latencies_since(day_start).items()):
            for quantile, pct in (("0.5", 50), ("0.95", 95)):
                latency.add_metric([courier, quantile], service.percentile(values, pct) or 0)
        yield latency
        budget = rt.budget()
        yield GaugeMetricFamily("trackcache_courier_budget_total", "Courier API calls allowed today.",
                                value=budget.limits.total)
        yield GaugeMetricFamily("trackcache_courier_budget_used", "Courier API calls spent today.",
                                value=budget.used(now.date()))
        figures = queries.shipment_figures(now, stale_after=timedelta(hours=rt.config.cache_ttl_hours))
        active = GaugeMetricFamily("trackcache_active_shipments", "Active shipments by status.", labels=["status"])
        for status, count in sorted(figures["active_by_status"].items()):
            active.add_metric([status], count)
        yield active
        yield GaugeMetricFamily("trackcache_shipment_data_age_max_seconds",
                                "Age of the oldest data among active, pollable shipments.",
                                value=figures["data_age_max_seconds"] or 0)
        bands = GaugeMetricFamily("trackcache_shipments_data_older_than",
                                  "Active, pollable shipments whose data is older than an age.", labels=["age"])
        for name, count in figures["older_than"].items():
            bands.add_metric([name], count)
        yield bands
        yield GaugeMetricFamily("trackcache_stale_shipments",
                                "Active, pollable shipments with data older than TRACKING_CACHE_TTL.",
                                value=figures["stale"])
        yield GaugeMetricFamily("trackcache_shipments_with_unmapped_codes",
                                "Active shipments holding courier codes with no canonical status.",
                                value=figures["with_unmapped_codes"])
        yield GaugeMetricFamily("trackcache_shipments_requiring_attention",
                                "Active shipments flagged requires_attention.", value=figures["requiring_attention"])
        yield GaugeMetricFamily("trackcache_shipments_delayed",
                                "Active shipments flagged delayed (longer in their milestone than similar journeys, "
                                "or past their estimated range).", value=figures["delayed"])
        yield GaugeMetricFamily("trackcache_webhooks_failed_last_hour",
                                "Webhooks rejected or failed in the last hour.",
                                value=queries.inbox_failures_since(now - timedelta(hours=1)))
        from pipeline import outbox

        yield GaugeMetricFamily("trackcache_notification_endpoints_disabled",
                                "Webhook endpoints disabled after failing for TRACKING_NOTIFY_DISABLE_AFTER_DAYS.",
                                value=outbox.count_endpoints_disabled_for_failing())


def render() -> bytes:
    """The Prometheus text of this process: the default registry (web and pipeline counters,
    process figures) followed by the store's figures."""
    store = CollectorRegistry(auto_describe=False)
    store.register(StoreCollector())
    return generate_latest(REGISTRY) + generate_latest(store)
