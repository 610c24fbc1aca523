"""The notifications' pure core: which event types a change raises, dedupe keys, the retry
schedule, endpoint URL and event rules, Standard Webhooks signatures (verified with the
`standardwebhooks` package), and the example payloads the README and OpenAPI show."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from pipeline import webhook_events as events
from web.notification_examples import example_change, example_payload

def change(previous: str, status: str, *, is_attention: bool = False, fingerprint: str = "f1") -> dict:
    return {"shipment_id": 7, "order_id": "ORD-1", "tracking_number": "EP1", "courier": "easyparcel",
            "previous": previous, "status": status, "event": {"fingerprint": fingerprint, "time": None},
            "is_attention": is_attention, "occurred_at": "2026-11-24T09:15:02Z"}


@pytest.mark.parametrize("previous, status, is_attention, expected", [
    ("pending", "in_transit", False, [events.STATUS_CHANGED]),
    ("in_transit", "out_for_delivery", False, [events.STATUS_CHANGED, events.OUT_FOR_DELIVERY]),
    ("out_for_delivery", "delivered", False, [events.STATUS_CHANGED, events.DELIVERED]),
    ("in_transit", "exception", False, [events.STATUS_CHANGED, events.EXCEPTION]),
    ("out_for_delivery", "failed_attempt", False, [events.STATUS_CHANGED, events.EXCEPTION]),
    ("in_transit", "in_transit", True, [events.ATTENTION_REQUIRED]),
    ("in_transit", "expired", True, [events.STATUS_CHANGED, events.ATTENTION_REQUIRED]),
    ("in_transit", "in_transit", False, []),
])
def test_event_types_of_a_change(previous, status, is_attention, expected):
    assert events.event_types_for(change(previous, status, is_attention=is_attention)) == expected


def test_the_same_change_by_the_same_event_has_the_same_dedupe_key_and_another_event_another():
    first = events.dedupe_key("webhook", 3, events.DELIVERED, change("out_for_delivery", "delivered"))
    again = events.dedupe_key("webhook", 3, events.DELIVERED, change("in_transit", "delivered"))
    other_endpoint = events.dedupe_key("webhook", 4, events.DELIVERED, change("out_for_delivery", "delivered"))
    other_event = events.dedupe_key("webhook", 3, events.DELIVERED,
                                    change("out_for_delivery", "delivered", fingerprint="f2"))
    assert first == again
    assert len({first, other_endpoint, other_event}) == 3
    assert len(first) <= 128


def test_subscriptions_and_emails():
    assert events.is_subscribed(["*"], events.DELIVERED)
    assert events.is_subscribed([events.DELIVERED], events.DELIVERED)
    assert not events.is_subscribed([events.DELIVERED], events.STATUS_CHANGED)
    assert events.wants_email(change("in_transit", "delivered"), ("delivered",))
    assert not events.wants_email(change("delivered", "delivered"), ("delivered",))
    assert not events.wants_email(change("pending", "info_received"), ("delivered",))


@pytest.mark.parametrize("attempts, expected", [(0, None), (1, 5), (2, 300), (7, 36000), (8, None)])
def test_the_retry_schedule_spans_about_a_day(attempts, expected):
    delays = (5, 300, 1800, 7200, 18000, 36000, 36000)
    assert events.retry_delay(attempts, delays) == expected
    assert 20 * 3600 < sum(delays) < 30 * 3600


@pytest.mark.parametrize("url, allow_http, problem", [
    ("https://shop.example/hooks", False, None),
    ("http://shop.example/hooks", True, None),
    ("http://shop.example/hooks", False, "https"),
    ("ftp://shop.example/hooks", True, "https"),
    ("https:///nohost", False, "host"),
    ("https://u:p@shop.example/", False, "credentials"),
    ("https://shop.example/#frag", False, "fragment"),
    ("https://shop.example:99999/", False, "URL"),
    ("https://shop.example/" + "a" * 2100, False, "2048"),
    ("", False, "required"),
    (42, False, "required"),
])
def test_endpoint_urls(url, allow_http, problem):
    found = events.url_problem(url, allow_http=allow_http)
    assert (found is None) if problem is None else (problem in found)


def test_endpoint_event_lists():
    assert events.events_problem(["*"]) is None
    assert events.events_problem([events.DELIVERED, events.EXCEPTION]) is None
    assert "non-empty" in events.events_problem([])
    assert "unknown" in events.events_problem(["shipment.lost"])
    assert "non-empty" in events.events_problem("shipment.delivered")


def test_signatures_verify_with_standardwebhooks_and_both_secrets_during_a_rotation():
    now = datetime.now(UTC).replace(microsecond=0)  # verification refuses timestamps over 5 minutes old
    old, new = events.new_secret(), events.new_secret()
    assert old.startswith("whsec_") and old != new
    body = '{"type":"shipment.delivered"}'
    headers = events.signed_headers(events.SigningKeys(new, old, now + timedelta(hours=24)), "msg_1", body, now=now)
    assert Webhook(new).verify(body, headers) == {"type": "shipment.delivered"}
    assert Webhook(old).verify(body, headers) == {"type": "shipment.delivered"}
    later = events.signed_headers(events.SigningKeys(new, old, now + timedelta(hours=24)), "msg_1", body,
                                  now=now + timedelta(hours=25))
    assert len(later["webhook-signature"].split(" ")) == 1
    with pytest.raises(WebhookVerificationError):
        Webhook(new).verify(body + " ", headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(events.new_secret()).verify(body, headers)


@pytest.mark.parametrize("event_type", events.EVENT_TYPES)
def test_every_event_type_has_an_example_with_everything_the_shop_needs(event_type):
    payload = example_payload(event_type)
    assert payload["type"] == event_type and payload["timestamp"].endswith("Z")
    data = payload["data"]
    for key in ("order_id", "tracking_number", "courier", "previous_status", "status", "event",
                "estimated_delivery", "occurred_at"):
        assert key in data
    assert events.event_types_for(example_change(event_type))[-1] == event_type


def test_a_replay_says_which_message_it_replays():
    payload = example_payload(events.DELIVERED)
    assert events.replay_payload(payload, "msg_abc") == {**payload, "replay_of": "msg_abc"}


def test_the_readme_shows_each_event_types_example(readme_text):
    import json
    import re

    blocks = re.findall(r"```json\n(\{\s*\"type\": \"shipment\..*?)\n```", readme_text, re.S)
    shown = {json.loads(block)["type"]: json.loads(block) for block in blocks}
    assert shown == {event_type: example_payload(event_type) for event_type in events.EVENT_TYPES}


@pytest.fixture
def readme_text():
    from pathlib import Path

    return (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
