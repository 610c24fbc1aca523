"""Hypothesis fuzzing of the webhook receivers over HTTP on PostgreSQL and Redis: malformed,
huge, deeply nested and wrongly encoded bodies get a 200 (stored), 400 (kept as rejected) or
413 (refused while reading) in the JSON error shape, never a 5xx; and whatever the receiver
accepted, the pipeline then processes or marks failed without error."""
from __future__ import annotations

import json
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from web_client import WEBHOOK_SECRET

import models
from models import WebhookInbox

EXAMPLES = int(os.environ.get("TRACKCACHE_FUZZ_EXAMPLES", "60"))
URL = f"/api/webhooks/easyparcel/{WEBHOOK_SECRET}"

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20)
webhook_like = st.fixed_dictionaries({
    "topic": st.sampled_from(["shipment.tracking.update", "shipment.status.update", "other"]) | json_values,
    "uuid": st.uuids().map(str) | json_values,
    "awb_number": st.text(max_size=80) | json_values,
    "status_log": st.lists(st.fixed_dictionaries({
        "timestamp": st.sampled_from(["2026-01-02 10:00:00", "not a date", "9999-99-99 99:99:99", ""]) | json_values,
        "shipment_status_code": st.integers(-5, 1000) | json_values,
        "tracking_status": st.text(max_size=60) | json_values,
    }), max_size=5) | json_values,
})


def nested(depth: int) -> bytes:
    return ("[" * depth + "]" * depth).encode()


bodies = st.one_of(
    st.binary(max_size=300),
    webhook_like.map(lambda value: json.dumps(value).encode()),
    json_values.map(lambda value: json.dumps(value).encode()),
    webhook_like.map(lambda value: json.dumps(value).encode("utf-16")),
    webhook_like.map(lambda value: json.dumps(value, ensure_ascii=False).encode("latin-1", errors="replace")),
    st.integers(100, 100_000).map(nested),
    st.integers(1, 3).map(lambda n: b'{"topic": "' + b"x" * (262_144 * n) + b'"}'),
)


@pytest.mark.filterwarnings("ignore:Do not use the `random` module inside strategies")
@pytest.mark.timeout(600)
def test_no_body_breaks_the_receiver_or_the_pipeline(redis_api):
    @given(body=bodies)
    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def check(body: bytes) -> None:
        response = redis_api.client.post(URL, content=body, headers={"content-type": "application/json"})
        assert response.status_code in (200, 400, 413), (response.status_code, response.text[:300])
        if response.status_code != 200:
            error = response.json()
            assert isinstance(error["error"], str) and error["detail"], error

    check()
    # Whatever was accepted is processed or marked failed by the pipeline (none left pending).
    redis_api.stack.wait_for(
        lambda: WebhookInbox.select().where(WebhookInbox.status == models.INBOX_PENDING).count() == 0,
        timeout=120, what="every accepted fuzzed webhook to be processed or marked failed")


def test_a_deeply_nested_admin_body_is_a_400_not_a_server_error(redis_api):
    from web_client import ADMIN_TOKEN

    response = redis_api.client.post("/api/admin/tracking/bulk-refresh", content=b"[" * 20_000 + b"]" * 20_000,
                                     headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert response.status_code in (400, 413), response.text[:200]
    assert response.json()["error"] in ("malformed_body", "payload_too_large")
