"""The test courier `fake` exists only where the settings say so (TRACKING_ENABLE_TEST_COURIERS:
the tests, or a developer's `trackcache dev`): elsewhere its webhook route is an unknown courier and
it cannot be registered."""
from __future__ import annotations

from web_client import configured

import settings
from models import WebhookInbox


def test_without_the_setting_a_signed_fake_webhook_is_an_unknown_courier_and_nothing_is_stored(api):
    body = b'{"topic": "tracking", "event_id": "e1", "updates": []}'
    with configured(enable_test_couriers=False):
        answer = api.signed_webhook("fake", body)
    assert answer.status_code == 404 and answer.json()["error"] == "unknown_courier"
    assert WebhookInbox.select().count() == 0
    # and with it (as in these tests) the same webhook is accepted
    assert api.signed_webhook("fake", body).json()["status"] == "accepted"


def test_without_the_setting_the_fake_courier_cannot_be_registered(api):
    body = {"order_id": "ORD-T1", "customer_email": "buyer@example.com", "tracking_number": "FKT001",
            "courier": "fake"}
    with configured(enable_test_couriers=False):
        answer = api.admin("POST", "/api/admin/shipments", json=body)
    assert answer.status_code == 422 and "courier" in answer.json()["fields"]


def test_test_couriers_are_off_by_default_and_unsafe_for_production():
    assert settings.load({}, dotenv_path=None).enable_test_couriers is False
    config = settings.load({"TRACKING_ENABLE_TEST_COURIERS": "true"}, dotenv_path=None)
    assert "TRACKING_ENABLE_TEST_COURIERS is on" in " ".join(config.production_problems())
