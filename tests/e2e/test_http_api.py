"""The HTTP API end to end, over a running `trackcache serve` and `trackcache worker` on
PostgreSQL and Redis with the courier simulator as EasyParcel: register, poll, read as guest
and as customer; 404 parity; 304; 429 with Retry-After; webhooks accepted, duplicates ignored,
bad secrets and oversized bodies refused; admin refreshes complete; viewers cannot write; the
internal key is required."""
from __future__ import annotations

import json

import requests

from processes import wait_until
from sim import journeys


def polled(service, order_id: str, status: str | None = None) -> list[str]:
    """Wait until the order's shipment has been polled (to `status`, when given); its statuses.
    (The simulator's clock may have been moved on by another test, so journeys may be further.)"""
    def done() -> list[str] | None:
        found = service.api.statuses(order_id)
        return found if found != ["pending"] and (status is None or found == [status]) else None

    return wait_until(done, what=f"{order_id} to be polled" + (f" to {status}" if status else ""))


def test_a_registered_shipment_is_polled_and_read_by_guests_and_its_customer(service):
    api = service.api
    # given a shipment registered by the shop (its first poll is due at once)
    created = api.register("E2E-100", "buyer100@example.com", "EPTRN0000100", customer_id="cust-100")
    assert created.status_code == 201, created.text
    assert api.register("E2E-100", "buyer100@example.com", "EPTRN0000100", customer_id="cust-100").status_code == 200
    # when a polling sweep runs (the internal route a scheduler would call)
    assert api.internal("POST", "/api/internal/tracking/process-jobs").json()["enqueued"] >= 1
    [status] = polled(service, "E2E-100")
    assert status in ("in_transit", "delivered")
    # then a guest sees the privacy-filtered view
    guest = api.track_as_guest("E2E-100", "Buyer100@Example.com", client_ip="198.51.100.100")
    assert guest.status_code == 200, guest.text
    [parcel] = guest.json()["shipments"]
    assert parcel["status"] == status and parcel["status_label"] in ("In transit", "Delivered")
    times = [event["time"] for event in parcel["events"]]
    assert times == sorted(times, reverse=True) and all(t.endswith("Z") for t in times)
    assert all("raw_code" not in event for event in parcel["events"])
    assert not any("Hub" in (event["location"] or "") for event in parcel["events"])
    assert guest.headers["cache-control"].startswith("private")
    # and the signed-in customer sees the full detail by order id alone
    customer = api.track_as_customer("E2E-100", "cust-100")
    assert customer.status_code == 200
    events = customer.json()["shipments"][0]["events"]
    assert all("raw_code" in event for event in events)
    assert any("Hub" in (event["location"] or "") for event in events)


def test_unknown_orders_and_wrong_emails_look_alike_and_etags_answer_304(service):
    api = service.api
    assert api.register("E2E-200", "buyer200@example.com", "EPPND0000200").status_code == 201
    unknown = api.track_as_guest("E2E-NOPE", "buyer200@example.com", client_ip="198.51.100.200")
    wrong = api.track_as_guest("E2E-200", "someone@example.com", client_ip="198.51.100.200")
    assert unknown.status_code == wrong.status_code == 404
    assert unknown.content == wrong.content
    assert unknown.json() == {"error": "not_found", "detail": "no order matches this order id and email"}
    first = api.track_as_guest("E2E-200", "buyer200@example.com", client_ip="198.51.100.201")
    assert first.status_code == 200
    again = api.track_as_guest("E2E-200", "buyer200@example.com", client_ip="198.51.100.201",
                               etag=first.headers["etag"])
    assert again.status_code == 304 and again.content == b""


def test_a_guest_over_the_hourly_limit_gets_429_with_retry_after(service):
    api = service.api
    assert api.register("E2E-300", "buyer300@example.com", "EPPND0000300").status_code == 201
    ip = "198.51.100.30"
    # three failed lookups cost 9 of the 10 an hour; one found lookup costs 1
    assert [api.track_as_guest("E2E-300", "wrong@example.com", client_ip=ip).status_code for _ in range(3)] == \
        [404, 404, 404]
    assert api.track_as_guest("E2E-300", "buyer300@example.com", client_ip=ip).status_code == 200
    refused = api.track_as_guest("E2E-300", "buyer300@example.com", client_ip=ip)
    assert refused.status_code == 429 and refused.json()["error"] == "rate_limited"
    assert 0 < int(refused.headers["Retry-After"]) <= 3600
    assert api.track_as_guest("E2E-300", "buyer300@example.com", client_ip="198.51.100.31").status_code == 200


def test_easyparcel_webhooks_are_accepted_once_and_bad_ones_refused(service):
    api = service.api
    number = "EPDEL0000400"
    assert api.register("E2E-400", "buyer400@example.com", number).status_code == 201
    # given the courier's webhook announcing the delivery (as the simulator renders it)
    journey = journeys.build_journey(number, service.sim_seed, service.sim_epoch)
    body = json.dumps(journeys.render_webhook(journey, len(journey.events) - 1, service.sim_seed)).encode()
    # then it is accepted once, a repeat is acknowledged as a duplicate, and the update lands
    first = api.easyparcel_webhook(body)
    assert first.status_code == 200 and first.json()["status"] == "accepted"
    assert api.easyparcel_webhook(body).json() == {"status": "duplicate"}
    polled(service, "E2E-400", "delivered")
    # and a wrong secret or an oversized body is refused
    wrong = api.easyparcel_webhook(body, secret="not-the-secret")
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_webhook_secret"
    oversized = api.easyparcel_webhook(b'{"pad": "' + b"x" * 300_000 + b'"}')
    assert oversized.status_code == 413 and oversized.json()["error"] == "payload_too_large"
    malformed = api.easyparcel_webhook(b'{"topic": ')
    assert malformed.status_code == 400 and malformed.json()["error"] == "malformed_body"


def test_production_accepts_no_test_courier_and_acknowledges_a_webhook_without_topic(service):
    from fixture_files import load_fixture

    api = service.api
    fake = api.signed_webhook("fake", b'{"topic": "tracking", "event_id": "e2e-fake", "updates": []}')
    assert fake.status_code == 404 and fake.json()["error"] == "unknown_courier"
    created = api.easyparcel_webhook(load_fixture("easyparcel", "more", "webhook_shipment_created_no_topic.json")
                                     .encode())
    assert created.status_code == 200 and created.json()["status"] in ("accepted", "duplicate")


def test_the_simulators_own_webhooks_bring_a_delivery(service):
    api = service.api
    number = "EPOFD0000500"
    assert api.register("E2E-500", "buyer500@example.com", number).status_code == 201
    assert api.as_admin("POST", "/api/admin/tracking/refresh-order/E2E-500").status_code == 202
    polled(service, "E2E-500", "out_for_delivery")
    # when the simulator watches the number and its clock moves past the delivery
    requests.post(f"{service.sim_url}/_sim/shipments", json={"awb_numbers": [number]}, timeout=5).raise_for_status()
    requests.post(f"{service.sim_url}/_sim/clock", json={"advance_seconds": 2 * 86400}, timeout=5).raise_for_status()
    # then its webhook reaches the receiver and the shipment is delivered without a poll
    polled(service, "E2E-500", "delivered")
    record = api.order_record("E2E-500")
    assert [log["update_type"] for log in record["update_logs"]][0] == "webhook"


def test_admin_refresh_and_bulk_refresh_complete(service):
    api = service.api
    for index in range(3):
        assert api.register(f"E2E-60{index}", f"buyer60{index}@example.com", f"EPTRN000060{index}").status_code == 201
    refreshed = api.as_admin("POST", "/api/admin/tracking/refresh-order/E2E-600")
    assert refreshed.status_code == 202
    [job_id] = refreshed.json()["job_ids"]
    wait_until(lambda: api.job_status(job_id=str(job_id))["status"] == "completed", what="the manual refresh")
    bulk = api.as_admin("POST", "/api/admin/tracking/bulk-refresh", json={"order_ids": ["E2E-601", "E2E-602"]})
    assert bulk.status_code == 202 and bulk.json()["count"] == 2 and bulk.json()["skipped_over_budget"] == 0
    batch = wait_until(lambda: (b := api.job_status(batch_id=bulk.json()["batch_id"]))["is_finished"] and b,
                       what="the bulk refresh")
    assert batch["counts"]["completed"] == 2
    assert "pending" not in api.statuses("E2E-601") + api.statuses("E2E-602")
    usage = api.as_admin("GET", "/api/admin/tracking/api-usage").json()
    assert usage["today"]["calls"] >= 2 and usage["today"]["remaining"] < usage["today"]["budget"]


def test_viewers_cannot_write_and_internal_routes_need_the_key(service):
    api = service.api
    refused = api.as_viewer("POST", "/api/admin/shipments", json={
        "order_id": "E2E-700", "customer_email": "v@example.com", "tracking_number": "EPTRN0000700"})
    assert refused.status_code == 403 and refused.json()["error"] == "forbidden"
    assert api.as_viewer("GET", "/api/admin/tracking/job-status").status_code == 200
    assert api.as_viewer("GET", "/api/admin/shipments/E2E-700").status_code == 404
    assert api.request("GET", "/api/admin/tracking/job-status").status_code == 401
    assert api.internal("GET", "/api/internal/tracking/queue-stats", key="").status_code == 401
    assert api.internal("GET", "/api/internal/tracking/queue-stats", key="wrong-key-0123456789").status_code == 401
    stats = api.internal("GET", "/api/internal/tracking/queue-stats")
    assert stats.status_code == 200 and set(stats.json()) == {"queues", "ledger"}


def test_health_metrics_openapi_and_errors_over_http(service):
    api = service.api
    assert api.request("GET", "/healthz").json() == {"status": "ok"}
    assert api.request("GET", "/readyz").json()["checks"] == {"database": "ok", "broker": "ok"}
    metrics = api.request("GET", "/metrics").text
    assert "trackcache_http_request_duration_seconds_bucket" in metrics and "trackcache_database_up 1.0" in metrics
    assert "/api/customer/track-order" in api.request("GET", "/openapi.json").json()["paths"]
    missing = api.request("GET", "/no/such/route")
    assert missing.status_code == 404 and missing.headers["content-type"] == "application/json"
    assert api.request("PUT", "/healthz").json()["error"] == "method_not_allowed"
