"""The notifications' HTTP side over the app and a real worker: endpoints managed through the admin
API (validation, viewers read only, audit), rotation signing with both secrets for a day, test
events, deliveries with attempts, replays that say so; registrations with notify_email and locale;
the unsubscribe link and the email's tracking link."""
from __future__ import annotations

from datetime import timedelta
from urllib.parse import parse_qs, urlparse

import pytest
from receivers import WebhookReceiver
from standardwebhooks import Webhook
from web_client import JOURNEY, configured

from models import AuditLog, OrderContact
from pipeline import emails, outbox, runtime, service
from pipeline import webhook_events as events
from pipeline.contacts import new_key
from settings import Secret
from web import sessions

BASE = "/api/admin/notifications"


@pytest.fixture
def receiver():
    with WebhookReceiver() as made:
        yield made


@pytest.fixture
def notifying(api):
    with configured(notify_allow_http=True, notify_retry_delays=(1,), contact_keys=Secret(new_key())):
        yield api


def test_endpoints_are_created_listed_changed_and_deleted_by_admins_and_read_by_viewers(notifying, receiver):
    api = notifying
    created = api.admin("POST", f"{BASE}/endpoints", json={"url": receiver.url, "events": ["shipment.delivered"],
                                                           "description": "orders system"})
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["secret"].startswith("whsec_") and body["enabled"] and body["events"] == ["shipment.delivered"]
    endpoint_id = body["id"]
    listed = api.viewer("GET", f"{BASE}/endpoints").json()
    assert [e["id"] for e in listed["endpoints"]] == [endpoint_id]
    assert "secret" not in listed["endpoints"][0]
    assert api.viewer("POST", f"{BASE}/endpoints", json={"url": receiver.url, "events": ["*"]}).status_code == 403
    changed = api.admin("PATCH", f"{BASE}/endpoints/{endpoint_id}", json={"enabled": False})
    assert changed.status_code == 200 and changed.json()["enabled"] is False
    assert changed.json()["disabled_reason"] == "disabled by an admin"
    assert api.admin("GET", f"{BASE}/endpoints/{endpoint_id}").json()["enabled"] is False
    assert api.admin("DELETE", f"{BASE}/endpoints/{endpoint_id}").status_code == 204
    assert api.admin("GET", f"{BASE}/endpoints/{endpoint_id}").status_code == 404
    actions = [row.action for row in AuditLog.select().order_by(AuditLog.id)]
    assert actions == ["notification.endpoint.create", "notification.endpoint.update",
                       "notification.endpoint.delete"]


@pytest.mark.parametrize("body, field", [
    ({"url": "ftp://shop.example/hook", "events": ["*"]}, "url"),
    ({"url": "https://user:pw@shop.example/hook", "events": ["*"]}, "url"),
    ({"url": "https://shop.example/hook", "events": []}, "events"),
    ({"url": "https://shop.example/hook", "events": ["shipment.lost"]}, "events"),
    ({"url": "https://shop.example/hook", "events": ["*"], "colour": "red"}, "colour"),
    ({"events": ["*"]}, "url"),
])
def test_bad_endpoints_are_refused_naming_the_field(api, body, field):
    answer = api.admin("POST", f"{BASE}/endpoints", json=body)
    assert answer.status_code == 422 and field in answer.json()["fields"], answer.text


def test_http_endpoints_need_the_setting(api):
    answer = api.admin("POST", f"{BASE}/endpoints", json={"url": "http://shop.example/hook", "events": ["*"]})
    assert answer.status_code == 422
    assert "TRACKING_NOTIFY_ALLOW_HTTP" in answer.json()["fields"]["url"]


def test_a_rotated_secret_signs_alongside_the_old_one_for_a_day(notifying, receiver):
    api = notifying
    created = api.admin("POST", f"{BASE}/endpoints", json={"url": receiver.url, "events": ["*"]}).json()
    rotated = api.admin("POST", f"{BASE}/endpoints/{created['id']}/rotate-secret")
    assert rotated.status_code == 200
    new_secret = rotated.json()["secret"]
    assert new_secret != created["secret"]
    # a test event verifies with the new secret and with the old one
    receiver.secret = new_secret
    queued = api.admin("POST", f"{BASE}/endpoints/{created['id']}/test")
    assert queued.status_code == 202
    api.stack.wait_for(lambda: receiver.delivered(), what="the test event")
    [got] = receiver.received()
    assert got.payload["type"] == events.TEST
    Webhook(created["secret"]).verify(got.body, got.headers)
    assert len(got.headers["webhook-signature"].split(" ")) == 2
    # after a day only the new secret signs
    keys = outbox.signing_keys(created["id"])
    later = runtime.current().now() + timedelta(hours=25)
    assert len(events.signed_headers(keys, "msg_x", "{}", now=later)["webhook-signature"].split(" ")) == 1


def test_deliveries_list_every_attempt_and_a_replay_says_it_is_one(notifying, receiver):
    api = notifying
    created = api.admin("POST", f"{BASE}/endpoints", json={"url": receiver.url, "events": ["*"]}).json()
    receiver.secret = created["secret"]
    receiver.script = [503]
    api.polled("ORD-W1", "FKW001")
    api.stack.wait_for(lambda: len(receiver.delivered()) == 2, timeout=20, what="two events")
    deliveries = api.viewer("GET", f"{BASE}/endpoints/{created['id']}/deliveries").json()["deliveries"]
    assert sorted(d["event_type"] for d in deliveries) == [events.OUT_FOR_DELIVERY, events.STATUS_CHANGED]
    retried = [d for d in deliveries if d["attempts"] == 2]
    assert len(retried) == 1 and [a["status_code"] for a in retried[0]["attempt_log"]] == [503, 200]
    original = deliveries[0]
    replayed = api.admin("POST", f"{BASE}/deliveries/{original['id']}/replay")
    assert replayed.status_code == 202
    api.stack.wait_for(lambda: len(receiver.delivered()) == 3, what="the replay")
    replay = next(r for r in receiver.delivered().values() if r.payload.get("replay_of"))
    assert replay.payload["replay_of"] == original["webhook_id"] and replay.webhook_id != original["webhook_id"]
    assert replay.payload["data"] == original["payload"]["data"]
    assert api.admin("POST", f"{BASE}/deliveries/999999/replay").status_code == 404


def test_registration_takes_notify_email_and_locale(notifying):
    api = notifying
    body = {"order_id": "ORD-W2", "customer_email": "pembeli@example.com", "tracking_number": "FKW002",
            "courier": "fake", "notify_email": True, "locale": "ms"}
    answer = api.admin("POST", "/api/admin/shipments", json=body)
    assert answer.status_code == 201, answer.text
    assert (answer.json()["notify_email"], answer.json()["locale"]) == (True, "ms")
    contact = OrderContact.get(OrderContact.order == "ORD-W2")
    assert contact.locale == "ms" and contact.notify_email and "pembeli" not in contact.email_encrypted
    bad = api.admin("POST", "/api/admin/shipments", json={**body, "order_id": "ORD-W3", "locale": "xx",
                                                          "notify_email": "yes"})
    assert bad.status_code == 422 and set(bad.json()["fields"]) == {"locale", "notify_email"}


def test_notify_email_needs_a_contact_key(api):
    body = {"order_id": "ORD-W4", "customer_email": "b@example.com", "tracking_number": "FKW004", "courier": "fake",
            "notify_email": True}
    answer = api.admin("POST", "/api/admin/shipments", json=body)
    assert answer.status_code == 422 and "TRACKING_CONTACT_KEYS" in answer.json()["fields"]["notify_email"]


def test_the_unsubscribe_link_asks_then_stops_the_emails(notifying):
    api = notifying
    service.register_shipment(_registration("ORD-W5", "FKW005"))
    links = emails.links_for("ORD-W5", base_url="http://testserver", key=sessions.key_from_config(
        runtime.current().config))
    path = urlparse(links.unsubscribe)
    page = api.client.get(f"{path.path}?{path.query}")
    assert page.status_code == 200 and "Stop these emails" in page.text
    assert outbox.contact_of("ORD-W5").unsubscribed_at is None  # a GET (a mail scanner) changes nothing
    done = api.client.post(f"{path.path}?{path.query}", content=b"List-Unsubscribe=One-Click",
                           headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert done.status_code == 200 and "no more delivery emails" in done.text
    assert outbox.contact_of("ORD-W5").unsubscribed_at is not None
    assert outbox.customer_address("ORD-W5") is None
    forged = api.client.get("/notifications/unsubscribe?t=forged")
    assert forged.status_code == 400


def test_the_email_tracking_link_opens_the_tracking_page(notifying):
    api = notifying
    api.polled("ORD-W6", "FKW006", JOURNEY)
    links = emails.links_for("ORD-W6", base_url="http://testserver", key=sessions.key_from_config(
        runtime.current().config))
    path = urlparse(links.track)
    opened = api.client.get(f"{path.path}?{path.query}", follow_redirects=False)
    assert opened.status_code == 303 and opened.headers["location"].startswith("/track/view?t=")
    page = api.client.get(opened.headers["location"])
    assert page.status_code == 200 and "FKW006" in page.text
    assert parse_qs(urlparse(opened.headers["location"]).query)["t"]
    assert api.client.get("/track/email?t=nope").status_code == 410


def _registration(order_id: str, number: str):
    from pipeline.registration import ShipmentRegistration

    return ShipmentRegistration(order_id=order_id, customer_email="b@example.com", tracking_number=number,
                                courier="fake", notify_email=True)


