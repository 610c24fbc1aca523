"""Crafted input is malformed input, never a 500 (issue 18 point 5): deeply nested JSON, NUL
characters in a webhook's uuid or topic, and NUL in query strings and paths get a 4xx in the
error shape; a webhook among them is stored as rejected."""
from __future__ import annotations

import json

import pytest

import models
from models import WebhookInbox
from test_web_pages import sign_in
from web_client import WEBHOOK_SECRET

EASYPARCEL_URL = f"/api/webhooks/easyparcel/{WEBHOOK_SECRET}"
NESTED = b"[" * 100_000


def test_deeply_nested_json_in_a_webhook_is_stored_as_rejected(api):
    response = api.client.post(EASYPARCEL_URL, content=NESTED)
    assert response.status_code == 400 and response.json()["error"] == "malformed_body"
    [row] = WebhookInbox.select()
    assert row.status == models.INBOX_REJECTED and "nested" in row.error


def test_deeply_nested_json_to_the_admin_api_is_malformed(api):
    response = api.admin("POST", "/api/admin/shipments", content=NESTED)
    assert response.status_code == 400 and response.json()["error"] == "malformed_body"


@pytest.mark.parametrize("field", ["uuid", "topic"])
def test_a_nul_in_a_webhooks_uuid_or_topic_is_stored_as_rejected(api, field):
    body = {"uuid": "uuid-nul-1", "topic": "shipment.awb.update", "data": {}}
    body[field] = body[field] + "\u0000x"
    response = api.client.post(EASYPARCEL_URL, content=json.dumps(body).encode())
    assert response.status_code == 400 and response.json()["error"] == "malformed_body"
    assert field in response.json()["detail"]
    [row] = WebhookInbox.select()
    assert row.status == models.INBOX_REJECTED and "\x00" not in row.raw_body


def test_a_nul_in_the_job_status_query_is_refused(api):
    response = api.admin("GET", "/api/admin/tracking/job-status?batch_id=%00")
    assert response.status_code == 400 and response.json()["error"] == "malformed_request"


def test_a_nul_in_a_path_is_refused(api):
    response = api.admin("GET", "/api/admin/shipments/ORD%00-1")
    assert response.status_code == 400 and response.json()["error"] == "malformed_request"


def test_a_nul_in_the_dashboard_search_is_refused(api):
    sign_in(api)
    response = api.client.get("/admin/search?q=%00")
    assert response.status_code == 400 and response.json()["error"] == "malformed_request"
