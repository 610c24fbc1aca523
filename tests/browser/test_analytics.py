"""Delivery estimates and courier analytics in a real browser against `trackcache dev`, once its
simulated history is stored: the tracking page says when the parcel arrives, and the analytics page
shows its charts with descriptions and tables, filters by period and courier, offers CSV, and
passes axe-core's WCAG 2.1 AA checks."""
from __future__ import annotations

import time

from conftest import accessibility_problems, save_screenshot
from playwright.sync_api import expect
from test_pages import look_up, sign_in


def wait_for_history(server, timeout: float = 180.0) -> dict:
    """The analytics report once `trackcache dev` has stored its simulated history."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        data = server.admin_api("GET", "/api/admin/analytics").json()
        if sum(row["deliveries"] for row in data["couriers"]) >= 1000:
            return data
        time.sleep(1)
    raise AssertionError("trackcache dev did not store its delivery history in time")


def test_the_analytics_page_shows_charts_tables_and_filters_accessibly(server, page):
    data = wait_for_history(server)
    # given an admin signed in, when they open the analytics page from the dashboard
    sign_in(page, server, server.admin_token)
    page.get_by_role("link", name="Courier analytics").click()
    # then every chart is there with its text, the tables behind them, and nothing axe objects to
    expect(page.get_by_role("heading", level=1)).to_have_text("Courier analytics")
    charts = page.locator("svg[role=img]")
    assert charts.count() >= 5
    expect(page.get_by_role("heading", name="Transit time per courier")).to_be_visible()
    expect(page.get_by_text("Fastest:")).to_be_visible()
    page.get_by_text("Show the numbers").first.click()
    rows = page.get_by_role("region", name="Table of transit time per courier").locator("tbody tr")
    assert rows.count() == len(data["couriers"])
    assert accessibility_problems(page) == []
    save_screenshot(page, "analytics.png")
    # when they narrow it to one courier and 30 days
    courier = data["couriers"][0]["courier"]
    page.get_by_label("Period").select_option("30")
    page.get_by_label("Courier", exact=True).select_option(courier)
    page.get_by_role("button", name="Show").click()
    page.wait_for_url("**/admin/analytics?period=30&courier=*")
    # then the tables show that courier only, and the CSV links carry the filter
    expect(page.locator('[aria-label="Table of transit time per courier"] tbody tr')).to_have_count(1)
    link = page.get_by_role("link", name="Download CSV").first.get_attribute("href")
    assert "format=csv" in link and "period=30" in link
    assert accessibility_problems(page) == []


def test_the_tracking_page_says_when_the_parcel_arrives(server, page):
    wait_for_history(server)
    look_up(page, server)
    arrival = page.locator(".facts").first
    expect(arrival).to_contain_text("Arrives", timeout=60_000)
    assert accessibility_problems(page) == []
