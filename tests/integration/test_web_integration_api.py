"""The shop's integration API over the real pipeline, on SQLite and on PostgreSQL with Redis: bulk
registration with a result per item, idempotency keys, corrections with If-Match and audit
(notification options too: emails turned on with the address, off, and another language),
stopping a shipment, erasing an order, finding and listing with cursors, the changes feed, and a
customer's own orders with JWT and itsdangerous tokens."""
from __future__ import annotations

import json
import time
from datetime import timedelta

import jwt

import models
from models import AuditLog, IdempotencyKey, NotificationOutbox, Order, OrderContact, ShipmentChange
from pipeline import changes_feed, service
from pipeline import status as S
from pipeline.contacts import new_key
from settings import Secret
from sim.mail_sink import MailSink
from web_client import CUSTOMER_SECRET, JOURNEY, configured, scan, shipment

JWT_SECRET = "integration-jwt-secret-0123456789-abcdef"


def item(n: int, **overrides) -> dict:
    return {"order_id": f"BULK-{n}", "customer_email": f"buyer{n}@example.com", "tracking_number": f"FKB{n:05d}",
            "courier": "fake"} | overrides


def test_bulk_registration_answers_one_result_per_item_in_order(api):
    # given one stored order, so a later item conflicts with it
    api.register("BULK-1", "FKB00001", email="buyer1@example.com")
    items = [item(1), item(2), item(3, customer_email="not-an-email"), item(1, customer_email="other@example.com"),
             "not an object", item(2)]
    # when they are registered in one call
    response = api.admin("POST", "/api/admin/shipments/bulk", json={"shipments": items})
    # then every item has its own result, in the order given
    assert response.status_code == 200, response.text
    body = response.json()
    assert [r["status"] for r in body["results"]] == ["unchanged", "created", "invalid", "conflict", "invalid",
                                                      "unchanged"]
    assert [r["index"] for r in body["results"]] == list(range(6))
    assert body["summary"] == {"created": 1, "unchanged": 2, "conflict": 1, "invalid": 2}
    assert body["results"][2]["fields"] == {"customer_email": "must be an email address"}
    assert "different customer email" in body["results"][3]["detail"]
    assert body["results"][1]["shipment_id"] == body["results"][5]["shipment_id"] == \
        shipment(body["results"][1]["shipment_id"]).id
    assert AuditLog.select().where(AuditLog.action == "shipment.bulk_register").count() == 1


def test_bulk_registration_refuses_an_empty_or_oversized_list(api):
    assert api.admin("POST", "/api/admin/shipments/bulk", json={"shipments": []}).status_code == 422
    too_many = api.admin("POST", "/api/admin/shipments/bulk", json={"shipments": [item(n) for n in range(1001)]})
    assert too_many.status_code == 422 and "shipments" in too_many.json()["fields"]


def test_bulk_items_take_email_options_like_a_single_registration(api):
    items = [item(20, notify_email=True, locale="ms"), item(21, locale="fr")]
    without_key = api.admin("POST", "/api/admin/shipments/bulk", json={"shipments": items}).json()["results"]
    assert without_key[0]["status"] == "invalid" and "TRACKING_CONTACT_KEYS" in without_key[0]["fields"]["notify_email"]
    assert without_key[1]["fields"] == {"locale": "must be one of: en, ms"}
    with configured(contact_keys=Secret(new_key())):
        results = api.admin("POST", "/api/admin/shipments/bulk", json={"shipments": items[:1]}).json()["results"]
    assert results[0]["status"] == "created"
    contact = OrderContact.get(OrderContact.order == "BULK-20")
    assert contact.notify_email and contact.locale == "ms"


def test_an_idempotency_key_replays_the_first_answer_and_refuses_another_body(api):
    key = {"Idempotency-Key": "0b7e6c0e-6d8a-4d3e-9f43-7d1c1c2c3d4e"}
    first = api.admin("POST", "/api/admin/shipments", json=item(10), headers=key)
    assert first.status_code == 201
    again = api.admin("POST", "/api/admin/shipments", json=item(10), headers=key)
    assert again.status_code == 201 and again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    other = api.admin("POST", "/api/admin/shipments", json=item(11), headers=key)
    assert other.status_code == 422 and other.json()["error"] == "idempotency_key_reused"
    assert Order.get_or_none(Order.id == "BULK-11") is None
    # a viewer's refused write keeps nothing under the key
    assert api.viewer("POST", "/api/admin/shipments", json=item(12), headers={"Idempotency-Key": "k2"}).status_code \
        == 403
    assert IdempotencyKey.select().count() == 1
    bad = api.admin("POST", "/api/admin/shipments", json=item(12), headers={"Idempotency-Key": "has space"})
    assert bad.status_code == 400 and bad.json()["error"] == "invalid_idempotency_key"


def test_a_refused_request_keeps_nothing_under_its_key_so_the_corrected_retry_runs(api):
    key = {"Idempotency-Key": "refused-then-fixed"}
    refused = api.admin("POST", "/api/admin/shipments", json={**item(13), "customer_email": "not-an-email"},
                        headers=key)
    assert refused.status_code == 422 and refused.json()["error"] == "validation_failed"
    assert IdempotencyKey.select().count() == 0
    # the shop fixes the body and retries with the same key: it runs, and is kept from then on
    fixed = api.admin("POST", "/api/admin/shipments", json=item(13), headers=key)
    assert fixed.status_code == 201 and "idempotent-replayed" not in fixed.headers
    assert IdempotencyKey.select().count() == 1


def test_a_corrected_email_makes_the_old_one_fail_and_the_new_one_work(api):
    api.register("COR-1", "FKC001", email="old@example.com", customer_id="cust-c1")
    assert api.guest("COR-1", "old@example.com").status_code == 200
    found = api.admin("GET", "/api/admin/shipments", params={"tracking_number": "fkc001"}).json()["shipments"]
    [listed] = found
    stale = {"If-Match": '"not-the-version"'}
    refused = api.admin("PATCH", "/api/admin/shipments/COR-1/FKC001", json={"customer_email": "new@example.com"},
                        headers=stale)
    assert refused.status_code == 412
    response = api.admin("PATCH", "/api/admin/shipments/COR-1/FKC001", json={"customer_email": "new@example.com"},
                         headers={"If-Match": listed["version"]})
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "corrected" and response.json()["changed"] == ["customer_email"]
    assert response.json()["shipment"]["version"] != listed["version"]
    assert api.guest("COR-1", "old@example.com").status_code == 404
    assert api.guest("COR-1", "new@example.com").status_code == 200
    entries = [e.detail for e in AuditLog.select().where(AuditLog.action == "shipment.correct").order_by(AuditLog.id)]
    assert [e["outcome"] for e in entries] == ["precondition_failed", "corrected"]
    assert entries[1]["fields"] == ["customer_email"] and "new@example.com" not in json.dumps(entries)
    unknown = api.admin("PATCH", "/api/admin/shipments/COR-1/FKC001", json={"notes": "x"})
    assert unknown.status_code == 422 and "notes" in unknown.json()["fields"]
    assert api.admin("PATCH", "/api/admin/shipments/COR-404/FKC001", json={"customer_id": "x1"}).status_code == 404


def test_a_corrected_courier_is_polled_at_once_and_a_corrected_customer_sees_the_order(api):
    shipment_id = api.register("COR-2", "FKC002", courier="easyparcel", customer_id="cust-c2")
    models.TrackingCache.update(next_update_due=models.utcnow() + timedelta(days=1)).where(
        models.TrackingCache.id == shipment_id).execute()
    path = "/api/admin/shipments/COR-2/FKC002"
    # a courier correction: due now, and the next poll asks the new courier
    assert api.admin("PATCH", path, json={"courier": "pigeon"}).json()["fields"].keys() == {"courier"}
    moved = api.admin("PATCH", path, json={"courier": "fake"})
    assert moved.status_code == 200 and moved.json()["changed"] == ["courier"], moved.text
    assert shipment(shipment_id).courier_service == "fake"
    assert shipment(shipment_id).next_update_due <= models.utcnow()
    api.stack.courier.script_journey("FKC002", JOURNEY)
    service.request_refresh([shipment_id])
    api.stack.wait_for(lambda: shipment(shipment_id).current_status == S.OUT_FOR_DELIVERY, what="the new courier's poll")
    # a customer id correction: the order moves to the new customer's list; null removes it
    with configured(customer_jwt_secret=models_secret(JWT_SECRET)):
        def orders_of(customer: str) -> list[str]:
            token = jwt.encode({"sub": customer, "exp": int(time.time()) + 300}, JWT_SECRET, algorithm="HS256")
            answer = api.client.get("/api/customer/orders", headers={"Authorization": f"Bearer {token}"})
            return [o["order_id"] for o in answer.json()["orders"]]

        assert orders_of("cust-c2") == ["COR-2"]
        assert api.admin("PATCH", path, json={"customer_id": "cust-c3"}).json()["changed"] == ["customer_id"]
        assert (orders_of("cust-c2"), orders_of("cust-c3")) == ([], ["COR-2"])
        assert api.admin("PATCH", path, json={"customer_id": None}).json()["changed"] == ["customer_id"]
        assert orders_of("cust-c3") == [] and Order.get_by_id("COR-2").customer_id is None


def test_patching_notification_options_turns_emails_on_off_and_changes_their_language(api):
    path = "/api/admin/shipments/NOTE-1/FKT001"
    with MailSink() as sink, configured(contact_keys=Secret(new_key()), smtp_url=Secret(sink.url),
                                        email_from="Shop <track@shop.example>", public_url="https://track.example"):
        # given an order registered without emails: only the hash of its customer's address is kept
        shipment_id = api.register("NOTE-1", "FKT001", email="pembeli@example.com")
        [listed] = api.admin("GET", "/api/admin/shipments", params={"tracking_number": "FKT001"}).json()["shipments"]
        assert (listed["notify_email"], listed["locale"]) == (False, None)
        # when emails are turned on without the address, or given a language alone: refused, naming why
        refused = api.admin("PATCH", path, json={"notify_email": True})
        assert refused.status_code == 422, refused.text
        assert "NOTE-1" in refused.json()["fields"]["notify_email"]
        assert "customer_email" in refused.json()["fields"]["notify_email"]
        assert api.admin("PATCH", path, json={"locale": "ms"}).json()["fields"].keys() == {"locale"}
        assert api.admin("PATCH", path, json={"locale": "fr"}).json()["fields"]["locale"] == "must be one of: en, ms"
        assert OrderContact.get_or_none(OrderContact.order == "NOTE-1") is None
        # and with the address in the same PATCH, under the version read: on, in Malay
        on = api.admin("PATCH", path, json={"notify_email": True, "customer_email": "pembeli@example.com",
                                            "locale": "ms"}, headers={"If-Match": listed["version"]})
        assert on.status_code == 200, on.text
        assert on.json()["changed"] == ["notify_email", "locale"]
        assert (on.json()["shipment"]["notify_email"], on.json()["shipment"]["locale"]) == (True, "ms")
        assert on.json()["shipment"]["version"] != listed["version"]
        assert "pembeli" not in OrderContact.get(OrderContact.order == "NOTE-1").email_encrypted
        # then the next status change is emailed in Malay
        api.stack.courier.script_journey("FKT001", JOURNEY[:2])
        service.request_refresh([shipment_id])
        api.stack.wait_for(lambda: len(sink.caught()) == 1, what="the first email")
        assert sink.caught()[0].subject == "Pesanan NOTE-1: Dalam transit"
        # a PATCH under the version read before is refused; one under the current version changes the language
        stale = api.admin("PATCH", path, json={"locale": "en"}, headers={"If-Match": listed["version"]})
        assert stale.status_code == 412
        english = api.admin("PATCH", path, json={"locale": "en"}, headers={"If-Match": on.json()["shipment"]["version"]})
        assert english.status_code == 200 and english.json()["changed"] == ["locale"]
        api.stack.courier.script_journey("FKT001", JOURNEY)
        service.request_refresh([shipment_id])
        api.stack.wait_for(lambda: len(sink.caught()) == 2, what="the second email")
        assert sink.caught()[1].subject == "Order NOTE-1: Out for delivery"
        # when emails are turned off, the next status change sends none
        off = api.admin("PATCH", path, json={"notify_email": False})
        assert off.status_code == 200 and off.json()["changed"] == ["notify_email"]
        assert off.json()["shipment"]["notify_email"] is False
        assert api.admin("PATCH", path, json={"notify_email": False}).json()["status"] == "unchanged"
        api.stack.courier.script_journey("FKT001", [*JOURNEY, scan(18, "Delivered", S.DELIVERED)])
        with configured(email_all_shipments=True):  # (emailing every customer does not override "off")
            service.request_refresh([shipment_id])
            api.stack.wait_for(lambda: shipment(shipment_id).current_status == S.DELIVERED, what="the delivery")
            api.stack.settle()
        assert len(sink.caught()) == 2
        assert NotificationOutbox.select().where(NotificationOutbox.order_id == "NOTE-1").count() == 2
        # the address was kept, so emails can be turned on again without it
        again = api.admin("PATCH", path, json={"notify_email": True})
        assert again.status_code == 200 and again.json()["changed"] == ["notify_email"]
    entries = [e.detail for e in AuditLog.select().where(AuditLog.action == "shipment.correct").order_by(AuditLog.id)]
    assert [e["outcome"] for e in entries] == ["invalid", "invalid", "corrected", "precondition_failed", "corrected",
                                               "corrected", "unchanged", "corrected"]
    assert entries[2]["fields"] == ["notify_email", "locale"] and "pembeli" not in json.dumps(entries)


def test_emails_cannot_be_turned_on_without_a_contact_key_or_against_an_unsubscribe(api):
    api.register("NOTE-2", "FKT002", email="b@example.com")
    path = "/api/admin/shipments/NOTE-2/FKT002"
    no_key = api.admin("PATCH", path, json={"notify_email": True, "customer_email": "b@example.com"})
    assert no_key.status_code == 422 and "TRACKING_CONTACT_KEYS" in no_key.json()["fields"]["notify_email"]
    with configured(contact_keys=Secret(new_key())):
        assert api.admin("PATCH", path, json={"notify_email": True, "customer_email": "b@example.com"}).status_code \
            == 200
        OrderContact.update(unsubscribed_at=models.utcnow()).where(OrderContact.order == "NOTE-2").execute()
        assert api.admin("PATCH", path, json={"notify_email": False}).status_code == 200
        refused = api.admin("PATCH", path, json={"notify_email": True})
        assert refused.status_code == 409 and "unsubscribed" in refused.json()["detail"]
        assert not OrderContact.get(OrderContact.order == "NOTE-2").notify_email


def test_deleting_a_shipment_stops_its_polls_and_keeps_it(api):
    shipment_id = api.register("STOP-1", "FKS001")
    response = api.admin("DELETE", "/api/admin/shipments/STOP-1/FKS001")
    assert response.status_code == 200 and response.json()["status"] == "stopped"
    row = shipment(shipment_id)
    assert not row.is_active and row.next_update_due == models.NEVER
    assert response.json()["shipment"]["next_poll_at"] is None
    assert api.admin("DELETE", "/api/admin/shipments/STOP-1/FKS001").json()["status"] == "unchanged"
    refresh = api.admin("POST", "/api/admin/tracking/refresh-order/STOP-1", params={"force": "true"})
    assert refresh.json()["job_ids"] == []  # a stopped shipment is never polled, even when forced
    assert api.admin("GET", "/api/admin/shipments/STOP-1").status_code == 200


def test_erasing_an_order_removes_its_personal_data_and_keeps_statistics(api):
    shipment_id = api.polled("ERASE-1", "FKE001", email="gone@example.com", customer_id="cust-e1")
    from models import TrackingUpdateLog

    TrackingUpdateLog.create(tracking_cache=shipment_id, update_type="manual", triggered_by="customer:cust-e1",
                             api_call_success=True, started_at=models.utcnow())
    response = api.admin("DELETE", "/api/admin/orders/ERASE-1")
    assert response.status_code == 200 and response.json()["status"] == "erased"
    order = Order.get_by_id("ERASE-1")
    assert order.customer_id is None and order.customer_email_hash == "erased"
    row = shipment(shipment_id)
    assert not row.is_active and row.last_api_response is None and row.delivery_location is None
    assert row.tracking_events and all(event["location"] is None for event in row.tracking_events)
    assert row.current_status != "pending"
    assert not TrackingUpdateLog.select().where(TrackingUpdateLog.triggered_by.contains("cust-e1")).exists()
    assert api.guest("ERASE-1", "gone@example.com").status_code == 404
    assert api.customer("ERASE-1", "cust-e1").status_code == 404
    assert api.admin("DELETE", "/api/admin/orders/ERASE-1").json()["status"] == "unchanged"
    assert api.admin("DELETE", "/api/admin/orders/ERASE-404").status_code == 404


def test_the_list_pages_by_cursor_and_filters(api):
    response = api.admin("POST", "/api/admin/shipments/bulk",
                         json={"shipments": [item(n, order_id=f"LIST-{n}", tracking_number=f"FKL{n:04d}")
                                             for n in range(25)]})
    assert response.json()["summary"]["created"] == 25
    seen, cursor = [], None
    while True:
        params = {"limit": "10", "courier": "fake"} | ({"cursor": cursor} if cursor else {})
        page = api.viewer("GET", "/api/admin/shipments", params=params).json()
        seen += [s["tracking_number"] for s in page["shipments"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
        api.register(f"LIST-NEW-{len(seen)}", f"FKN{len(seen):04d}")  # inserted while paging
    listed = [n for n in seen if n.startswith("FKL")]
    assert listed == [f"FKL{n:04d}" for n in range(25)]
    assert len(seen) == len(set(seen))
    mixed = api.admin("GET", "/api/admin/shipments", params={"limit": "10", "cursor": cursor or "x", "status": "pending"})
    assert mixed.status_code == 422
    bad = api.admin("GET", "/api/admin/shipments", params={"status": "lost", "limit": "501", "colour": "red"})
    assert set(bad.json()["fields"]) == {"status", "limit", "colour"}
    pending = api.admin("GET", "/api/admin/shipments", params={"status": "pending", "requires_attention": "false",
                                                                "delayed": "false", "active": "true",
                                                                "updated_since": "2020-01-01T00:00:00Z"})
    assert pending.status_code == 200 and pending.json()["count"] >= 25


def test_the_changes_feed_reports_registrations_tracking_and_corrections_once_in_order(api):
    start = api.admin("GET", "/api/admin/changes", params={"after": "latest"}).json()["next_cursor"]
    shipment_id = api.polled("FEED-1", "FKF001")
    api.admin("PATCH", "/api/admin/shipments/FEED-1/FKF001", json={"customer_id": "cust-f1"})
    page = api.admin("GET", "/api/admin/changes", params={"after": start}).json()
    kinds = [(c["shipment_id"], c["change"]) for c in page["changes"]]
    assert kinds[0] == (shipment_id, "registered") and (shipment_id, "tracking") in kinds
    assert kinds[-1] == (shipment_id, "corrected")
    assert page["changes"][-1]["shipment"]["order_id"] == "FEED-1"
    after = api.admin("GET", "/api/admin/changes", params={"after": page["next_cursor"]}).json()
    assert after["changes"] == [] and after["next_cursor"] == page["next_cursor"]
    assert api.admin("GET", "/api/admin/changes", params={"after": "nonsense"}).status_code == 422
    assert ShipmentChange.select().count() >= 3


def test_customer_orders_with_jwts_and_legacy_tokens_show_only_their_own(api, tmp_path):
    api.register("CUST-1", "FKU001", customer_id="cust-u1")
    api.register("CUST-2", "FKU002", customer_id="cust-u1")
    api.register("CUST-3", "FKU003", customer_id="cust-u2")
    now = int(time.time())
    with configured(customer_jwt_secret=models_secret(JWT_SECRET)):
        token = jwt.encode({"sub": "cust-u1", "exp": now + 300}, JWT_SECRET, algorithm="HS256")
        mine = api.client.get("/api/customer/orders", params={"limit": "1"},
                              headers={"Authorization": f"Bearer {token}"})
        assert mine.status_code == 200, mine.text
        assert [o["order_id"] for o in mine.json()["orders"]] == ["CUST-2"]
        rest = api.client.get("/api/customer/orders", params={"cursor": mine.json()["next_cursor"]},
                              headers={"Authorization": f"Bearer {token}"}).json()
        assert [o["order_id"] for o in rest["orders"]] == ["CUST-1"] and rest["next_cursor"] is None
        assert rest["orders"][0]["shipments"][0]["status"] == "pending"
        expired = jwt.encode({"sub": "cust-u1", "exp": now - 300}, JWT_SECRET, algorithm="HS256")
        late = api.client.get("/api/customer/orders", headers={"Authorization": f"Bearer {expired}"})
        assert late.status_code == 401 and "expired" in late.json()["detail"]
        no_exp = jwt.encode({"sub": "cust-u1"}, JWT_SECRET, algorithm="HS256")
        assert api.client.get("/api/customer/orders", headers={"Authorization": f"Bearer {no_exp}"}).status_code == 401
    from web.auth import mint_customer_token

    legacy = mint_customer_token(CUSTOMER_SECRET, "cust-u2")
    theirs = api.client.get("/api/customer/orders", headers={"Authorization": f"Bearer {legacy}"}).json()
    assert [o["order_id"] for o in theirs["orders"]] == ["CUST-3"]
    assert api.client.get("/api/customer/orders").status_code == 401


def models_secret(value: str):
    from settings import Secret

    return Secret(value)


def test_feed_cursor_text_round_trips():
    cursor = changes_feed.FeedCursor(123456789012, 42)
    assert changes_feed.decode_cursor(cursor.encode()) == cursor


def test_an_unchanged_poll_adds_no_feed_row_and_a_new_event_adds_one(api):
    from models import TrackingUpdateLog
    from pipeline import service
    from web_client import JOURNEY, scan

    shipment_id = api.polled("FEED-2", "FKF002")

    def feed_rows() -> list[str]:
        return [row.change for row in ShipmentChange.select().where(ShipmentChange.shipment_id == shipment_id)
                .order_by(ShipmentChange.id)]

    assert feed_rows() == ["registered", "tracking"]

    def poll_again() -> None:
        logs = TrackingUpdateLog.select().where(TrackingUpdateLog.tracking_cache == shipment_id).count()
        service.request_refresh([shipment_id])
        api.stack.wait_for(lambda: TrackingUpdateLog.select().where(
            TrackingUpdateLog.tracking_cache == shipment_id).count() > logs, what="another poll")
        api.stack.settle()

    poll_again()
    assert feed_rows() == ["registered", "tracking"]
    api.stack.courier.script_journey("FKF002", [*JOURNEY, scan(20, "Delivered", "delivered")])
    poll_again()
    assert feed_rows() == ["registered", "tracking", "tracking"]


def test_cleanup_forgets_expired_idempotency_keys_and_old_feed_rows(api):
    from datetime import datetime, timedelta, timezone

    from pipeline import service

    old = datetime.now(timezone.utc) - timedelta(days=api.stack.config.retention_days + 1)
    IdempotencyKey.create(actor="a" * 12, idempotency_key="old", request_hash="h", status_code=201, created_at=old)
    IdempotencyKey.create(actor="a" * 12, idempotency_key="new", request_hash="h", status_code=201)
    ShipmentChange.create(shipment_id=1, change="tracking", changed_at=old)
    ShipmentChange.create(shipment_id=1, change="tracking")
    report = service.run_cleanup()
    assert (report["idempotency_keys_deleted"], report["changes_deleted"]) == (1, 1)
    assert [k.idempotency_key for k in IdempotencyKey.select()] == ["new"]
    assert ShipmentChange.select().count() == 1


def test_a_key_still_in_progress_is_409_and_a_stale_claim_is_taken_over(api):
    from datetime import datetime, timedelta, timezone

    from web.auth import token_fingerprint
    from web.idempotency import request_hash
    from web_client import ADMIN_TOKEN

    body = json.dumps(item(20)).encode()
    actor = token_fingerprint(ADMIN_TOKEN)
    IdempotencyKey.create(actor=actor, idempotency_key="busy", request_hash=request_hash(
        "POST", "/api/admin/shipments", b"", body))
    busy = api.admin("POST", "/api/admin/shipments", content=body,
                     headers={"Idempotency-Key": "busy", "Content-Type": "application/json"})
    assert busy.status_code == 409 and busy.json()["error"] == "idempotency_key_in_use"
    assert busy.headers["retry-after"] == "1"
    IdempotencyKey.update(created_at=datetime.now(timezone.utc) - timedelta(minutes=10)).execute()
    taken = api.admin("POST", "/api/admin/shipments", content=body,
                      headers={"Idempotency-Key": "busy", "Content-Type": "application/json"})
    assert taken.status_code == 201
    assert IdempotencyKey.get(IdempotencyKey.idempotency_key == "busy").status_code == 201


def test_a_feed_row_committed_out_of_order_is_held_back_not_skipped(redis_stack):
    """Two writers on PostgreSQL: the first takes a lower row id but commits last. A reader in
    between must not move its cursor past the first writer's row."""
    import psycopg2

    from pipeline.changes_feed import START, read_changes

    first = psycopg2.connect(redis_stack.config.database_url)
    second = psycopg2.connect(redis_stack.config.database_url)
    try:
        with first.cursor() as cursor:  # given writer 1 inserts (lower id) and stays open
            cursor.execute("INSERT INTO shipment_changes (shipment_id, change) VALUES (1, 'tracking') RETURNING id")
            [(first_id,)] = cursor.fetchall()
        with second.cursor() as cursor:  # and writer 2 inserts after it and commits first
            cursor.execute("INSERT INTO shipment_changes (shipment_id, change) VALUES (2, 'tracking') RETURNING id")
            [(second_id,)] = cursor.fetchall()
        second.commit()
        assert second_id > first_id
        # when a reader reads now, it gets neither (writer 1 is older and still open)
        rows, cursor_after = read_changes(START, 100)
        assert rows == [] and cursor_after == START
        # then once writer 1 commits, both come, writer 1's first
        first.commit()
        rows, cursor_after = read_changes(START, 100)
        assert [row["id"] for row in rows] == [first_id, second_id]
        assert read_changes(cursor_after, 100)[0] == []
    finally:
        first.close()
        second.close()
