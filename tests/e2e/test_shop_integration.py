"""The shop's integration API end to end, over a running `trackcache serve` and two `trackcache
worker` processes on PostgreSQL and Redis: the changes feed misses nothing while both workers
persist; 1,000 mixed registrations in one bulk call get a result each; an idempotent retry gets
the first answer; a corrected email makes the old one fail and the new one work; cursor pagination
over 5,000 shipments returns each exactly once while others are registered; customers read their
own orders with HS256 and RS256 JWTs and not another's; an expired JWT is 401; a stopped shipment
and an erased order show in the feed, and the erased order's lookups find nothing; a PATCH of the
email options turns the next status email into Malay, and one turning emails off stops the next.

The feed test runs first: it sweeps every due shipment, and the later tests register thousands."""
from __future__ import annotations

import json
import threading
import time
import uuid
from typing import Any

import psycopg2
import pytest

from processes import start_cli, stop, wait_until
from sim import journeys

FEED_SHIPMENTS = 400


@pytest.fixture(scope="module")
def second_worker(service):
    """A second worker process beside the session's, so two workers persist at once."""
    process = start_cli(service.env, service.log, "worker", "--processes", "1", "--threads", "4")
    time.sleep(3)
    assert process.poll() is None, f"the second worker exited; log: {service.log}"
    yield process
    stop(process)


@pytest.fixture(scope="module", autouse=True)
def thousands_left_unpolled(service):
    """After this module, the thousands of shipments it registered stop being due, so a later
    test's sweep does not spend the day's courier budget on them."""
    yield
    with psycopg2.connect(service.database_url) as connection, connection.cursor() as cursor:
        cursor.execute("UPDATE tracking_cache SET is_active = FALSE WHERE order_id LIKE 'BULK-E2E-%%'"
                       " OR order_id LIKE 'PAGE-%%' OR order_id LIKE 'MORE-%%'")


def query(service, sql: str, *params: Any) -> list[tuple]:
    """Ground truth from the service's database."""
    with psycopg2.connect(service.database_url) as connection, connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def registration(order_id: str, number: str, email: str | None = None, **extra: str) -> dict[str, str]:
    return {"order_id": order_id, "customer_email": email or f"{order_id.lower()}@example.com",
            "tracking_number": number, **extra}


class FeedReader(threading.Thread):
    """A shop pulling the changes feed in a loop, as fast as it can, while the writes happen."""

    def __init__(self, api, cursor: str) -> None:
        super().__init__(daemon=True)
        self.api, self.cursor = api, cursor
        self.seen: list[dict[str, Any]] = []
        self.finish = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while True:
                finishing = self.finish.is_set()
                page = self.api.changes(self.cursor, limit="50")
                self.seen.extend(page["changes"])
                self.cursor = page["next_cursor"]
                if finishing and not page["changes"]:
                    return
                if not page["changes"]:
                    time.sleep(0.02)
        except BaseException as error:  # reported by the test
            self.error = error


def test_the_changes_feed_misses_nothing_while_two_workers_persist(service, second_worker):
    api = service.api
    # given a shop that took a cursor before any of this and pulls the feed continuously
    start = api.changes("latest")["next_cursor"]
    reader = FeedReader(api, start)
    reader.start()
    # when shipments are registered in bulk, swept, and polled through both workers at once,
    # while more registrations commit concurrently
    numbers = [f"EPTRN7{n:05d}" for n in range(FEED_SHIPMENTS)]
    half = FEED_SHIPMENTS // 2
    assert api.bulk_register([registration(f"FEED-{n}", n) for n in numbers[:half]]).status_code == 200
    assert api.internal("POST", "/api/internal/tracking/process-jobs").status_code == 200
    assert api.bulk_register([registration(f"FEED-{n}", n) for n in numbers[half:]]).status_code == 200
    assert api.internal("POST", "/api/internal/tracking/process-jobs").status_code == 200

    def all_polled() -> bool:
        [(waiting,)] = query(service, "SELECT count(*) FROM tracking_cache WHERE order_id LIKE 'FEED-%%'"
                                      " AND current_status = 'pending'")
        return waiting == 0

    wait_until(all_polled, timeout=120, what="every feed shipment to be polled")
    ids = {row[0]: row[1] for row in query(service, "SELECT id, order_id FROM tracking_cache WHERE order_id LIKE "
                                                    "'FEED-%%'")}
    stored = query(service, "SELECT id, shipment_id, change FROM shipment_changes WHERE shipment_id = ANY(%s)"
                            " ORDER BY txid, id", list(ids))

    def feed_rows_seen() -> list[tuple[int, str]]:
        return [(c["shipment_id"], c["change"]) for c in list(reader.seen) if c["shipment_id"] in ids]

    # (a row is held back while an older write transaction anywhere on the server is open: latency, not loss)
    wait_until(lambda: len(feed_rows_seen()) >= len(stored) or reader.error, timeout=60,
               what="the reader to reach the stored feed rows")
    reader.finish.set()
    reader.join(timeout=60)
    assert reader.error is None, reader.error
    # then the pulling shop saw every change the database holds, each once, in feed order
    seen = feed_rows_seen()
    assert seen == [(shipment_id, change) for _, shipment_id, change in stored]
    assert len({c["cursor"] for c in reader.seen}) == len(reader.seen)
    assert {s for s, change in seen if change == "registered"} == set(ids)
    assert {s for s, change in seen if change == "tracking"} == set(ids)
    # (how often a later-numbered row committed first: what a plain "id > cursor" feed would miss)
    order_by_id = [row[0] for row in sorted(stored, key=lambda row: row[0])]
    overtaken = sum(1 for a, b in zip(order_by_id, [row[0] for row in stored]) if a != b)
    print(f"\nfeed rows: {len(stored)}; positions where commit order differs from id order: {overtaken}")
    assert second_worker.poll() is None


def test_a_bulk_call_of_1000_mixed_items_answers_each_and_an_idempotent_retry_repeats_it(service):
    api = service.api
    # given one order already registered, so items naming it with another email conflict
    assert api.register("BULK-E2E-0", "bulk0@example.com", "EPPND8000000").status_code == 201
    items: list[Any] = []
    for n in range(1000):
        if n % 100 == 1:
            items.append(registration("BULK-E2E-0", f"EPPND80{n:05d}", "someone-else@example.com"))  # conflict
        elif n % 100 == 2:
            items.append(registration(f"BULK-E2E-N{n}", "x"))  # invalid tracking number
        elif n % 100 == 3:
            items.append(registration("BULK-E2E-0", "EPPND8000000", "bulk0@example.com"))  # already stored
        else:
            items.append(registration(f"BULK-E2E-N{n}", f"EPPND80{n:05d}"))
    key = str(uuid.uuid4())
    # when they are sent in one call with an idempotency key
    started = time.perf_counter()
    response = api.bulk_register(items, idempotency_key=key)
    took = time.perf_counter() - started
    # then each item has its result, in order
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["count"] == 1000 and [r["index"] for r in body["results"]] == list(range(1000))
    assert body["summary"] == {"created": 970, "unchanged": 10, "conflict": 10, "invalid": 10}
    for n, result in enumerate(body["results"]):
        expected = {1: "conflict", 2: "invalid", 3: "unchanged"}.get(n % 100, "created")
        assert result["status"] == expected, (n, result)
    assert body["results"][2]["fields"] == {"tracking_number": "must be 4-64 characters: letters, digits and -"}
    assert all(r["shipment_id"] for r in body["results"] if r["status"] in ("created", "unchanged"))
    [(stored,)] = query(service, "SELECT count(*) FROM tracking_cache WHERE order_id LIKE 'BULK-E2E-%%'")
    assert stored == 971
    print(f"\n1,000-item bulk registration over HTTP: {took * 1000:.0f} ms")
    # and a retry with the same key gets the same answer without registering anything again
    retry = api.bulk_register(items, idempotency_key=key)
    assert retry.status_code == 200 and retry.json() == body
    assert retry.headers["Idempotent-Replayed"] == "true"
    # while the same key with another body is refused
    other = api.bulk_register(items[:10], idempotency_key=key)
    assert other.status_code == 422 and other.json()["error"] == "idempotency_key_reused"


def test_a_corrected_email_makes_the_old_one_fail_and_the_new_one_work(service):
    api = service.api
    assert api.register("FIX-E2E-1", "typo@exmaple.com", "EPPND8100001").status_code == 201
    assert api.track_as_guest("FIX-E2E-1", "typo@exmaple.com", client_ip="198.51.100.171").status_code == 200
    [found] = api.as_admin("GET", "/api/admin/shipments", params={"tracking_number": "EPPND8100001"}).json()[
        "shipments"]
    corrected = api.as_admin("PATCH", "/api/admin/shipments/FIX-E2E-1/EPPND8100001",
                             json={"customer_email": "right@example.com"}, headers={"If-Match": found["version"]})
    assert corrected.status_code == 200 and corrected.json()["changed"] == ["customer_email"]
    assert api.track_as_guest("FIX-E2E-1", "typo@exmaple.com", client_ip="198.51.100.172").status_code == 404
    assert api.track_as_guest("FIX-E2E-1", "right@example.com", client_ip="198.51.100.173").status_code == 200
    # the version read before the correction no longer allows a write
    stale = api.as_admin("DELETE", "/api/admin/shipments/FIX-E2E-1/EPPND8100001",
                         headers={"If-Match": found["version"]})
    assert stale.status_code == 412


def test_cursor_pagination_over_5000_shipments_returns_each_once_while_others_are_registered(service):
    api = service.api
    # given 5,000 shipments
    for chunk in range(5):
        items = [registration(f"PAGE-{chunk}-{n}", f"EPPND82{chunk}{n:04d}") for n in range(1000)]
        assert api.bulk_register(items).json()["summary"]["created"] == 1000
    [(first_id,)] = query(service, "SELECT min(id) FROM tracking_cache WHERE order_id LIKE 'PAGE-%%'")
    expected = {row[0] for row in query(service, "SELECT courier_tracking_number FROM tracking_cache"
                                                 " WHERE order_id LIKE 'PAGE-%%'")}
    assert len(expected) == 5000
    # when a client pages through them while another registers new ones
    stop_registering = threading.Event()
    registered_meanwhile: list[str] = []

    def register_more() -> None:
        batch = 0
        while not stop_registering.is_set():
            numbers = [f"EPPND83{batch:03d}{n:02d}" for n in range(50)]
            if api.bulk_register([registration(f"MORE-{n}", n) for n in numbers]).status_code == 200:
                registered_meanwhile.extend(numbers)
            batch += 1

    writer = threading.Thread(target=register_more, daemon=True)
    writer.start()
    seen: list[str] = []
    cursor = None
    pages = 0
    try:
        while True:
            params = {"limit": "500", "courier": "easyparcel"} | ({"cursor": cursor} if cursor else {})
            page = api.as_viewer("GET", "/api/admin/shipments", params=params)
            assert page.status_code == 200, page.text
            seen += [s["tracking_number"] for s in page.json()["shipments"] if s["shipment_id"] >= first_id]
            pages += 1
            cursor = page.json()["next_cursor"]
            if cursor is None:
                break
    finally:
        stop_registering.set()
        writer.join(timeout=60)
    # then every one of the 5,000 came exactly once, and nothing came twice
    assert registered_meanwhile, "no registrations happened while paging"
    assert len(seen) == len(set(seen))
    assert expected <= set(seen)
    assert pages >= 10


def test_customer_jwts_read_their_own_orders_and_not_anothers(service):
    api = service.api
    assert api.register("JWT-E2E-1", "jwt1@example.com", "EPPND8400001", customer_id="cust-jwt-1").status_code == 201
    assert api.register("JWT-E2E-2", "jwt1@example.com", "EPPND8400002", customer_id="cust-jwt-1").status_code == 201
    assert api.register("JWT-E2E-3", "jwt3@example.com", "EPPND8400003", customer_id="cust-jwt-3").status_code == 201
    for algorithm in ("HS256", "RS256"):
        mine = api.customer_orders(api.customer_jwt("cust-jwt-1", algorithm=algorithm))
        assert mine.status_code == 200, (algorithm, mine.text)
        assert [o["order_id"] for o in mine.json()["orders"]] == ["JWT-E2E-2", "JWT-E2E-1"]
        assert mine.json()["orders"][0]["shipments"][0]["status"] == "pending"
        theirs = api.customer_orders(api.customer_jwt("cust-jwt-3", algorithm=algorithm)).json()
        assert [o["order_id"] for o in theirs["orders"]] == ["JWT-E2E-3"]
        # the tracking read takes the same token, and refuses another customer's order
        token = api.customer_jwt("cust-jwt-3", algorithm=algorithm)
        other = api.request("GET", "/api/customer/track-order", params={"order_id": "JWT-E2E-1"},
                            headers={"Authorization": f"Bearer {token}"})
        assert other.status_code == 404
        expired = api.customer_orders(api.customer_jwt("cust-jwt-1", algorithm=algorithm, expires_in=-120))
        assert expired.status_code == 401 and expired.json()["error"] == "invalid_token"
        assert "expired" in expired.json()["detail"]
    wrong_audience = api.customer_orders(api.customer_jwt("cust-jwt-1", audience="another-shop"))
    assert wrong_audience.status_code == 401
    paged = api.customer_orders(api.customer_jwt("cust-jwt-1"), limit="1").json()
    rest = api.customer_orders(api.customer_jwt("cust-jwt-1"), cursor=paged["next_cursor"]).json()
    assert [o["order_id"] for o in paged["orders"] + rest["orders"]] == ["JWT-E2E-2", "JWT-E2E-1"]
    assert api.customer_orders(api.customer_token("cust-jwt-3")).json()["orders"][0]["order_id"] == "JWT-E2E-3"


def test_stopping_a_shipment_and_erasing_an_order_show_in_the_feed_and_end_lookups(service):
    api = service.api
    cursor = api.changes("latest")["next_cursor"]
    assert api.register("GONE-E2E-1", "gone@example.com", "EPPND8500001", customer_id="cust-gone").status_code == 201
    stopped = api.as_admin("DELETE", "/api/admin/shipments/GONE-E2E-1/EPPND8500001")
    assert stopped.status_code == 200 and stopped.json()["shipment"]["is_active"] is False
    assert api.track_as_guest("GONE-E2E-1", "gone@example.com", client_ip="198.51.100.181").status_code == 200
    erased = api.as_admin("DELETE", "/api/admin/orders/GONE-E2E-1")
    assert erased.status_code == 200 and erased.json()["status"] == "erased"
    assert api.track_as_guest("GONE-E2E-1", "gone@example.com", client_ip="198.51.100.182").status_code == 404
    assert api.customer_orders(api.customer_jwt("cust-gone")).json()["orders"] == []
    [(email_hash, customer_id)] = query(service, "SELECT customer_email_hash, customer_id FROM orders WHERE id = %s",
                                        "GONE-E2E-1")
    assert (email_hash, customer_id) == ("erased", None)
    def feed_of_order() -> list[str] | None:
        changes = [c["change"] for c in api.changes(cursor)["changes"]
                   if c["shipment"] and c["shipment"]["order_id"] == "GONE-E2E-1"]
        return changes if len(changes) >= 3 else None

    assert wait_until(feed_of_order, what="the feed to show the stop and the erasure") == [
        "registered", "stopped", "erased"]


def test_patching_email_options_changes_the_next_emails_language_and_turning_them_off_stops_it(service):
    api, sink = service.api, service.sink
    assert sink is not None
    number, order, path = "EPTRN8700001", "MAIL-E2E-1", "/api/admin/shipments/MAIL-E2E-1/EPTRN8700001"
    journey = journeys.build_journey(number, service.sim_seed, service.sim_epoch)
    first_of = {}
    for index, event in enumerate(journey.events):
        first_of.setdefault(event.intended_status, index)

    def courier_reports(status: str) -> None:
        """The courier's webhook for the journey's first event of this status (history included)."""
        body = json.dumps(journeys.render_webhook(journey, first_of[status], service.sim_seed)).encode()
        assert api.easyparcel_webhook(body).status_code == 200
        wait_until(lambda: api.statuses(order) == [status], what=f"{order} to reach {status}")

    def emails() -> list[Any]:
        return [m for m in sink.caught() if "mail-e2e-1@example.com" in m.recipients]

    # given an order whose customer asked for emails, in English by default
    answer = api.as_admin("POST", "/api/admin/shipments",
                          json=registration(order, number, "mail-e2e-1@example.com") | {"notify_email": True})
    assert answer.status_code == 201, answer.text
    courier_reports("in_transit")
    wait_until(lambda: len(emails()) == 1, what="the first email")
    assert emails()[0].subject == f"Order {order}: In transit"
    # when the shop switches the order's emails to Malay (under the version it read)
    [listed] = api.as_admin("GET", "/api/admin/shipments", params={"tracking_number": number}).json()["shipments"]
    assert (listed["notify_email"], listed["locale"]) == (True, "en")
    malay = api.as_admin("PATCH", path, json={"locale": "ms"}, headers={"If-Match": listed["version"]})
    assert malay.status_code == 200 and malay.json()["changed"] == ["locale"], malay.text
    # then the next status email is in Malay
    courier_reports("out_for_delivery")
    wait_until(lambda: len(emails()) == 2, what="the second email")
    assert emails()[1].subject == f"Pesanan {order}: Sedang dihantar"
    assert "Bungkusan anda sedang dihantar hari ini." in emails()[1].text
    # when the shop turns the order's emails off
    off = api.as_admin("PATCH", path, json={"notify_email": False},
                       headers={"If-Match": malay.json()["shipment"]["version"]})
    assert off.status_code == 200 and off.json()["changed"] == ["notify_email"], off.text
    # then the delivery sends no email
    courier_reports("delivered")
    time.sleep(3)  # the worker's notify lane had time to deliver one
    assert len(emails()) == 2
    [(email_rows,)] = query(service, "SELECT count(*) FROM notification_outbox WHERE order_id = %s"
                                     " AND channel = 'email'", order)
    assert email_rows == 2
    # and the audit names the fields, not their values
    details = [json.loads(row[0]) for row in query(service, "SELECT detail::text FROM audit_log WHERE action ="
                                                            " 'shipment.correct' AND target = %s ORDER BY id", order)]
    assert [d["fields"] for d in details] == [["locale"], ["notify_email"]]
