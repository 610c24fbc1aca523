"""Courier analytics, pure: filters, transit per courier and route, distribution, rates against the
first estimate, weekly trends, courier API days, CSV and the charts' descriptions."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from web import analytics as A

ZONE = "Asia/Kuala_Lumpur"
NOW = datetime(2026, 12, 1, 4, 0, tzinfo=UTC)


def fact(courier="City-Link", days=2, outcome="delivered", failed=0, exception=False, first_estimate_days=None,
         finished=NOW - timedelta(days=3), origin="Penang", destination="Sabah"):
    delivered = finished if outcome == "delivered" else None
    return {"courier": courier, "origin_state": origin, "destination_state": destination, "outcome": outcome,
            "business_days": days if outcome == "delivered" else None, "failed_attempts": failed,
            "had_exception": exception, "delivered_at": delivered, "finished_at": finished,
            "first_estimated_delivery": None if first_estimate_days is None
            else finished + timedelta(days=first_estimate_days)}


@pytest.mark.parametrize(("params", "expected", "problems"), [
    ({}, A.AnalyticsFilter(90, None), {}),
    ({"period": "30", "courier": "GDEX"}, A.AnalyticsFilter(30, "GDEX"), {}),
    ({"period": "31"}, None, {"period": "must be one of 7, 30, 90, 180, 365 (days)"}),
    ({"period": "abc"}, None, {"period": "must be one of 7, 30, 90, 180, 365 (days)"}),
    ({"courier": "x" * 65}, None, {"courier": "must be at most 64 characters"}),
    ({"courier": "  "}, A.AnalyticsFilter(90, None), {}),
])
def test_filters(params, expected, problems):
    assert A.parse_filter(params) == (expected, problems)


def test_transit_per_courier_and_route_has_median_and_90th_percentile():
    facts = [fact(days=d) for d in (1, 2, 2, 3, 9)] + [fact("GDEX", days=1, destination="Johor")]
    assert A.transit_by_courier(facts) == [
        {"courier": "City-Link", "deliveries": 5, "median_days": 2, "p90_days": 9, "mean_days": 3.4},
        {"courier": "GDEX", "deliveries": 1, "median_days": 1, "p90_days": 1, "mean_days": 1.0}]
    routes = A.transit_by_route(facts)
    assert [(r["origin"], r["destination"], r["deliveries"]) for r in routes] == [
        ("Penang", "Sabah", 5), ("Penang", "Johor", 1)]


def test_the_distribution_caps_long_journeys_in_the_last_bucket():
    rows = A.transit_distribution([fact(days=d) for d in (0, 1, 1, 7, 12)] + [fact(outcome="returned")])
    assert [(r["business_days"], r["deliveries"]) for r in rows] == [
        ("0", 1), ("1", 2), ("2", 0), ("3", 0), ("4", 0), ("5", 0), ("6", 0), ("7+", 2)]
    assert rows[1]["share"] == 0.4


def test_rates_per_courier_and_overall():
    facts = [
        fact(first_estimate_days=0),                      # on time, first attempt
        fact(first_estimate_days=-1, failed=1),           # late, after a failed attempt
        fact(outcome="returned", failed=2, exception=True),
        fact("GDEX", first_estimate_days=2),
    ]
    city, gdex, everyone = A.delivery_rates(facts, zone=ZONE)
    assert city == {"courier": "City-Link", "journeys": 3, "delivered": 2, "on_time_rate": 0.5,
                    "with_first_estimate": 2, "exception_rate": 0.3333, "failed_attempt_rate": 0.6667,
                    "return_rate": 0.3333, "first_attempt_delivery_rate": 0.5}
    assert gdex["on_time_rate"] == 1.0 and everyone["courier"] == "all" and everyone["journeys"] == 4
    assert everyone["on_time_rate"] == round(2 / 3, 4)


def test_weekly_trends_group_by_the_shops_monday():
    monday = datetime(2026, 11, 23, 2, tzinfo=UTC)
    facts = [fact(finished=monday, first_estimate_days=1), fact(finished=monday + timedelta(days=6), days=4,
                                                                first_estimate_days=-2),
             fact(finished=monday + timedelta(days=7))]
    rows = A.weekly_trends(facts, zone=ZONE)
    assert [(r["week"], r["journeys"], r["on_time"], r["late"]) for r in rows] == [
        ("2026-11-23", 2, 1, 1), ("2026-11-30", 1, 0, 0)]


def test_courier_api_days():
    calls = [{"courier": "easyparcel", "called_at": NOW, "latency_ms": ms, "is_success": ms < 900}
             for ms in (100, 200, 300, 1000)]
    [row] = A.courier_api_days(calls)
    assert row == {"day": "2026-12-01", "courier": "easyparcel", "calls": 4, "successful": 3, "failed": 1,
                   "success_rate": 0.75, "p50_latency_ms": 200, "p95_latency_ms": 1000}


def test_the_report_filters_by_courier_and_lists_every_courier():
    facts = [fact(), fact("GDEX")]
    data = A.report(facts, [], selection=A.AnalyticsFilter(30, "GDEX"), zone=ZONE, now=NOW)
    assert [row["courier"] for row in data["couriers"]] == ["GDEX"]
    assert data["available_couriers"] == ["City-Link", "GDEX"]
    assert set(A.SECTIONS) <= set(data)


def test_csv_has_a_header_and_empty_cells_for_none():
    text = A.csv_text([{"courier": "GDEX", "median_days": None}, {"courier": "J&T, Express", "median_days": 2}])
    assert text == 'courier,median_days\nGDEX,\n"J&T, Express",2\n'
    assert A.csv_text([]) == "\n"


def test_every_chart_says_in_words_what_it_shows():
    facts = [fact(days=d, first_estimate_days=0) for d in (1, 2, 2)] + [fact("GDEX", days=4)]
    calls = [{"courier": "easyparcel", "called_at": NOW, "latency_ms": 300, "is_success": True}]
    found = A.charts_of(A.report(facts, calls, selection=A.AnalyticsFilter(), zone=ZONE, now=NOW))
    assert set(found) == {"transit", "distribution", "first_attempt", "weekly", "api"}
    assert found["transit"]["text"].startswith("4 deliveries. Fastest: City-Link (median 2 business days")
    assert "slowest: GDEX (median 4 business days" in found["transit"]["text"]
    assert found["api"]["text"] == "1 calls over 1 days, 100.0% successful; slowest day 2026-12-01 (p95 300 ms)."
    for chart in found.values():
        assert chart["svg"].startswith("<svg") and 'role="img"' in chart["svg"] and "<desc" in chart["svg"]
    empty = A.charts_of(A.report([], [], selection=A.AnalyticsFilter(), zone=ZONE, now=NOW))
    assert empty["transit"]["text"] == "No deliveries in this period." and empty["api"]["text"] == (
        "No courier calls recorded.")
