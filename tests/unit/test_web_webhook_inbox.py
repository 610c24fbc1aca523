"""What a webhook body becomes in the inbox, decided without I/O: the dedup id (the courier's uuid,
else a hash of the raw body), the topic, and the refusal of bodies that are not JSON objects."""
from __future__ import annotations

import hashlib
import json

import pytest

from fixture_files import load_fixture
from web.webhooks import inbox_entry


def test_a_body_with_a_uuid_is_deduplicated_by_it():
    raw = load_fixture("easyparcel", "webhook_shipment_awb_update.json").encode()
    entry = inbox_entry(raw)
    assert (entry.external_event_id, entry.topic, entry.rejection) == (
        "webhook-test-uuid-123", "shipment.awb.update", None)
    assert entry.raw_text == raw.decode()


def test_a_body_without_a_uuid_is_deduplicated_by_the_hash_of_its_raw_bytes():
    raw = json.dumps({"topic": "shipment.status.update", "awb_number": "123"}).encode()
    assert inbox_entry(raw).external_event_id == "sha256:" + hashlib.sha256(raw).hexdigest()
    assert inbox_entry(raw + b" ").external_event_id != inbox_entry(raw).external_event_id


@pytest.mark.parametrize(
    ("payload", "fields", "event_id"),
    [({"uuid": 42}, ("uuid",), "42"), ({"uuid": ""}, ("uuid",), None), ({"uuid": True}, ("uuid",), None),
     ({"event_id": "e-1"}, ("uuid",), None), ({"event_id": "e-1"}, ("uuid", "event_id"), "e-1"),
     ({"uuid": {"nested": 1}}, ("uuid",), None)],
)
def test_only_usable_id_fields_count(payload, fields, event_id):
    raw = json.dumps(payload).encode()
    found = inbox_entry(raw, id_fields=fields).external_event_id
    assert found == (event_id if event_id is not None else "sha256:" + hashlib.sha256(raw).hexdigest())


def test_an_overlong_event_id_is_replaced_by_its_hash():
    found = inbox_entry(json.dumps({"uuid": "x" * 500}).encode()).external_event_id
    assert found.startswith("sha256:") and len(found) <= 128


@pytest.mark.parametrize(
    ("raw", "reason"),
    [(b'{"uuid": ', "not valid JSON"), (b"[1, 2]", "JSON object"), (b'"text"', "JSON object"), (b"", "not valid JSON"),
     (b"\xff\xfe\x00garbage", "not valid JSON")],
)
def test_bodies_that_are_not_json_objects_are_refused_with_the_reason(raw, reason):
    entry = inbox_entry(raw)
    assert entry.rejection is not None and reason in entry.rejection
    assert entry.external_event_id is None
    assert "\x00" not in entry.raw_text


def test_the_webhook_secret_is_redacted_from_log_lines():
    import logging

    from web.webhooks import RedactWebhookSecret, redact_webhook_secret

    assert redact_webhook_secret('"POST /api/webhooks/easyparcel/s3cr3t-value HTTP/1.1" 200') == \
        '"POST /api/webhooks/easyparcel/{secret} HTTP/1.1" 200'
    assert redact_webhook_secret("/api/webhooks/easyparcel/abc?x=1") == "/api/webhooks/easyparcel/{secret}?x=1"
    assert redact_webhook_secret("/api/webhooks/fake") == "/api/webhooks/fake"
    record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
                               ("127.0.0.1:1", "POST", "/api/webhooks/easyparcel/s3cr3t", "1.1", 200), None)
    assert RedactWebhookSecret().filter(record) and "s3cr3t" not in record.getMessage()


def test_a_body_nested_too_deeply_for_the_json_reader_is_refused_with_the_reason():
    from web.webhooks import inbox_entry

    entry = inbox_entry(b"[" * 100_000 + b"]" * 100_000)
    assert entry.rejection == "the body is not valid JSON: it is nested too deeply"
