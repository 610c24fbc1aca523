"""Prometheus metrics of the web process: an HTTP latency histogram by route template (recorded
by `RequestMetrics`), customer read latency and read-cache lookups, and `StoreCollector`, which
reads the figures that hold across processes (courier calls today, ledger, queues, data age,
unmapped codes, budget) from the database and the broker at scrape time."""
from __future__ import annotations

import bisect
import logging
import threading
import time
from collections.abc import Iterable, Iterator
from datetime import timedelta
from typing import Any

from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import REGISTRY, Collector
from prometheus_client.utils import floatToGoString
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import pipeline.metrics  # noqa: F401  (registers the pipeline's counters in this process too)
from web.stats import STATS

logger = logging.getLogger(__name__)



class LightHistogram(Collector):
    """A labelled histogram that costs a bisect and two additions under one lock per observation,
    exported on scrape as a standard Prometheus histogram (`_bucket`, `_count`, `_sum`).
    prometheus_client's Histogram takes a lock per bucket and per sum and walks the buckets in
    Python: py-spy put its two observations per tracking read at 5% of a hot customer read."""

    def __init__(self, name: str, documentation: str, labelnames: Iterable[str], buckets: Iterable[float],
                 registry: CollectorRegistry | None = REGISTRY) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self.bounds = tuple(sorted(float(b) for b in buckets))
        self._les = [floatToGoString(b) for b in self.bounds] + ["+Inf"]
        self._series: dict[tuple[str, ...], list[float]] = {}  # counts per bucket (not cumulative), then sum
        self._lock = threading.Lock()
        if registry is not None:
            registry.register(self)

    def observe(self, labels: tuple[str, ...], seconds: float) -> None:
        index = bisect.bisect_left(self.bounds, seconds)  # the first bound >= seconds (`le`), or +Inf
        with self._lock:
            series = self._series.get(labels)
            if series is None:
                series = self._series[labels] = [0.0] * (len(self.bounds) + 2)
            series[index] += 1
            series[-1] += seconds

    def collect(self) -> Iterator[HistogramMetricFamily]:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        with self._lock:
            snapshot = [(labels, list(series)) for labels, series in self._series.items()]
        for labels, series in snapshot:
            buckets, cumulative = [], 0.0
            for le, count in zip(self._les, series[:-1]):
                cumulative += count
                buckets.append((le, cumulative))
            family.add_metric(list(labels), buckets, sum_value=series[-1])
        yield family

    def describe(self) -> Iterator[HistogramMetricFamily]:
        yield HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)

    def count(self, labels: tuple[str, ...]) -> int:
        """Observations of one label set (tests)."""
        with self._lock:
            return int(sum(self._series.get(labels, [0.0])[:-1]))


HTTP_DURATION = LightHistogram(
    "trackcache_http_request_duration_seconds",
    "HTTP request latency by method, route template and status.",
    ["method", "route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
CUSTOMER_READ_SECONDS = LightHistogram(
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
    HTTP_DURATION.observe((method, template, _STATUS_TEXT.get(status) or str(status)), seconds)
    STATS.record_status(status)


_STATUS_TEXT = {status: str(status) for status in range(100, 600)}


def record_tracking_read(route: str, audience: str, status: int, seconds: float, *, is_cache_hit: bool) -> None:
    """`record_request` and `record_read` of one answered GET tracking read, in one call."""
    HTTP_DURATION.observe(("GET", route, _STATUS_TEXT.get(status) or str(status)), seconds)
    CUSTOMER_READ_SECONDS.observe((audience,), seconds)
    _child(READ_CACHE_LOOKUPS, "hit" if is_cache_hit else "miss").inc()
    STATS.record_read(seconds, is_cache_hit=is_cache_hit, status=status)


def record_read(audience: str, seconds: float, *, is_cache_hit: bool) -> None:
    CUSTOMER_READ_SECONDS.observe((audience,), seconds)
    _child(READ_CACHE_LOOKUPS, "hit" if is_cache_hit else "miss").inc()
    STATS.record_read(seconds, is_cache_hit=is_cache_hit)


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
