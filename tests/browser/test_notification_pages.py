"""The notifications pages in a real browser against `trackcache dev`: an admin sees the shop's
webhook endpoints with their recent deliveries and failures, sends a test event from the page and
sees it delivered; a failing endpoint shows its failures; the dev-only page shows the customer
emails the in-process SMTP sink caught. Pages pass axe-core's checks."""
from __future__ import annotations

import re

from conftest import accessibility_problems
from playwright.sync_api import expect
from processes import free_port
from receivers import WebhookReceiver
from test_pages import sign_in


def test_an_admin_sees_endpoints_with_deliveries_and_failures_and_sends_a_test_event(server, page):
    with WebhookReceiver() as receiver:
        # given a working endpoint and one whose shop is down
        working = server.admin_api("POST", "/api/admin/notifications/endpoints",
                                   json={"url": receiver.url, "events": ["*"], "description": "Orders system"})
        assert working.status_code == 201, working.text
        receiver.secret = working.json()["secret"]
        down = server.admin_api("POST", "/api/admin/notifications/endpoints",
                                json={"url": f"http://127.0.0.1:{free_port()}/down", "events": ["*"],
                                      "description": "Warehouse (down)"})
        assert down.status_code == 201
        server.admin_api("POST", f"/api/admin/notifications/endpoints/{down.json()['id']}/test").raise_for_status()
        # when an admin opens the notifications page from the dashboard
        sign_in(page, server, server.admin_token)
        page.get_by_role("link", name=re.compile("^Notifications")).click()
        page.wait_for_url("**/admin/notifications")
        expect(page.get_by_role("heading", level=1, name="Notifications")).to_be_visible()
        table = page.locator("#endpoints")
        expect(table).to_contain_text(receiver.url)
        expect(table).to_contain_text("Orders system")
        assert accessibility_problems(page) == []
        # and sends a test event to the working endpoint
        row = table.locator("tr", has_text="Orders system")
        row.get_by_role("button", name=re.compile("^Send test")).click()
        expect(page.get_by_role("status").filter(has_text="Test event queued")).to_be_visible()
        # then the shop got it, verified, and the page lists it as delivered
        page.wait_for_timeout(1500)
        assert any(r.payload["type"] == "webhook.test" and r.is_verified for r in receiver.received())
        page.reload()
        section = page.locator(f"#endpoint-{working.json()['id']}")
        expect(section.locator("tr.delivery-delivered").first).to_contain_text("webhook.test")
        # and the endpoint that is down shows its failed attempt and the next try
        failing = page.locator(f"#endpoint-{down.json()['id']}")
        expect(failing.locator("tr.delivery").first).to_contain_text("ConnectionError")
        expect(table.locator("tr", has_text="Warehouse (down)")).to_contain_text("failing since")
        assert accessibility_problems(page) == []


def test_viewers_see_the_endpoints_without_buttons(server, page):
    sign_in(page, server, server.viewer_token)
    page.goto(server.url + "/admin/notifications")
    expect(page.get_by_role("heading", level=1, name="Notifications")).to_be_visible()
    assert page.get_by_role("button", name=re.compile("^Send test")).count() == 0


def test_the_dev_page_shows_the_emails_the_sink_caught(server, page):
    sign_in(page, server, server.admin_token)
    page.goto(server.url + "/admin/dev/emails")
    expect(page.get_by_role("heading", level=1, name="Caught emails")).to_be_visible()
    # demo customers who asked for emails get one when their parcel's status changes
    for _ in range(30):
        if page.locator("article").count():
            break
        page.wait_for_timeout(1000)
        page.reload()
    first = page.locator("article").first
    expect(first).to_contain_text("List-Unsubscribe")
    expect(first.get_by_role("heading", level=2)).to_contain_text(re.compile(r"^(Order|Pesanan) DEMO-"))
    assert accessibility_problems(page) == []
