"""EasyParcel webhooks of topics that carry no tracking data, over HTTP and the real pipeline with
the real EasyParcel adapter: stored, then marked `ignored` with the reason (not failed), so the
failed-webhooks alert counts only real failures."""
from __future__ import annotations

from collections.abc import Iterator

import pytest
from fixture_files import load_fixture
from stacks import build_stack
from web_client import WEBHOOK_SECRET, Api, _client

import models
from models import WebhookInbox

EASYPARCEL_URL = f"/api/webhooks/easyparcel/{WEBHOOK_SECRET}"


@pytest.fixture(params=["embedded", "redis"])
def easyparcel_api(request, tmp_path) -> Iterator[Api]:
    """The app over the pipeline with the real EasyParcel adapter (no courier is called here)."""
    if request.param == "embedded":
        made, stop = build_stack("embedded", f"sqlite:///{tmp_path / 'topics.db'}", "", real_courier=True)
    else:
        made, stop = build_stack("redis", request.getfixturevalue("postgres_url"),
                                 request.getfixturevalue("redis_url"), real_courier=True)
    try:
        yield from _client(made)
    finally:
        stop()


def finished(api: Api, inbox_id: int) -> WebhookInbox:
    return api.stack.wait_for(lambda: (row := WebhookInbox.get_by_id(inbox_id)).status != models.INBOX_PENDING
                              and row, what=f"inbox row {inbox_id} handled")


@pytest.mark.parametrize("name, reason", [
    ("more/webhook_shipment_created_no_topic.json", "Shipment Created webhook carries no tracking data"),
    ("webhook_shipment_awb_update.json", "'shipment.awb.update' (an AWB was assigned) carries no tracking data"),
])
def test_a_webhook_without_tracking_data_is_stored_and_ignored_not_failed(easyparcel_api, name, reason):
    # given a real EasyParcel webhook of a topic without tracking data
    raw = load_fixture("easyparcel", *name.split("/")).encode()
    # when EasyParcel posts it
    answer = easyparcel_api.client.post(EASYPARCEL_URL, content=raw)
    assert answer.status_code == 200 and answer.json()["status"] == "accepted"
    # then it is kept, marked ignored with the reason
    row = finished(easyparcel_api, answer.json()["inbox_id"])
    assert row.raw_body == raw.decode()
    assert row.status == models.INBOX_IGNORED
    assert reason in row.error
    # and the failed-webhooks alert does not count it
    alerts = easyparcel_api.viewer("GET", "/api/admin/tracking/alerts").json()
    assert alerts["figures"]["failed_inbox_last_hour"] == 0
    assert "failed_webhooks" not in {alert["rule"] for alert in alerts["alerts"]}


def test_the_published_ondemand_sample_is_rejected_as_not_json_and_counts_as_a_failure(easyparcel_api):
    raw = load_fixture("easyparcel", "more", "webhook_ondemand_status_update_invalid_json.json").encode()
    answer = easyparcel_api.client.post(EASYPARCEL_URL, content=raw)
    assert answer.status_code == 400 and answer.json()["error"] == "malformed_body"
    [row] = WebhookInbox.select()
    assert row.status == models.INBOX_REJECTED and "not valid JSON" in row.error
    alerts = easyparcel_api.viewer("GET", "/api/admin/tracking/alerts").json()
    assert alerts["figures"]["failed_inbox_last_hour"] == 1


def test_a_tracking_webhook_of_an_unknown_number_is_processed_not_ignored(easyparcel_api):
    raw = load_fixture("easyparcel", "webhook_shipment_tracking_update.json").encode()
    answer = easyparcel_api.client.post(EASYPARCEL_URL, content=raw)
    row = finished(easyparcel_api, answer.json()["inbox_id"])
    assert (row.status, row.error) == (models.INBOX_PROCESSED, None)
