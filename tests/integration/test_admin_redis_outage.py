"""The web app while Redis is down (issue 18 points 8 and 9), on a Redis of the test's own that
the test kills: readiness stays 200 and says degraded, webhooks are stored with one log line for
the whole outage, an admin refresh leaves no pending job or claim behind, and a registration
commits with its audit row."""
from __future__ import annotations

import json
import logging

from web_client import WEBHOOK_SECRET, database_down

import models
from models import AuditLog, TrackingCache, TrackingJob, WebhookInbox


def test_readyz_is_200_and_degraded_while_only_redis_is_down(outage):
    api, redis = outage
    assert api.client.get("/readyz").json()["status"] == "ready"
    redis.stop()
    response = api.client.get("/readyz")
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "degraded", "checks": {"database": "ok", "broker": "unreachable"}}
    with database_down():
        assert api.client.get("/readyz").status_code == 503


def test_webhooks_during_a_redis_outage_are_stored_with_one_log_line_and_no_traceback(outage, caplog):
    from web.webhooks import ENQUEUE_OUTAGE

    api, redis = outage
    ENQUEUE_OUTAGE.recovered()  # the outage log is process-wide; start this test with none under way
    redis.stop()
    caplog.set_level(logging.DEBUG, logger="web.webhooks")
    caplog.set_level(logging.INFO)
    for index in range(20):
        body = json.dumps({"uuid": f"during-outage-{index}", "topic": "shipment.status.update",
                           "data": {"awb": "EPX0001"}}).encode()
        response = api.client.post(f"/api/webhooks/easyparcel/{WEBHOOK_SECRET}", content=body)
        assert response.status_code == 200 and response.json()["status"] == "accepted"
    assert WebhookInbox.select().where(WebhookInbox.status == models.INBOX_PENDING).count() == 20
    ours = [r for r in caplog.records if r.name == "web.webhooks" and r.levelno >= logging.INFO]
    assert len(ours) == 1, [r.getMessage() for r in ours]
    assert "still stored" in ours[0].getMessage()
    assert all(r.exc_info is None for r in caplog.records if r.name.startswith(("web", "pipeline")))


def test_an_admin_refresh_while_redis_is_down_leaves_no_pending_job_or_claim(outage):
    api, redis = outage
    api.register("ORD-R1", "EPR0000001")
    redis.stop()
    response = api.admin("POST", "/api/admin/tracking/refresh-order/ORD-R1")
    assert response.status_code == 503 and response.json()["error"] == "broker_unavailable"
    assert TrackingJob.select().where(TrackingJob.status.in_([models.JOB_PENDING, models.JOB_RUNNING])).count() == 0
    assert TrackingCache.get(TrackingCache.order == "ORD-R1").claimed_until is None
    [failed] = TrackingJob.select()
    assert failed.status == models.JOB_FAILED and "enqueue" in failed.last_error
    audited = [row.action for row in AuditLog.select().where(AuditLog.target == "ORD-R1")]
    assert "order.refresh" in audited


def test_a_registration_while_redis_is_down_commits_with_its_audit_row(outage):
    api, redis = outage
    redis.stop()
    response = api.admin("POST", "/api/admin/shipments", json={
        "order_id": "ORD-R2", "customer_email": "buyer@example.com", "tracking_number": "EPR0000002"})
    assert response.status_code == 201, response.text
    assert TrackingCache.select().where(TrackingCache.order == "ORD-R2").count() == 1
    [audit] = AuditLog.select().where(AuditLog.action == "shipment.register")
    assert audit.target == "ORD-R2"
