"""Courier analytics, pure: the request's filters (period, courier), transit times per courier and
per route (distribution, median, 90th percentile) from journey facts, delivery rates (on time
against the first estimate, exceptions, failed attempts, returns, first-attempt deliveries), weekly
trends, courier API success and latency per day, CSV tables, and the page's SVG charts with their
text descriptions. Plain values in, plain values out."""
from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from web import charts

PERIODS = (7, 30, 90, 180, 365)
DEFAULT_PERIOD = 90
SECTIONS = ("couriers", "routes", "distribution", "rates", "weekly", "courier-api")
DISTRIBUTION_CAP = 7  # business days; longer journeys share the last bucket ("7+")


@dataclass(frozen=True)
class AnalyticsFilter:
    """Which journeys the figures cover: finished in the last `period_days`, of one courier or all."""

    period_days: int = DEFAULT_PERIOD
    courier: str | None = None

    def since(self, now: datetime) -> datetime:
        return now - timedelta(days=self.period_days)

    def query(self) -> dict[str, str]:
        return {"period": str(self.period_days), **({"courier": self.courier} if self.courier else {})}


def parse_filter(params: Mapping[str, str]) -> tuple[AnalyticsFilter | None, dict[str, str]]:
    """The filter of query parameters `period` (days: 7, 30, 90, 180 or 365) and `courier`, or
    the per-field problems."""
    problems: dict[str, str] = {}
    raw_period = (params.get("period") or str(DEFAULT_PERIOD)).strip()
    period = int(raw_period) if raw_period.isdigit() else None
    if period not in PERIODS:
        problems["period"] = f"must be one of {', '.join(str(p) for p in PERIODS)} (days)"
    courier = (params.get("courier") or "").strip() or None
    if courier is not None and len(courier) > 64:
        problems["courier"] = "must be at most 64 characters"
    if problems:
        return None, problems
    return AnalyticsFilter(period_days=period or DEFAULT_PERIOD, courier=courier), {}


# --- figures ------------------------------------------------------------------------------------

def _percentile(sorted_values: Sequence[int], percentile: float) -> int | None:
    if not sorted_values:
        return None
    rank = max(1, math.ceil(percentile / 100.0 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _transit_row(name: Mapping[str, Any], days: list[int]) -> dict[str, Any]:
    days.sort()
    return {**name, "deliveries": len(days), "median_days": _percentile(days, 50), "p90_days": _percentile(days, 90),
            "mean_days": round(sum(days) / len(days), 2) if days else None}


def transit_by_courier(facts: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Business days from handover to delivery per courier (delivered journeys with a handover)."""
    grouped: dict[str, list[int]] = {}
    for fact in facts:
        if fact.get("business_days") is not None:
            grouped.setdefault(fact["courier"], []).append(int(fact["business_days"]))
    return [_transit_row({"courier": courier}, days) for courier, days in sorted(grouped.items())]


def transit_by_route(facts: Iterable[Mapping[str, Any]], *, min_deliveries: int = 1) -> list[dict[str, Any]]:
    """Business days from handover to delivery per route (origin state -> destination state), the
    busiest routes first."""
    grouped: dict[tuple[str, str], list[int]] = {}
    for fact in facts:
        if fact.get("business_days") is None or not fact.get("origin_state") or not fact.get("destination_state"):
            continue
        grouped.setdefault((fact["origin_state"], fact["destination_state"]), []).append(int(fact["business_days"]))
    rows = [_transit_row({"origin": origin, "destination": destination}, days)
            for (origin, destination), days in grouped.items() if len(days) >= min_deliveries]
    return sorted(rows, key=lambda row: (-row["deliveries"], row["origin"], row["destination"]))


def transit_distribution(facts: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """How many deliveries took 0, 1, ... business days (the last bucket is "7+")."""
    counts = [0] * (DISTRIBUTION_CAP + 1)
    for fact in facts:
        if fact.get("business_days") is not None:
            counts[min(int(fact["business_days"]), DISTRIBUTION_CAP)] += 1
    total = sum(counts)
    return [{"business_days": f"{days}+" if days == DISTRIBUTION_CAP else str(days), "deliveries": count,
             "share": _share(count, total)} for days, count in enumerate(counts)]


def _local_date(moment: Any, zone: ZoneInfo) -> date | None:
    return moment.astimezone(zone).date() if isinstance(moment, datetime) else None


def _rates(facts: Sequence[Mapping[str, Any]], zone: ZoneInfo) -> dict[str, Any]:
    delivered = [f for f in facts if f.get("outcome") == "delivered"]
    estimated = [f for f in delivered if f.get("first_estimated_delivery") is not None]
    on_time = [f for f in estimated if (_local_date(f.get("delivered_at"), zone) or date.max)
               <= (_local_date(f["first_estimated_delivery"], zone) or date.min)]
    return {
        "journeys": len(facts), "delivered": len(delivered),
        "on_time_rate": _share(len(on_time), len(estimated)), "with_first_estimate": len(estimated),
        "exception_rate": _share(sum(1 for f in facts if f.get("had_exception")), len(facts)),
        "failed_attempt_rate": _share(sum(1 for f in facts if (f.get("failed_attempts") or 0) > 0), len(facts)),
        "return_rate": _share(sum(1 for f in facts if f.get("outcome") == "returned"), len(facts)),
        "first_attempt_delivery_rate": _share(sum(1 for f in delivered if not f.get("failed_attempts")),
                                              len(delivered)),
    }


def delivery_rates(facts: Sequence[Mapping[str, Any]], *, zone: str) -> list[dict[str, Any]]:
    """Per courier, then all couriers together: on-time rate against the first estimate, exception,
    failed-attempt and return rates, first-attempt delivery rate."""
    tz = ZoneInfo(zone)
    couriers = sorted({f["courier"] for f in facts})
    rows = [{"courier": courier, **_rates([f for f in facts if f["courier"] == courier], tz)} for courier in couriers]
    return rows + [{"courier": "all", **_rates(facts, tz)}]


def weekly_trends(facts: Sequence[Mapping[str, Any]], *, zone: str) -> list[dict[str, Any]]:
    """Per ISO week (Monday, shop zone) of finishing: journeys, median transit, on time and late."""
    tz = ZoneInfo(zone)
    weeks: dict[date, list[Mapping[str, Any]]] = {}
    for fact in facts:
        day = _local_date(fact.get("finished_at"), tz)
        if day is not None:
            weeks.setdefault(day - timedelta(days=day.weekday()), []).append(fact)
    rows = []
    for monday, group in sorted(weeks.items()):
        days = sorted(int(f["business_days"]) for f in group if f.get("business_days") is not None)
        rates = _rates(group, tz)
        estimated = rates["with_first_estimate"]
        on_time = round((rates["on_time_rate"] or 0) * estimated)
        rows.append({"week": monday.isoformat(), "journeys": len(group), "delivered": rates["delivered"],
                     "median_days": _percentile(days, 50), "on_time": on_time, "late": estimated - on_time,
                     "on_time_rate": rates["on_time_rate"], "return_rate": rates["return_rate"]})
    return rows


def courier_api_days(calls: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per UTC day and courier: tracking calls, successes, success rate, p50 and p95 latency (ms)."""
    grouped: dict[tuple[date, str], list[Mapping[str, Any]]] = {}
    for call in calls:
        grouped.setdefault((call["called_at"].date(), call["courier"]), []).append(call)
    rows = []
    for (day, courier), group in sorted(grouped.items()):
        latencies = sorted(int(c["latency_ms"]) for c in group if c.get("latency_ms") is not None)
        ok = sum(1 for c in group if c.get("is_success"))
        rows.append({"day": day.isoformat(), "courier": courier, "calls": len(group), "successful": ok,
                     "failed": len(group) - ok, "success_rate": _share(ok, len(group)),
                     "p50_latency_ms": _percentile(latencies, 50), "p95_latency_ms": _percentile(latencies, 95)})
    return rows


def report(facts: Sequence[Mapping[str, Any]], calls: Sequence[Mapping[str, Any]], *, selection: AnalyticsFilter,
           zone: str, now: datetime) -> dict[str, Any]:
    """Every section for the selected journeys and courier calls."""
    chosen = [f for f in facts if selection.courier is None or f["courier"] == selection.courier]
    return {
        "filter": {"period_days": selection.period_days, "courier": selection.courier,
                   "since": selection.since(now), "until": now},
        "couriers": transit_by_courier(chosen),
        "routes": transit_by_route(chosen),
        "distribution": transit_distribution(chosen),
        "rates": delivery_rates(chosen, zone=zone),
        "weekly": weekly_trends(chosen, zone=zone),
        "courier-api": courier_api_days(calls),
        "available_couriers": sorted({f["courier"] for f in facts}),
    }


def csv_text(rows: Sequence[Mapping[str, Any]]) -> str:
    """A section's rows as CSV with a header (empty rows: just an empty header line)."""
    out = io.StringIO()
    names = list(rows[0]) if rows else []
    writer = csv.DictWriter(out, fieldnames=names, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({name: "" if row.get(name) is None else row.get(name) for name in names})
    return out.getvalue()


# --- the page's charts ------------------------------------------------------------------------------

def percent(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.1f}%"


def _days(value: int | None) -> str:
    return "–" if value is None else f"{value} business day{'' if value == 1 else 's'}"


def charts_of(data: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    """Each chart of the page as SVG with a sentence that says what it shows."""
    couriers = data["couriers"]
    transit = charts.horizontal_bars(
        [charts.Bar(f"{row['courier']} (p90 {row['p90_days']})", row["median_days"] or 0, "ok") for row in couriers],
        chart_id="transit-chart", title="Median business days from handover to delivery, per courier")
    fastest = min(couriers, key=lambda row: (row["median_days"], row["p90_days"]), default=None)
    slowest = max(couriers, key=lambda row: (row["median_days"], row["p90_days"]), default=None)
    transit_text = (f"{sum(r['deliveries'] for r in couriers)} deliveries. Fastest: {fastest['courier']} "
                    f"(median {_days(fastest['median_days'])}, 90% within {_days(fastest['p90_days'])}); slowest: "
                    f"{slowest['courier']} (median {_days(slowest['median_days'])}, 90% within "
                    f"{_days(slowest['p90_days'])}).") if fastest and slowest else "No deliveries in this period."
    distribution = data["distribution"]
    spread = charts.horizontal_bars(
        [charts.Bar(f"{row['business_days']} business days", row["deliveries"], "neutral") for row in distribution],
        chart_id="distribution-chart", title="Deliveries by business days taken")
    common = max(distribution, key=lambda row: row["deliveries"], default=None)
    spread_text = (f"Most deliveries took {common['business_days']} business days "
                   f"({percent(common['share'])}).") if common and common["deliveries"] else "No deliveries."
    rates = [row for row in data["rates"] if row["courier"] != "all"]
    first_attempt = charts.horizontal_bars(
        [charts.Bar(row["courier"], round((row["first_attempt_delivery_rate"] or 0) * 100), "ok") for row in rates],
        chart_id="first-attempt-chart", title="First-attempt delivery rate per courier, percent")
    overall = next((row for row in data["rates"] if row["courier"] == "all"), None)
    rates_text = (f"All couriers: {percent(overall['first_attempt_delivery_rate'])} delivered at the first attempt, "
                  f"{percent(overall['on_time_rate'])} on time against the first estimate, "
                  f"{percent(overall['return_rate'])} returned.") if overall and overall["journeys"] else "No journeys."
    weekly = data["weekly"]
    weeks = charts.daily_bars([charts.DayBar(_week_label(row["week"]), row["on_time"], row["late"]) for row in weekly],
                              chart_id="weekly-chart", title="Deliveries per week: on time and late against the "
                              "first estimate", label_every=4)
    weekly_text = (f"{len(weekly)} weeks; on time in the latest week: {percent(weekly[-1]['on_time_rate'])}, "
                   f"median {_days(weekly[-1]['median_days'])}.") if weekly else "No weeks with journeys."
    api = _api_by_day(data["courier-api"])
    api_chart = charts.daily_bars([charts.DayBar(_day_label(row["day"]), row["successful"], row["failed"])
                                   for row in api], chart_id="api-chart",
                                  title="Courier API tracking calls per day: successful and failed")
    slowest_day = max(api, key=lambda row: row["p95_latency_ms"] or 0, default=None)
    api_text = (f"{sum(r['calls'] for r in api)} calls over {len(api)} days, "
                f"{percent(_share(sum(r['successful'] for r in api), sum(r['calls'] for r in api)))} successful; "
                f"slowest day {slowest_day['day']} (p95 {slowest_day['p95_latency_ms']} ms).") \
        if api and slowest_day and slowest_day["p95_latency_ms"] is not None else "No courier calls recorded."
    return {
        "transit": {"svg": transit, "text": transit_text},
        "distribution": {"svg": spread, "text": spread_text},
        "first_attempt": {"svg": first_attempt, "text": rates_text},
        "weekly": {"svg": weeks, "text": weekly_text},
        "api": {"svg": api_chart, "text": api_text},
    }


def _api_by_day(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Courier API rows summed over couriers per day (the chart shows all couriers together)."""
    days: dict[str, dict[str, Any]] = {}
    for row in rows:
        day = days.setdefault(row["day"], {"day": row["day"], "calls": 0, "successful": 0, "failed": 0,
                                           "p95_latency_ms": None})
        day["calls"] += row["calls"]
        day["successful"] += row["successful"]
        day["failed"] += row["failed"]
        if row["p95_latency_ms"] is not None:
            day["p95_latency_ms"] = max(day["p95_latency_ms"] or 0, row["p95_latency_ms"])
    return [days[key] for key in sorted(days)]


def _week_label(iso_day: str) -> str:
    day = date.fromisoformat(iso_day)
    return f"{day.day} {day:%b}"


_day_label = _week_label
