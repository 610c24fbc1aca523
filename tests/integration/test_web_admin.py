"""Admin routes over the real pipeline: registration (201, 200 repeat, 409, 422), the full order
record, manual and bulk refreshes that complete, the ledger, API usage, attention and alerts;
viewers only read; every action and shipment read is audited under the token's fingerprint."""
from __future__ import annotations

import hashlib
from datetime import datetime, timezone

import models
from models import AuditLog, TrackingCache, TrackingJob
from pipeline import lanes, service
from web_client import ADMIN_TOKEN, configured, scan, shipment

ADMIN_FINGERPRINT = hashlib.sha256(ADMIN_TOKEN.encode()).hexdigest()[:12]


def registration(**overrides) -> dict:
    return {"order_id": "ORD-A1", "customer_email": "buyer@example.com", "tracking_number": "FKA001",
            "courier": "fake"} | overrides


def test_registration_creates_then_acknowledges_a_repeat_and_schedules_the_first_poll(api):
    created = api.admin("POST", "/api/admin/shipments", json=registration(customer_id="cust-1"))
    assert created.status_code == 201
    body = created.json()
    assert (body["status"], body["order_id"], body["tracking_number"], body["customer_id"]) == (
        "created", "ORD-A1", "FKA001", "cust-1")
    assert shipment(body["shipment_id"]).next_update_due <= datetime.now(timezone.utc)
    repeat = api.admin("POST", "/api/admin/shipments", json=registration(tracking_number=" fka001 "))
    assert repeat.status_code == 200 and repeat.json()["status"] == "unchanged"
    assert repeat.json()["shipment_id"] == body["shipment_id"]
    assert repeat.headers["etag"].startswith('W/"')  # every 200 carries a validator
    assert created.headers["cache-control"] == "no-store"


def test_a_conflicting_registration_is_refused_with_409(api):
    api.admin("POST", "/api/admin/shipments", json=registration())
    other_email = api.admin("POST", "/api/admin/shipments", json=registration(customer_email="other@example.com"))
    assert other_email.status_code == 409 and other_email.json()["error"] == "conflict"
    assert "different customer email" in other_email.json()["detail"]


def test_bad_registrations_are_refused_with_per_field_errors(api):
    response = api.admin("POST", "/api/admin/shipments", json={"order_id": "", "customer_email": "not-an-email",
                                                                "tracking_number": "x", "courier": "pigeon"})
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "validation_failed" and body["detail"]
    assert set(body["fields"]) == {"order_id", "customer_email", "tracking_number", "courier"}
    for raw in (b"[]", b"{not json", b""):
        bad = api.admin("POST", "/api/admin/shipments", content=raw, headers={"Content-Type": "application/json"})
        assert bad.status_code == 400 and bad.json()["error"] == "malformed_body"


def test_without_a_known_token_admin_routes_answer_401_and_viewers_cannot_write(api):
    anonymous = api.client.get("/api/admin/tracking/job-status")
    forged = api.client.get("/api/admin/tracking/job-status", headers={"Authorization": "Bearer forged-token-000000"})
    assert anonymous.status_code == forged.status_code == 401
    assert api.viewer("GET", "/api/admin/tracking/job-status").status_code == 200
    for path, body in (("/api/admin/shipments", registration()), ("/api/admin/tracking/bulk-refresh",
                                                                   {"all_active": True}),
                       ("/api/admin/tracking/refresh-order/ORD-A1", None)):
        refused = api.viewer("POST", path, json=body)
        assert refused.status_code == 403 and refused.json()["error"] == "forbidden"
    assert TrackingCache.select().count() == 0


def test_the_order_record_is_unfiltered_with_logs_and_jobs_and_its_read_is_audited(api):
    api.polled("ORD-A2", "FKA002", [scan(0, "Received by: AHMAD", "in_transit", "No 5, Jalan Ampang, KL", "X9")])
    response = api.viewer("GET", "/api/admin/shipments/ORD-A2")
    assert response.status_code == 200 and response.headers["cache-control"] == "no-store"
    record = response.json()
    assert record["order"]["id"] == "ORD-A2"
    [item] = record["shipments"]
    assert item["events"][0]["raw_text"] == "Received by: AHMAD" and item["events"][0]["location"] == \
        "No 5, Jalan Ampang, KL"
    assert item["last_api_response"]["tracking_number"] == "FKA002"
    assert record["update_logs"][0]["update_type"] == "manual" and record["jobs"][0]["status"] == "completed"
    not_modified = api.viewer("GET", "/api/admin/shipments/ORD-A2", headers={"If-None-Match": response.headers["etag"]})
    assert not_modified.status_code == 304
    assert api.admin("GET", "/api/admin/shipments/ORD-NOPE").status_code == 404
    reads = list(AuditLog.select().where(AuditLog.action == "shipment.read").order_by(AuditLog.id))
    assert [(r.role, r.target, r.detail["found"]) for r in reads] == [
        ("viewer", "ORD-A2", True), ("viewer", "ORD-A2", True), ("admin", "ORD-NOPE", False)]
    assert reads[0].client_address == "203.0.113.10"


def test_actions_are_audited_by_token_fingerprint_never_the_token(api):
    api.admin("POST", "/api/admin/shipments", json=registration())
    [row] = AuditLog.select().where(AuditLog.action == "shipment.register")
    assert (row.actor, row.role, row.target) == (ADMIN_FINGERPRINT, "admin", "ORD-A1")
    assert row.detail["outcome"] == "created"
    assert ADMIN_TOKEN not in str(row.detail) and ADMIN_TOKEN != row.actor


def test_a_manual_refresh_answers_202_with_job_ids_and_the_jobs_complete(api):
    sid = api.polled("ORD-A3", "FKA003", [scan(0, "Shipment information received", "info_received")])
    calls = api.stack.courier.calls
    response = api.admin("POST", "/api/admin/tracking/refresh-order/ORD-A3")
    assert response.status_code == 202
    [job_id] = response.json()["job_ids"]
    job = TrackingJob.get_by_id(job_id)
    assert (job.tracking_cache_id, job.priority, job.job_type) == (sid, lanes.MANUAL.priority, "manual")
    api.stack.wait_for(lambda: TrackingJob.get_by_id(job_id).status == models.JOB_COMPLETED, what="the manual job")
    assert api.stack.courier.calls == calls + 1
    one = api.admin("GET", "/api/admin/tracking/job-status", params={"job_id": str(job_id)}).json()
    assert (one["id"], one["status"], one["order_id"], one["tracking_number"]) == (
        job_id, "completed", "ORD-A3", "FKA003")
    assert api.admin("POST", "/api/admin/tracking/refresh-order/ORD-NOPE").status_code == 404
    audited = AuditLog.get(AuditLog.action == "order.refresh")
    assert audited.detail["job_ids"] == [job_id]


def test_a_bulk_refresh_by_orders_status_or_all_active_completes_as_one_batch(api):
    for index in range(3):
        api.register(f"ORD-B{index}", f"FKB00{index}")
        api.stack.courier.script_journey(f"FKB00{index}", [scan(index, "Parcel collected", "in_transit")])
    by_orders = api.admin("POST", "/api/admin/tracking/bulk-refresh", json={"order_ids": ["ORD-B0", "ORD-B1"]})
    assert by_orders.status_code == 202
    batch = by_orders.json()
    assert (batch["count"], batch["skipped_over_budget"]) == (2, 0)
    api.stack.wait_for(lambda: api.admin("GET", "/api/admin/tracking/job-status",
                                         params={"batch_id": batch["batch_id"]}).json()["is_finished"],
                       what="the batch")
    status = api.admin("GET", "/api/admin/tracking/job-status", params={"batch_id": batch["batch_id"]}).json()
    assert status["total"] == 2 and status["counts"]["completed"] == 2
    assert api.admin("POST", "/api/admin/tracking/bulk-refresh", json={"status": "in_transit"}).json()["count"] == 2
    assert api.admin("POST", "/api/admin/tracking/bulk-refresh", json={"all_active": True}).json()["count"] == 3
    api.stack.settle()
    assert AuditLog.select().where(AuditLog.action == "tracking.bulk_refresh").count() == 3


def test_a_bulk_refresh_respects_the_budget_and_reports_what_it_skipped(api):
    for index in range(4):
        api.register(f"ORD-C{index}", f"FKC00{index}")
    # a budget of 3 calls a day keeps 1 in reserve for manual refreshes; one number per call
    with configured(daily_budget=3, rate_buffer_percent=33, job_batch_size=1):
        body = api.admin("POST", "/api/admin/tracking/bulk-refresh", json={"all_active": True}).json()
    assert (body["count"], body["skipped_over_budget"]) == (2, 2)


def test_bad_bulk_selections_and_job_queries_are_refused(api):
    for selection in ({}, {"order_ids": []}, {"order_ids": "ORD-1"}, {"status": "flying"}, {"all_active": "yes"}):
        response = api.admin("POST", "/api/admin/tracking/bulk-refresh", json=selection)
        assert response.status_code == 422, selection
    assert api.admin("GET", "/api/admin/tracking/job-status", params={"job_id": "abc"}).status_code == 422
    assert api.admin("GET", "/api/admin/tracking/job-status", params={"job_id": "999999"}).status_code == 404
    assert api.admin("GET", "/api/admin/tracking/job-status", params={"batch_id": "nope"}).status_code == 404


def test_the_job_overview_counts_the_ledger_and_lists_recent_failures(api):
    sid = api.register("ORD-D1", "FKD001")
    api.stack.courier.script_not_found("FKD001")
    api.stack.courier.script_error("unavailable", times=10, tracking_number="FKD001")
    service.request_refresh([sid], lane=lanes.MANUAL, triggered_by="test")
    overview = api.stack.wait_for(
        lambda: (o := api.admin("GET", "/api/admin/tracking/job-status").json())["recent_failures"] and o,
        what="a failed job", timeout=60)
    assert overview["counts"]["failed"] >= 1
    failure = overview["recent_failures"][0]
    assert failure["tracking_number"] == "FKD001" and failure["last_error"]


def test_api_usage_reports_today_against_the_budget_and_the_history(api):
    api.polled("ORD-E1", "FKE001")
    usage = api.admin("GET", "/api/admin/tracking/api-usage").json()
    today = usage["today"]
    assert today["calls"] == 1 and today["success_rate"] == 1.0 and today["budget"] == 1000
    assert today["budget_used"] == 1 and today["remaining"] == 999 and today["remaining_scheduled"] == 949
    assert today["p50_latency_ms"] is not None and today["p95_latency_ms"] is not None
    assert usage["history"][-1]["day"] == today["day"] and usage["history"][-1]["calls"] == 1
    service.store_usage_summaries()
    assert api.admin("GET", "/api/admin/tracking/api-usage").json()["history"][-1]["calls"] == 1


def test_attention_lists_flagged_expired_and_unmapped_shipments(api):
    api.polled("ORD-F1", "FKF001", [scan(0, "Mystery scan", None, "Penang", "Z42")])
    flagged = api.register("ORD-F2", "FKF002")
    api.register("ORD-F3", "FKF003")
    TrackingCache.update(requires_attention=True, attention_reason="5 consecutive failed polls").where(
        TrackingCache.id == flagged).execute()
    body = api.viewer("GET", "/api/admin/tracking/attention").json()
    by_number = {item["tracking_number"]: item for item in body["shipments"]}
    assert set(by_number) == {"FKF001", "FKF002"}
    assert by_number["FKF001"]["reasons"] == ["unmapped_codes"] and by_number["FKF001"]["unmapped_codes"] == ["Z42"]
    assert by_number["FKF002"]["reasons"] == ["requires_attention"]
    assert api.viewer("GET", "/api/admin/tracking/attention", params={"limit": "0"}).status_code == 422


def test_alerts_evaluate_the_rules_on_live_figures(api):
    calm = api.viewer("GET", "/api/admin/tracking/alerts").json()
    assert calm["status"] == "ok" and calm["alerts"] == [] and calm["figures"]["database_ok"] is True
    for index in range(3):
        api.register(f"ORD-G{index}", f"FKG00{index}")
    service.request_refresh([row.id for row in TrackingCache.select()], lane=lanes.MANUAL)  # pending ledger rows
    with configured(alert_pending_jobs=1, alert_budget_percent=0):
        fired = api.viewer("GET", "/api/admin/tracking/alerts").json()
    names = {alert["name"]: alert["severity"] for alert in fired["alerts"]}
    assert names.get("budget_nearly_spent") == "warning"
    assert fired["thresholds"]["pending_jobs"] == 1
    api.stack.settle()
