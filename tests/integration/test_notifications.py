"""Notifications through real actors and a real worker (embedded, then PostgreSQL + Redis): status
changes become outbox rows in the persist transaction, delivered as signed webhooks to a local
receiver that verifies them with `standardwebhooks` and as emails to a local SMTP server; a
status reached again notifies once; failures retry on the configured schedule with every attempt
recorded; unsubscribes and bounces stop emails; addresses are encrypted and keys rotate."""
from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest
from receivers import WebhookReceiver
from test_pipeline import JOURNEY, scan

import models
from models import NotificationAttempt, NotificationOutbox, OrderContact
from pipeline import outbox, runtime, service
from pipeline import status as S
from pipeline import webhook_events as events
from pipeline.contacts import ContactCipher, ContactKeyError, new_key
from pipeline.registration import ShipmentRegistration
from settings import Secret
from sim.mail_sink import MailSink

KEY = new_key()


@pytest.fixture
def receiver():
    with WebhookReceiver() as made:
        yield made


@pytest.fixture
def sink():
    with MailSink() as made:
        yield made


@pytest.fixture
def notify_stack(request, tmp_path, sink):
    """The pipeline stack with notifications set up: http endpoints allowed, quick retries, SMTP
    to the test's sink, a contact key."""
    from stacks import build_stack

    overrides = {"notify_allow_http": True, "notify_retry_delays": (1, 1), "contact_keys": Secret(KEY),
                 "smtp_url": Secret(sink.url), "email_from": "Shop <track@shop.example>",
                 "public_url": "https://track.shop.example"}
    if request.param == "embedded":
        made, stop = build_stack("embedded", f"sqlite:///{tmp_path / 'pipeline.db'}", "", **overrides)
    else:
        made, stop = build_stack("redis", request.getfixturevalue("postgres_url"),
                                 request.getfixturevalue("redis_url"), **overrides)
    yield made
    stop()


both = pytest.mark.parametrize("notify_stack", ["embedded", "redis"], indirect=True)


def register(order_id: str, number: str, *, notify: bool = True, locale: str | None = None,
             email: str = "buyer@example.com") -> int:
    result = service.register_shipment(ShipmentRegistration(
        order_id=order_id, customer_email=email, tracking_number=number, courier="fake", notify_email=notify,
        locale=locale))
    assert result.outcome == service.CREATED
    return result.shipment_id


def subscribe(receiver: WebhookReceiver, event_types=("*",)) -> int:
    endpoint_id, secret = outbox.create_endpoint(receiver.url, list(event_types), "test shop",
                                                 now=runtime.current().now())
    receiver.secret = secret
    return endpoint_id


@both
def test_a_status_change_sends_one_signed_webhook_per_subscribed_event_and_one_email(notify_stack, receiver, sink):
    # given an endpoint subscribed to everything and a shipment whose customer wants emails
    subscribe(receiver)
    sid = register("ORD-N1", "FKN001")
    notify_stack.courier.script_journey("FKN001", JOURNEY)
    # when it is polled (pending -> out for delivery)
    service.request_refresh([sid])
    notify_stack.wait_for(lambda: len(receiver.delivered()) >= 2 and sink.caught(), what="webhooks and email")
    notify_stack.settle()
    # then the shop got status_changed and out_for_delivery, each once, verified
    types = sorted(r.payload["type"] for r in receiver.delivered().values())
    assert types == [events.OUT_FOR_DELIVERY, events.STATUS_CHANGED]
    data = next(iter(receiver.delivered().values())).payload["data"]
    assert (data["order_id"], data["tracking_number"], data["courier"]) == ("ORD-N1", "FKN001", "fake")
    assert (data["previous_status"], data["status"]) == (S.PENDING, S.OUT_FOR_DELIVERY)
    assert data["event"]["description"] == "Out for delivery"
    # and the customer one email, with both parts and a one-click unsubscribe
    [mail] = sink.caught()
    assert mail.recipients == ("buyer@example.com",)
    assert "Out for delivery" in mail.subject and "ORD-N1" in mail.subject
    assert "FKN001" in mail.text and "https://track.shop.example/track/email?t=" in mail.text
    assert "<html" in mail.html and "Follow your parcel" in mail.html
    assert mail.list_unsubscribe.startswith("<https://track.shop.example/notifications/unsubscribe?t=")
    assert mail.list_unsubscribe_post == "List-Unsubscribe=One-Click"
    # when the same data arrives again (a second poll, then a webhook of the same scans)
    service.request_refresh([sid])
    notify_stack.wait_for(lambda: models.TrackingJob.select().where(
        models.TrackingJob.status == models.JOB_COMPLETED).count() == 2, what="second poll")
    notify_stack.settle()
    # then nothing more is sent
    assert len(receiver.received()) == 2 and len(sink.caught()) == 1
    assert NotificationOutbox.select().count() == 3


@both
def test_a_failing_endpoint_gets_the_event_on_the_third_attempt_and_every_attempt_is_recorded(notify_stack,
                                                                                              receiver):
    endpoint_id = subscribe(receiver, [events.DELIVERED])
    receiver.script = [500, 500]
    sid = register("ORD-N2", "FKN002", notify=False)
    notify_stack.courier.script_journey("FKN002", [*JOURNEY, scan(18, S.DELIVERED, "Delivered")])
    service.request_refresh([sid])
    notify_stack.wait_for(lambda: receiver.delivered(), timeout=30, what="the third attempt")
    notify_stack.settle()
    assert [r.answered for r in receiver.received()] == [500, 500, 200]
    assert len({r.webhook_id for r in receiver.received()}) == 1  # the same message each time
    [row] = NotificationOutbox.select()
    assert (row.status, row.attempts, row.event_type) == (models.NOTIFY_DELIVERED, 3, events.DELIVERED)
    attempts = list(NotificationAttempt.select().order_by(NotificationAttempt.id))
    assert [(a.is_success, a.status_code) for a in attempts] == [(False, 500), (False, 500), (True, 200)]
    assert all(a.latency_ms is not None for a in attempts) and '"received"' in attempts[-1].response_excerpt
    [delivery] = outbox.deliveries(endpoint_id)
    assert len(delivery["attempt_log"]) == 3


@both
def test_unsubscribing_and_bouncing_stop_the_emails(notify_stack, sink):
    first = register("ORD-N3", "FKN003")
    second = register("ORD-N4", "FKN004", email="gone@example.com")
    sink.refused.add("gone@example.com")
    assert outbox.unsubscribe("ORD-N3", now=runtime.current().now())
    notify_stack.courier.script_journey("FKN003", JOURNEY)
    notify_stack.courier.script_journey("FKN004", JOURNEY)
    service.request_refresh([first, second])
    notify_stack.wait_for(lambda: NotificationOutbox.select().where(
        NotificationOutbox.status == models.NOTIFY_FAILED).count() == 1, what="the bounce")
    notify_stack.settle()
    assert sink.caught() == []
    assert outbox.contact_of("ORD-N4").bounced_at is not None
    # a later transition of the bounced order sends nothing either
    notify_stack.courier.script_journey("FKN004", [*JOURNEY, scan(18, S.DELIVERED, "Delivered")])
    service.request_refresh([second])
    notify_stack.wait_for(lambda: models.TrackingCache.get_by_id(second).current_status == S.DELIVERED,
                          what="delivered")
    notify_stack.settle()
    assert NotificationOutbox.select().where(NotificationOutbox.order_id == "ORD-N4").count() == 1


@both
def test_the_address_is_encrypted_at_rest_and_rotating_keys_keeps_it_readable(notify_stack):
    register("ORD-N5", "FKN005", email="Secret.Buyer@example.com")
    # the database holds no readable address
    stored = OrderContact.get(OrderContact.order == "ORD-N5").email_encrypted
    assert "Secret.Buyer" not in stored and "example.com" not in stored
    raw = models.database.execute_sql("SELECT * FROM order_contacts").fetchall()
    assert not any("example.com" in str(value) for row in raw for value in row)
    with pytest.raises(ContactKeyError):
        ContactCipher(new_key()).decrypt(stored)
    assert outbox.customer_address("ORD-N5") == "Secret.Buyer@example.com"
    # a new key in front: old addresses still read, then rotation re-encrypts under the new key
    newer = new_key()
    rt = runtime.current()
    rt.config = dataclasses.replace(rt.config, contact_keys=Secret(f"{newer},{KEY}"))
    assert outbox.customer_address("ORD-N5") == "Secret.Buyer@example.com"
    assert outbox.rotate_contact_keys() == 1
    rt.config = dataclasses.replace(rt.config, contact_keys=Secret(newer))
    assert outbox.customer_address("ORD-N5") == "Secret.Buyer@example.com"
    # erasing the order's contact removes the address
    assert outbox.erase_customer_contact("ORD-N5") == 1
    assert outbox.contact_of("ORD-N5") is None


@both
def test_a_corrected_email_is_where_the_next_email_goes(notify_stack):
    from pipeline import shipment_admin
    from pipeline.corrections import ShipmentCorrection

    register("ORD-N7", "FKN007", email="old.buyer@example.com")
    OrderContact.update(bounced_at=runtime.current().now()).where(OrderContact.order == "ORD-N7").execute()
    result = shipment_admin.correct_shipment("ORD-N7", "FKN007", ShipmentCorrection(customer_email="new.buyer@example.com"),
                                             if_match=None, now=runtime.current().now())
    assert result.changed_fields == ("customer_email",)
    assert outbox.customer_address("ORD-N7") == "new.buyer@example.com"
    # the bounce was the old address's
    assert outbox.contact_of("ORD-N7").bounced_at is None


@both
def test_a_lost_delivery_message_is_sent_by_the_sweep(notify_stack, receiver):
    subscribe(receiver, [events.STATUS_CHANGED])
    sid = register("ORD-N6", "FKN006", notify=False)
    # the change and its outbox row commit, but the delivery message never reaches a worker
    now = runtime.current().now()
    with models.write_transaction():
        row = models.TrackingCache.get_by_id(sid)
        ids = outbox.record_status_changes([{**_change(row), "status": S.IN_TRANSIT}], now=now - timedelta(minutes=5))
    assert len(ids) == 1 and receiver.received() == []
    assert service.requeue_lost_notifications() == 1
    notify_stack.wait_for(lambda: receiver.delivered(), what="the swept delivery")


def _change(row):
    from pipeline import store

    return store.notice_of(row, row.current_status, now=runtime.current().now())


@both
def test_an_endpoint_failing_for_days_is_disabled_and_raises_an_alert(notify_stack, receiver):
    from web.queries import alert_figures

    endpoint_id = subscribe(receiver, [events.STATUS_CHANGED])
    receiver.script = [500] * 10
    # given an endpoint that has failed every delivery since six days ago
    models.NotificationEndpoint.update(failing_since=runtime.current().now() - timedelta(days=6)).where(
        models.NotificationEndpoint.id == endpoint_id).execute()
    sid = register("ORD-N7", "FKN007", notify=False)
    notify_stack.courier.script_journey("FKN007", JOURNEY)
    # when one more delivery fails
    service.request_refresh([sid])
    notify_stack.wait_for(lambda: not outbox.endpoint_row(endpoint_id).is_enabled, what="the endpoint disabled")
    notify_stack.settle()
    # then it is disabled, its pending delivery is dropped, and the alert rule sees it
    endpoint = outbox.endpoint_row(endpoint_id)
    assert endpoint.disabled_reason.startswith("every delivery failed for 5 days")
    assert outbox.count_endpoints_disabled_for_failing() == 1
    assert NotificationOutbox.get().status == models.NOTIFY_CANCELLED
    from web.stats import STATS

    assert alert_figures(runtime.current().now(), runtime.current(), STATS.snapshot()).disabled_notification_endpoints == 1


@both
def test_erasing_an_order_erases_its_encrypted_address_and_unsent_emails(notify_stack):
    from pipeline import shipment_admin

    register("ORD-N8", "FKN008")
    assert outbox.contact_of("ORD-N8") is not None
    shipment_admin.erase_order("ORD-N8", now=runtime.current().now())
    assert outbox.contact_of("ORD-N8") is None
    assert models.database.execute_sql("SELECT COUNT(*) FROM order_contacts").fetchone()[0] == 0
