"""Webhook receivers over the real pipeline: EasyParcel's secret URL and the signed form. A body is
in the inbox before the 200, duplicates are acknowledged once, malformed bodies are kept as
rejected, oversized ones refused while reading, and a database outage answers 503."""
from __future__ import annotations

import hashlib
import json
import time

import models
from fixture_files import load_fixture
from models import WebhookInbox
from web_client import WEBHOOK_SECRET, database_down, scan, shipment

EASYPARCEL_URL = f"/api/webhooks/easyparcel/{WEBHOOK_SECRET}"


def inbox_rows() -> list[WebhookInbox]:
    return list(WebhookInbox.select().order_by(WebhookInbox.id))


def test_an_easyparcel_webhook_is_stored_before_the_200_and_a_duplicate_is_not_stored_again(api):
    raw = load_fixture("easyparcel", "webhook_shipment_awb_update.json").encode()
    first = api.client.post(EASYPARCEL_URL, content=raw)
    assert first.status_code == 200 and first.json()["status"] == "accepted"
    [row] = inbox_rows()
    assert (row.id, row.courier, row.topic, row.external_event_id, row.raw_body) == (
        first.json()["inbox_id"], "easyparcel", "shipment.awb.update", "webhook-test-uuid-123", raw.decode())
    duplicate = api.client.post(EASYPARCEL_URL, content=raw)
    assert duplicate.status_code == 200 and duplicate.json() == {"status": "duplicate"}
    assert len(inbox_rows()) == 1


def test_a_webhook_without_uuid_is_deduplicated_by_the_hash_of_its_body(api):
    raw = json.dumps({"topic": "shipment.status.update", "awb_number": "EP000123", "shipment_status": "Delivered",
                      "event_date": "2026-11-25 10:00:00"}).encode()
    assert api.client.post(EASYPARCEL_URL, content=raw).json()["status"] == "accepted"
    assert api.client.post(EASYPARCEL_URL, content=raw).json()["status"] == "duplicate"
    assert inbox_rows()[0].external_event_id == "sha256:" + hashlib.sha256(raw).hexdigest()


def test_a_wrong_secret_is_refused_and_nothing_is_stored(api):
    for secret in ("wrong", WEBHOOK_SECRET[:-1], WEBHOOK_SECRET + "x"):
        response = api.client.post(f"/api/webhooks/easyparcel/{secret}", content=b'{"uuid": "u1"}')
        assert response.status_code == 401 and response.json()["error"] == "invalid_webhook_secret"
    assert inbox_rows() == []


def test_a_malformed_body_is_refused_with_400_and_kept_as_rejected_with_its_reason(api):
    for raw in (b'{"uuid": "u1", ', b"[1, 2, 3]"):
        response = api.client.post(EASYPARCEL_URL, content=raw)
        assert response.status_code == 400 and response.json()["error"] == "malformed_body"
    rows = inbox_rows()
    assert [(r.status, r.external_event_id) for r in rows] == [(models.INBOX_REJECTED, None)] * 2
    assert "not valid JSON" in rows[0].error and "JSON object" in rows[1].error


def test_an_oversized_body_is_refused_whether_or_not_it_declares_its_length(api):
    limit = api.stack.config.webhook_max_bytes
    big = b'{"uuid": "big", "pad": "' + b"x" * limit + b'"}'
    declared = api.client.post(EASYPARCEL_URL, content=big)
    assert declared.status_code == 413 and declared.json()["error"] == "payload_too_large"

    def chunks():  # no Content-Length: the limit is enforced while reading
        for start in range(0, len(big), 65536):
            yield big[start:start + 65536]

    streamed = api.client.post(EASYPARCEL_URL, content=chunks())
    assert streamed.status_code == 413
    assert inbox_rows() == []


def test_a_database_outage_answers_503_so_the_courier_retries(api):
    with database_down():
        response = api.client.post(EASYPARCEL_URL, content=b'{"uuid": "during-outage"}')
    assert response.status_code == 503 and response.json()["error"] == "database_unavailable"
    assert "retry-after" in response.headers
    assert inbox_rows() == []


def test_the_webhook_secret_stays_out_of_the_outage_log_line_and_of_error_bodies(api, caplog):
    import logging

    with caplog.at_level(logging.INFO), database_down():
        response = api.client.post(EASYPARCEL_URL, content=b'{"uuid": "during-outage"}')
    assert response.status_code == 503
    ours = [r.getMessage() for r in caplog.records if r.name.split(".")[0] in ("web", "pipeline", "uvicorn")]
    assert ours, "the outage was not logged"  # (httpx, the test's own client, logs its URLs: not ours)
    assert not any(WEBHOOK_SECRET in line for line in ours) and WEBHOOK_SECRET not in response.text
    missing = api.client.post(f"{EASYPARCEL_URL}/extra", content=b"{}")
    assert missing.status_code in (404, 405) and WEBHOOK_SECRET not in missing.text


def test_a_signed_webhook_flows_through_the_pipeline_into_the_shipment(api):
    sid = api.polled("ORD-W1", "FKW001", [scan(0, "Shipment information received", "info_received")])
    response = api.webhook_update("FKW001", [scan(5, "Delivered", "delivered")], "evt-w1")
    assert response.status_code == 200 and response.json()["status"] == "accepted"
    api.stack.wait_for(lambda: shipment(sid).current_status == "delivered", what="the webhook's update")
    assert inbox_rows()[0].external_event_id == "evt-w1"
    api.stack.wait_for(lambda: inbox_rows()[0].status == models.INBOX_PROCESSED, what="the inbox row processed")
    assert api.webhook_update("FKW001", [scan(5, "Delivered", "delivered")], "evt-w1").json() == {
        "status": "duplicate"}


def test_signed_webhooks_need_a_fresh_correct_signature_and_a_known_courier(api):
    body = b'{"topic": "tracking", "event_id": "e1", "updates": []}'
    wrong_secret = api.signed_webhook("fake", body, secret="not-the-secret-0123")
    stale = api.signed_webhook("fake", body, timestamp=int(time.time()) - 301)
    unsigned = api.client.post("/api/webhooks/fake", content=body)
    for response in (wrong_secret, stale, unsigned):
        assert response.status_code == 401 and response.json()["error"] == "invalid_signature"
    assert "300 seconds" in stale.json()["detail"]
    assert api.signed_webhook("nosuchcourier", body).status_code == 404
    assert inbox_rows() == []
    assert api.signed_webhook("fake", body).status_code == 200


def test_a_bug_in_the_receiver_answers_json_500_and_still_reaches_the_server_log(api, monkeypatch):
    import pytest
    from starlette.testclient import TestClient

    from web import webhooks

    def broken(raw, *, id_fields):
        raise RuntimeError("a bug with a secret inside")

    monkeypatch.setattr(webhooks, "inbox_entry", broken)
    body = json.dumps({"uuid": "bug-1", "topic": "shipment.tracking.update"}).encode()
    # the answer: the error shape, no traceback, nothing stored
    quiet = TestClient(api.client.app, raise_server_exceptions=False)
    response = quiet.post(EASYPARCEL_URL, content=body)
    assert response.status_code == 500 and response.json()["error"] == "internal_error"
    assert "secret inside" not in response.text
    assert WebhookInbox.select().where(WebhookInbox.external_event_id == "bug-1").count() == 0
    # and the exception is raised to the server after the answer, as Starlette does
    with pytest.raises(RuntimeError, match="a bug"):
        api.client.post(EASYPARCEL_URL, content=body)


def test_a_webhook_answer_carries_the_weak_etag_of_its_body(api):
    from web.caching import weak_etag

    response = api.client.post(EASYPARCEL_URL, content=json.dumps({"uuid": "etag-1", "topic": "x"}).encode())
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    assert response.headers["etag"] == weak_etag(response.content)
