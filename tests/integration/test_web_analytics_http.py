"""Courier analytics over HTTP on both databases: the JSON report and sections, CSV export, the
filters and their errors, staff-only access, and the page with its charts, descriptions and tables."""
from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

from test_web_pages import sign_in
from web_client import VIEWER_TOKEN

from models import CourierApiCall, JourneyFact
from pipeline import estimating
from sim.history import finished_shipments


def seed(count: int = 300) -> None:
    config = estimating.config_from(__import__("settings").get())
    now = datetime.now(UTC)
    shipments = finished_shipments(count, "analytics", end=now, days=60, calendar=config.calendar)
    JourneyFact.insert_many([estimating.fact_row(s.fact, shipment_id=None,
                                                 first_estimate=s.fact.delivered_at) for s in shipments]).execute()
    CourierApiCall.insert_many([{"courier": "easyparcel", "called_at": now, "endpoint": "/open_api/x/tracking_status",
                                 "tracking_numbers_count": 5, "http_status": 200, "latency_ms": 120 + i,
                                 "is_success": i % 10 != 0} for i in range(20)]).execute()


def test_the_report_has_every_section_and_honours_the_filters(api):
    seed()
    everything = api.admin("GET", "/api/admin/analytics", params={"period": "90"})
    assert everything.status_code == 200 and everything.headers["cache-control"] == "no-store"
    data = everything.json()
    assert {"couriers", "routes", "distribution", "rates", "weekly", "courier-api", "filter"} <= set(data)
    assert sum(row["deliveries"] for row in data["couriers"]) > 250
    assert data["rates"][-1]["courier"] == "all" and data["rates"][-1]["on_time_rate"] == 1.0
    assert data["courier-api"][0]["calls"] == 20 and data["courier-api"][0]["successful"] == 18
    one = api.viewer("GET", "/api/admin/analytics/couriers", params={"courier": "GDEX", "period": "30"}).json()
    assert [row["courier"] for row in one["rows"]] == ["GDEX"] and one["filter"]["period_days"] == 30


def test_sections_export_as_csv(api):
    seed()
    answer = api.admin("GET", "/api/admin/analytics/routes", params={"format": "csv", "period": "90"})
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/csv")
    assert answer.headers["content-disposition"] == 'attachment; filename="trackcache-routes-90d.csv"'
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    assert rows and set(rows[0]) == {"origin", "destination", "deliveries", "median_days", "p90_days", "mean_days"}


def test_bad_filters_and_sections_get_the_error_shape_and_strangers_nothing(api):
    bad = api.admin("GET", "/api/admin/analytics", params={"period": "12"})
    assert bad.status_code == 422 and bad.json()["fields"] == {"period": "must be one of 7, 30, 90, 180, 365 (days)"}
    assert api.admin("GET", "/api/admin/analytics/nothing").json()["error"] == "not_found"
    assert api.admin("GET", "/api/admin/analytics/rates", params={"format": "xml"}).status_code == 422
    assert api.client.get("/api/admin/analytics").status_code == 401


def test_the_page_shows_charts_with_descriptions_tables_and_csv_links(api):
    seed()
    assert api.client.get("/admin/analytics", follow_redirects=False).status_code == 303
    sign_in(api, VIEWER_TOKEN)
    page = api.client.get("/admin/analytics", params={"period": "90"})
    assert page.status_code == 200
    html = page.text
    assert html.count("<svg") >= 5 and html.count('role="img"') >= 5
    assert "Fastest:" in html and "Show the numbers" in html and "Transit time per route" in html
    assert 'href="/api/admin/analytics/weekly?format=csv&amp;period=90"' in html
    filtered = api.client.get("/admin/analytics", params={"period": "7", "courier": "GDEX"})
    assert filtered.status_code == 200 and '<option value="GDEX" selected>' in filtered.text
    wrong = api.client.get("/admin/analytics", params={"period": "8"})
    assert wrong.status_code == 422 and "Showing the default instead" in wrong.text



def test_the_dashboard_counts_estimates_due_today_and_delays(api):
    from datetime import timedelta

    from models import TrackingCache
    from pipeline import runtime

    # given three open shipments: one due today, one delayed and due later, one without an estimate
    ids = [api.polled(f"DASH-{n}", f"FKDASH{n}") for n in range(3)]
    now = runtime.current().now()
    TrackingCache.update(estimated_delivery=now, estimate_source="history").where(TrackingCache.id == ids[0]).execute()
    TrackingCache.update(estimated_delivery=now + timedelta(days=3), estimate_source="history", is_delayed=True,
                         delay_reason="in transit for 5.0 days").where(TrackingCache.id == ids[1]).execute()
    TrackingCache.update(estimated_delivery=None).where(TrackingCache.id == ids[2]).execute()
    # when staff open the dashboard
    sign_in(api, VIEWER_TOKEN)
    html = api.client.get("/admin").text
    # then the estimates card counts them, and the delayed one is on the attention list with its reason
    assert ("Delivery estimates: <strong>1</strong> expected today; 2 of 3 open shipments have an estimate; "
            "<strong>1</strong> delayed") in html
    assert "in transit for 5.0 days" in html and "Courier analytics" in html
