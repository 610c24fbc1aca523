"""The pages over the real pipeline (embedded, then PostgreSQL and Redis): the guest tracking form
and result page (privacy filter, shop-zone times, not-found parity, rate limits, escaping, live
fragment with ETags), and the admin dashboard (sign-in cookie, CSRF, refreshes that complete and
are audited, viewers refused, search with the unfiltered record)."""
from __future__ import annotations

import hashlib
import re
from urllib.parse import parse_qs, urlparse

from web_client import (  # noqa: F401  (fixtures)
    ADMIN_TOKEN,
    JOURNEY,
    VIEWER_TOKEN,
    configured,
    scan,
)

import models
from models import AuditLog, TrackingJob
from pipeline import service
from web import display

ADMIN_FINGERPRINT = hashlib.sha256(ADMIN_TOKEN.encode()).hexdigest()[:12]
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def look_up(api, order_id: str, email: str, **headers: str):
    return api.client.post("/track", data={"order_id": order_id, "email": email}, headers=headers,
                           follow_redirects=False)


def result_page(api, order_id: str, email: str = "buyer@example.com"):
    lookup = look_up(api, order_id, email)
    assert lookup.status_code == 303, lookup.text
    return api.client.get(lookup.headers["location"])


def csrf_of(html: str) -> str:
    match = CSRF.search(html)
    assert match, "the page carries a CSRF token"
    return match.group(1)


def sign_in(api, token: str = ADMIN_TOKEN):
    form = api.client.get("/admin/login")
    response = api.client.post("/admin/login", data={"token": token, "csrf_token": csrf_of(form.text),
                                                     "next": "/admin"}, follow_redirects=False)
    assert response.status_code == 303, response.text
    return response


# --- tracking page ---------------------------------------------------------------------------------

def test_the_form_has_labelled_fields_and_strict_security_headers(api):
    page = api.client.get("/track?order_id=DEMO-1")
    assert page.status_code == 200
    assert '<html lang="en">' in page.text
    assert '<label for="order_id">' in page.text and '<label for="email">' in page.text
    assert 'value="DEMO-1"' in page.text
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
    assert page.headers["x-content-type-options"] == "nosniff"
    assert "set-cookie" not in page.headers, "guests get no cookie"


def test_a_guest_lookup_redirects_to_a_result_page_with_status_progress_and_filtered_timeline(api):
    # given a polled shipment out for delivery
    api.polled("ORD-P1", "FKP001")
    # when the guest looks it up (email in another case) and follows the redirect
    lookup = look_up(api, "ORD-P1", " Buyer@Example.com ")
    assert lookup.status_code == 303
    target = urlparse(lookup.headers["location"])
    assert target.path == "/track/view" and "buyer" not in lookup.headers["location"].lower(), \
        "the email never goes into the URL"
    page = api.client.get(lookup.headers["location"])
    # then the page shows the status in words, the progress and the guest's timeline
    assert page.status_code == 200
    html = page.text
    assert 'data-status="out_for_delivery">Out for delivery</h2>' in html
    assert 'aria-current="step"' in html and "Delivery progress" in html
    assert "Kuala Lumpur time (UTC+08:00)" in html
    # times in the shop's zone on screen, UTC in the data
    newest = JOURNEY[3].to_dict()["time"]
    assert f'<time datetime="{newest}">{display.format_local(newest, "Asia/Kuala_Lumpur")}</time>' in html
    assert "Penang, MY" in html and "BAYAN BARU" not in html, "locations are privacy filtered"
    assert "012-3456789" not in html, "phone numbers in event texts are filtered"
    assert "just now" in html and "data-ago" in html
    assert page.headers["cache-control"] == "no-store" and page.headers["referrer-policy"] == "no-referrer"


def test_an_unknown_order_and_a_wrong_email_get_the_same_friendly_404(api):
    api.register("ORD-P2", "FKP002", email="right@example.com")
    unknown = look_up(api, "ORD-NOPE", "right@example.com")
    wrong = look_up(api, "ORD-P2", "wrong@example.com")
    assert unknown.status_code == wrong.status_code == 404
    assert "We could not find an order with that order number and email address" in unknown.text
    assert unknown.text.replace("ORD-NOPE", "ORD-P2") == wrong.text.replace("wrong@", "right@")


def test_too_many_lookups_get_a_friendly_429_with_retry_after(api):
    api.register("ORD-P3", "FKP003")
    with configured(guest_rate_limit=2):
        assert look_up(api, "ORD-P3", "buyer@example.com").status_code == 303
        assert look_up(api, "ORD-P3", "buyer@example.com").status_code == 303
        refused = look_up(api, "ORD-P3", "buyer@example.com")
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) > 0
    assert "Please try again in about 60 minutes" in refused.text or "Please try again in an hour" in refused.text


def test_a_failed_lookup_costs_more_than_a_found_one_like_the_api(api):
    with configured(guest_rate_limit=3, failed_lookup_cost=3):  # a miss costs 3 of the 3
        assert look_up(api, "ORD-NOPE", "buyer@example.com").status_code == 404
        assert look_up(api, "ORD-NOPE", "buyer@example.com").status_code == 429


def test_an_incomplete_form_is_answered_with_field_messages(api):
    response = look_up(api, "", "not-an-email")
    assert response.status_code == 422
    assert "Enter your order number." in response.text
    assert "Enter an email address like name@example.com." in response.text
    assert 'aria-invalid="true"' in response.text and 'id="error-summary"' in response.text


def test_courier_and_user_text_is_escaped(api):
    api.polled("ORD-P4", "FKP004", [scan(0, "<script>alert('x')</script> Parcel collected", "in_transit",
                                         "<b>Ipoh</b>, MY")])
    page = result_page(api, "ORD-P4")
    assert "<script>alert" not in page.text and "&lt;script&gt;" in page.text
    form = look_up(api, "ORD-P4", '"><img src=x onerror=alert(1)>@example.com')
    assert "<img src=x" not in form.text and "&lt;img src=x" in form.text
    sign_in(api)
    search = api.client.get("/admin/search", params={"q": "<svg onload=alert(1)>"})
    assert search.status_code == 404 and "<svg onload" not in search.text and "&lt;svg onload" in search.text


def test_the_live_fragment_answers_304_until_the_status_changes(api):
    # given an open result page
    sid = api.polled("ORD-P5", "FKP005", JOURNEY[:2])
    page = result_page(api, "ORD-P5")
    live_url = re.search(r'data-live-src="([^"]+)"', page.text).group(1).replace("&amp;", "&")
    etag = re.search(r'data-live-etag="([^"]+)"', page.text).group(1).replace("&#34;", '"')
    # when nothing changed, the poll is a bodiless 304
    same = api.client.get(live_url, headers={"If-None-Match": etag})
    assert same.status_code == 304 and same.headers["etag"] == etag and not same.content
    # when the courier reports delivery
    api.stack.courier.script_journey("FKP005", JOURNEY + [scan(20, "Delivered", "delivered")])
    service.request_refresh([sid])
    api.stack.wait_for(lambda: models.TrackingCache.get_by_id(sid).current_status == "delivered", what="delivery")
    api.stack.settle()
    # then the poll returns the new fragment, with a new ETag
    changed = api.client.get(live_url, headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["etag"] != etag
    assert 'data-status="delivered">Delivered</h2>' in changed.text and "<html" not in changed.text
    assert "Delivered</dt>" in changed.text


def test_a_tampered_or_expired_link_asks_for_the_lookup_again(api):
    api.polled("ORD-P6", "FKP006")
    lookup = look_up(api, "ORD-P6", "buyer@example.com")
    token = parse_qs(urlparse(lookup.headers["location"]).query)["t"][0]
    bad = api.client.get("/track/view", params={"t": token[:-2] + "xx"})
    assert bad.status_code == 400 and "This tracking link is not valid" in bad.text
    with configured(track_link_hours=-1):  # every link is older than that
        expired_link = lookup.headers["location"]
        expired = api.client.get(expired_link)
        assert expired.status_code == 410 and "This tracking link has expired" in expired.text
        assert api.client.get(expired_link.replace("/track/view", "/track/live")).status_code == 410


# --- admin dashboard -------------------------------------------------------------------------------

def test_the_dashboard_asks_for_a_sign_in_and_sets_a_strict_session_cookie(api):
    first = api.client.get("/admin", follow_redirects=False)
    assert first.status_code == 303 and first.headers["location"] == "/admin/login?next=%2Fadmin"
    wrong = api.client.post("/admin/login", data={"token": "not-a-token-at-all",
                                                  "csrf_token": csrf_of(api.client.get("/admin/login").text)})
    assert wrong.status_code == 401 and "not an admin or viewer token" in wrong.text
    signed_in = sign_in(api)
    cookie = signed_in.headers["set-cookie"]
    assert cookie.startswith("trackcache_admin=") and "httponly" in cookie.lower()
    assert "samesite=lax" in cookie.lower() and "path=/admin" in cookie.lower()
    assert ADMIN_TOKEN not in cookie, "the cookie keeps a digest, never the token"
    dashboard = api.client.get("/admin")
    assert dashboard.status_code == 200 and dashboard.headers["cache-control"] == "no-store"
    for heading in ("Job ledger", "Courier API budget today", "Courier calls today", "API calls, last 30 days",
                    "Active shipments by status", "Needs attention", "Recent failed jobs"):
        assert heading in dashboard.text
    assert dashboard.text.count('role="img"') == 3, "three server-rendered SVG charts"
    # the API and the tracking page never see the dashboard cookie
    assert api.client.get("/track").headers.get("set-cookie") is None


def test_sign_in_without_the_form_csrf_token_or_from_another_origin_is_refused(api):
    api.client.get("/admin/login")
    no_token = api.client.post("/admin/login", data={"token": ADMIN_TOKEN})
    assert no_token.status_code == 403 and "This form has expired" in no_token.text
    csrf = csrf_of(api.client.get("/admin/login").text)
    cross = api.client.post("/admin/login", data={"token": ADMIN_TOKEN, "csrf_token": csrf},
                            headers={"Origin": "https://evil.example"})
    assert cross.status_code == 403
    assert api.client.get("/admin", follow_redirects=False).status_code == 303, "still signed out"


def test_an_admin_refreshes_a_shipment_from_the_attention_list_and_sees_the_job_complete(api):
    # given a flagged shipment on the dashboard
    sid = api.polled("ORD-P7", "FKP007", JOURNEY[:2])
    models.TrackingCache.update(requires_attention=True, attention_reason="5 consecutive failed polls").where(
        models.TrackingCache.id == sid).execute()
    sign_in(api)
    dashboard = api.client.get("/admin")
    assert f'action="/admin/refresh/shipment/{sid}"' in dashboard.text and "5 consecutive failed polls" in dashboard.text
    calls = api.stack.courier.calls
    last_job = TrackingJob.select().count()
    # when the admin presses its refresh button
    done = api.client.post(f"/admin/refresh/shipment/{sid}", data={"csrf_token": csrf_of(dashboard.text),
                                                                    "next": "/admin"}, follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] == "/admin"
    [job] = TrackingJob.select().order_by(TrackingJob.id).offset(last_job)
    after = api.client.get("/admin")
    assert "Refresh of FKP007 queued" in after.text and f'data-job-id="{job.id}"' in after.text
    # then the job completes, the panel says so, and the action is audited
    api.stack.wait_for(lambda: TrackingJob.get_by_id(job.id).status == models.JOB_COMPLETED, what="the refresh")
    panel = api.client.get("/admin/actions")
    assert panel.status_code == 200 and f'data-job-id="{job.id}">completed<' in panel.text
    assert "data-live-stop" in panel.text
    assert api.client.get("/admin/actions", headers={"If-None-Match": panel.headers["etag"]}).status_code == 304
    assert api.stack.courier.calls == calls + 1
    audited = AuditLog.get(AuditLog.action == "shipment.refresh")
    assert (audited.actor, audited.role, audited.target) == (ADMIN_FINGERPRINT, "admin", "ORD-P7")


def test_a_dashboard_action_with_a_wrong_csrf_token_is_refused_and_does_nothing(api):
    sid = api.register("ORD-P8", "FKP008")
    sign_in(api)
    refused = api.client.post(f"/admin/refresh/shipment/{sid}", data={"csrf_token": "forged"})
    assert refused.status_code == 403 and "This form has expired" in refused.text
    assert TrackingJob.select().count() == 0


def test_a_viewer_sees_no_refresh_buttons_and_cannot_post_actions(api):
    sid = api.register("ORD-P9", "FKP009")
    models.TrackingCache.update(requires_attention=True).where(models.TrackingCache.id == sid).execute()
    sign_in(api, VIEWER_TOKEN)
    dashboard = api.client.get("/admin")
    assert "Viewer (read-only)" in dashboard.text and "FKP009" in dashboard.text
    assert "/admin/refresh/" not in dashboard.text and "Bulk refresh" not in dashboard.text
    search = api.client.get("/admin/search", params={"q": "ORD-P9"})
    assert search.status_code == 200 and "/admin/refresh/" not in search.text
    csrf = csrf_of(dashboard.text)  # the sign-out form's token
    for path, data in ((f"/admin/refresh/shipment/{sid}", {}), ("/admin/refresh/order", {"order_id": "ORD-P9"}),
                       ("/admin/refresh/bulk", {"status": "pending"})):
        refused = api.client.post(path, data={"csrf_token": csrf, **data})
        assert refused.status_code == 403 and "Viewer tokens can only look" in refused.text
    assert TrackingJob.select().count() == 0
    assert AuditLog.select().where(AuditLog.action.contains("refresh")).count() == 0


def test_a_bulk_refresh_by_status_runs_as_one_batch_and_is_audited(api):
    for index in range(2):
        api.polled(f"ORD-Q{index}", f"FKQ00{index}", [scan(index, "Parcel collected", "in_transit")])
    sign_in(api)
    csrf = csrf_of(api.client.get("/admin").text)
    done = api.client.post("/admin/refresh/bulk", data={"csrf_token": csrf, "status": "in_transit", "next": "/admin"},
                           follow_redirects=False)
    assert done.status_code == 303
    page = api.client.get("/admin")
    assert "Bulk refresh of 2 shipments in “In transit” queued" in page.text
    [audited] = AuditLog.select().where(AuditLog.action == "tracking.bulk_refresh")
    batch_id = audited.target
    api.stack.wait_for(lambda: TrackingJob.select().where((TrackingJob.batch_id == batch_id)
                                                          & (TrackingJob.status == models.JOB_COMPLETED)).count() == 2,
                       what="the batch")
    assert "2 jobs: 2 completed, 0 failed, 0 waiting" in api.client.get("/admin/actions").text


def test_search_by_tracking_number_shows_the_unfiltered_record_with_update_logs_and_audits_it(api):
    api.polled("ORD-R1", "FKR001")
    sign_in(api)
    page = api.client.get("/admin/search", params={"q": "fkr001"})
    assert page.status_code == 200
    html = page.text
    assert "Order <span class=\"mono\">ORD-R1</span>" in html
    assert "Out for delivery (driver 012-3456789)" in html, "admins see the raw courier text"
    assert "BAYAN BARU, PENANG,, PIN, MY" in html
    assert "Update log" in html and "pending → out_for_delivery" in html
    assert 'action="/admin/refresh/order"' in html
    assert AuditLog.get(AuditLog.action == "shipment.read").target == "ORD-R1"
    refreshed = api.client.post("/admin/refresh/order", data={"csrf_token": csrf_of(html), "order_id": "ORD-R1",
                                                              "next": "/admin/search?q=fkr001"},
                                follow_redirects=False)
    assert refreshed.headers["location"] == "/admin/search?q=fkr001"
    assert AuditLog.get(AuditLog.action == "order.refresh").target == "ORD-R1"


def test_a_session_ends_when_its_token_is_removed_from_the_settings(api):
    sign_in(api)
    assert api.client.get("/admin").status_code == 200
    with configured(admin_tokens=()):
        assert api.client.get("/admin", follow_redirects=False).status_code == 303
    csrf = csrf_of(api.client.get("/admin").text)
    api.client.post("/admin/logout", data={"csrf_token": csrf})
    assert api.client.get("/admin", follow_redirects=False).status_code == 303


def test_static_files_are_served_with_validators(api):
    css = api.client.get("/static/style.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css") and css.headers["etag"]
    assert api.client.get("/static/live.js").headers["content-type"].startswith(("text/javascript",
                                                                                 "application/javascript"))
