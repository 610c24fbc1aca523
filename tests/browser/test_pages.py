"""The pages in a real browser against `trackcache dev`: a guest looks up a demo order (by keyboard
too) and sees its status and timeline, on a desktop and a phone; an admin signs in, refreshes a
shipment and watches its job complete; a viewer gets no refresh buttons and is refused; an open
tracking page updates itself when the status changes. Every page passes axe-core's WCAG 2.1 AA
checks and logs no console errors; the tests save the README's screenshots."""
from __future__ import annotations

import re

import requests
from conftest import accessibility_problems, contrast_ratio, save_screenshot
from playwright.sync_api import expect

from web import display

SHOP_ZONE = "Asia/Kuala_Lumpur"  # the default TRACKING_SHOP_TIMEZONE
TEXT_COLOURS = """(selectors) => {
  const background = (el) => {
    for (; el; el = el.parentElement) {
      const colour = getComputedStyle(el).backgroundColor;
      if (colour && colour !== 'rgba(0, 0, 0, 0)' && colour !== 'transparent') return colour;
    }
    return 'rgb(255, 255, 255)';
  };
  return selectors.flatMap((selector) => [...document.querySelectorAll(selector)].slice(0, 3).map(
    (el) => [selector, getComputedStyle(el).color, background(el)]));
}"""


def look_up(page, server) -> None:
    page.goto(server.url + "/track")
    page.get_by_label("Order number").fill(server.guest_order)
    page.get_by_label("Email address").fill(server.guest_email)
    page.get_by_role("button", name="Track order").click()
    page.wait_for_url("**/track/view?t=*")


def sign_in(page, server, token: str) -> None:
    page.goto(server.url + "/admin")
    page.wait_for_url("**/admin/login?next=*")
    page.get_by_label("Token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Dashboard")


def test_a_guest_looks_up_a_demo_order_and_sees_its_status_progress_and_timeline(server, context, page):
    # given the tracking form
    page.goto(server.url + "/track")
    assert accessibility_problems(page) == []
    # when the guest enters the banner's demo order and email
    look_up(page, server)
    # then the page shows the status in words, the progress bar and the timeline in shop time
    status = page.locator("h2.status-title").first
    expect(status).to_have_text("Out for delivery")
    expect(page.locator(".progress [aria-current=step]").first).to_contain_text("Out for delivery")
    events = page.locator(".timeline .event")
    assert events.count() >= 3
    newest = page.locator(".timeline time").first
    utc = newest.get_attribute("datetime")
    assert utc.endswith("Z") and newest.inner_text() == display.format_local(utc, SHOP_ZONE)
    expect(page.get_by_text("Times are in Kuala Lumpur time (UTC+08:00).")).to_be_visible()
    expect(page.locator("time[data-ago]").first).to_have_text(re.compile(r"just now|\d+ minutes? ago"))
    # and the result page came from a warm cache in well under 100 ms of server time
    server_ms = [page.evaluate("performance.getEntriesByType('navigation')[0].serverTiming")]
    page.reload()
    server_ms.append(page.evaluate("performance.getEntriesByType('navigation')[0].serverTiming"))
    durations = [entry[0]["duration"] for entry in server_ms]
    assert all(0 < duration < 100 for duration in durations), durations
    assert accessibility_problems(page) == []
    for selector, colour, background in page.evaluate(TEXT_COLOURS, ["body", ".eyebrow", ".status-note",
                                                                    ".step-label", ".event time", ".event-place",
                                                                    ".crumbs a", ".site-footer"]):
        assert contrast_ratio(colour, background) >= 4.5, (selector, colour, background)
    save_screenshot(page, "tracking.png")
    # and on a phone-sized screen nothing overflows sideways
    phone = context.new_page()
    phone.set_viewport_size({"width": 390, "height": 844})
    phone.goto(page.url)
    expect(phone.locator("h2.status-title").first).to_have_text("Out for delivery")
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390
    save_screenshot(phone, "tracking-mobile.png")


def test_the_tracking_form_works_with_the_keyboard_alone(server, page):
    page.goto(server.url + "/track")
    page.keyboard.press("Tab")
    skip = page.evaluate("document.activeElement.textContent")
    assert skip == "Skip to content"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "order_id"
    outline = page.evaluate("[getComputedStyle(document.activeElement).outlineStyle, "
                            "parseFloat(getComputedStyle(document.activeElement).outlineWidth)]")
    assert outline[0] != "none" and outline[1] >= 2, f"focus is visible: {outline}"
    page.keyboard.type(server.guest_order)
    page.keyboard.press("Tab")
    page.keyboard.type(server.guest_email)
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent.trim()") == "Track order"
    page.keyboard.press("Enter")
    page.wait_for_url("**/track/view?t=*")
    expect(page.locator("h2.status-title").first).to_be_visible()


def test_an_admin_signs_in_refreshes_a_shipment_and_sees_the_job_complete(server, page):
    # given a signed-in admin
    page.goto(server.url + "/admin/login")
    assert accessibility_problems(page) == []
    sign_in(page, server, server.admin_token)
    expect(page.get_by_text("Admin", exact=True)).to_be_visible()
    for heading in ("Job ledger", "Courier API budget today", "API calls, last 30 days", "Active shipments by status",
                    "Needs attention"):
        expect(page.get_by_role("heading", name=heading)).to_be_visible()
    assert accessibility_problems(page) == []
    # when they search for an order and press a shipment's refresh button
    search = page.get_by_role("search").get_by_label("Order id or tracking number")
    search.fill(server.guest_order)
    search.press("Enter")
    page.wait_for_url("**/admin/search?q=*")
    expect(page.get_by_role("heading", level=2, name=re.compile(server.guest_order))).to_be_visible()
    expect(page.get_by_role("heading", name="Update log (newest first)")).to_be_visible()
    assert accessibility_problems(page) == []
    page.locator(".shipment-record").first.get_by_role("button", name=re.compile("^Refresh")).click()
    # then the page confirms it and the job's status turns to completed without a reload
    expect(page.get_by_role("status").filter(has_text="queued")).to_be_visible()
    job = page.locator("#actions .job-status").first
    expect(job).to_have_text("completed", timeout=30_000)
    # and the dashboard shows the finished refresh beside the figures
    page.goto(server.url + "/admin")
    expect(page.locator("#actions")).to_contain_text("finished")
    assert accessibility_problems(page) == []
    save_screenshot(page, "dashboard.png")


def test_a_viewer_sees_no_refresh_buttons_and_is_refused_a_refresh(server, page):
    sign_in(page, server, server.viewer_token)
    expect(page.get_by_text("Viewer (read-only)")).to_be_visible()
    assert page.get_by_role("button", name=re.compile("refresh", re.IGNORECASE)).count() == 0
    page.goto(f"{server.url}/admin/search?q={server.guest_order}")
    expect(page.get_by_role("heading", name="Update log (newest first)")).to_be_visible()
    assert page.get_by_role("button", name=re.compile("refresh", re.IGNORECASE)).count() == 0
    csrf = page.locator("input[name=csrf_token]").first.input_value()
    refused = page.request.post(server.url + "/admin/refresh/order",
                                form={"csrf_token": csrf, "order_id": server.guest_order})
    assert refused.status == 403 and "Viewer tokens can only look" in refused.text()


def test_an_open_tracking_page_updates_itself_when_the_status_changes(server, page):
    # given the guest's page open on an out-for-delivery parcel
    look_up(page, server)
    status = page.locator("h2.status-title").first
    expect(status).to_have_text("Out for delivery")
    page.evaluate("window.notReloaded = true")
    # when the courier delivers it (the simulator's clock jumps a day; its webhook and a refresh follow)
    requests.post(server.sim_url + "/_sim/clock", json={"advance_seconds": 86400}, timeout=10).raise_for_status()
    server.admin_api("POST", f"/api/admin/tracking/refresh-order/{server.guest_order}").raise_for_status()
    # then the open page shows it, announces it to screen readers, and was not reloaded
    expect(status).to_have_text("Delivered", timeout=30_000)
    expect(page.locator("#live-status")).to_have_text("Status updated: Delivered")
    expect(page.locator(".facts")).to_contain_text("Delivered")
    assert page.evaluate("window.notReloaded") is True
    assert accessibility_problems(page) == []
