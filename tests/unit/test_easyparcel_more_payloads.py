"""The EasyParcel adapter against the further real payloads in tests/fixtures/easyparcel/more/
(SOURCES.md there says where each comes from): webhooks without tracking data are ignored with a
reason instead of failing, and the older tracking samples read exactly."""
from __future__ import annotations

from datetime import UTC, datetime

import pytest
from fixture_files import load_fixture

from pipeline import status as S
from pipeline.canonical import ItemFailure, TrackingEvent
from pipeline.couriers.base import CourierPayloadError, CourierRequestRejected, HttpResponse
from pipeline.couriers.easyparcel import EasyParcel


def more(name: str) -> str:
    return load_fixture("easyparcel", "more", name)


def response(name: str, status: int = 200) -> HttpResponse:
    return HttpResponse(status=status, headers={}, body=more(name).encode("utf-8"))


@pytest.fixture
def open_api() -> EasyParcel:
    return EasyParcel("open", "https://api.easyparcel.com", api_version="2026-06")


@pytest.fixture
def legacy() -> EasyParcel:
    return EasyParcel("legacy", "https://connect.easyparcel.my")


def test_shipment_created_webhook_without_a_topic_is_ignored_with_its_reason(open_api):
    message = open_api.parse_webhook(more("webhook_shipment_created_no_topic.json"))

    assert message.updates == ()
    assert message.event_id == "webhook-test-uuid-123"
    assert message.ignored_reason is not None
    assert "Shipment Created" in message.ignored_reason and "no tracking data" in message.ignored_reason


def test_awb_update_webhook_is_ignored_as_carrying_no_tracking_data(open_api):
    message = open_api.parse_webhook(load_fixture("easyparcel", "webhook_shipment_awb_update.json"))

    assert message.updates == ()
    assert message.ignored_reason is not None and "shipment.awb.update" in message.ignored_reason


def test_tracking_webhooks_are_not_ignored(open_api):
    message = open_api.parse_webhook(load_fixture("easyparcel", "webhook_shipment_tracking_update.json"))

    assert message.updates and message.ignored_reason is None


def test_ondemand_status_update_sample_is_not_json_and_says_so(open_api):
    # EasyParcel published it with `"timeline": ,` and a trailing comma: not JSON at all.
    with pytest.raises(CourierPayloadError, match="JSON"):
        open_api.parse_webhook(more("webhook_ondemand_status_update_invalid_json.json"))


def test_ondemand_topic_as_valid_json_is_ignored_as_not_parcel_tracking(open_api):
    message = open_api.parse_webhook(b'{"topic": "ondemand.status.update", "order_number": "EOD-1", "status": 0}')

    assert message.updates == () and "ondemand.status.update" in (message.ignored_reason or "")


def test_2025_11_tracking_sample_reads_naive_malaysia_times_as_utc(open_api):
    numbers = ["631888951038", "631884685186", "631883534779"]
    result = open_api.parse_tracking_response(response("openapi_tracking_2025-11_three_success.json"), numbers)

    assert result.failures == ()
    assert [u.tracking_number for u in result.updates] == numbers
    first = result.updates[0]
    assert first.events == (TrackingEvent(time=datetime(2025, 11, 4, 4, 20, 10, tzinfo=UTC),
                                          raw_text="Schedule In Arrangement", status=S.INFO_RECEIVED,
                                          raw_code="7", location=None),)
    assert result.message == "3 requests success, 0 request error."


def test_2026_01_sample_with_two_not_found_items_gives_two_updates_and_two_not_found(open_api):
    numbers = ["631888951038", "631884685186", "631883534770", "631882123456"]
    result = open_api.parse_tracking_response(response("openapi_tracking_2026-01_two_not_found.json"), numbers)

    assert [u.tracking_number for u in result.updates] == numbers[:2]
    assert result.failures == (ItemFailure("631883534770", "AWB number not found", "not_found"),
                               ItemFailure("631882123456", "AWB number not found", "not_found"))


def test_resource_not_found_404_with_an_empty_data_list_is_a_rejected_request(open_api):
    with pytest.raises(CourierRequestRejected, match="HTTP 404: No Order with shipment_number") as raised:
        open_api.parse_tracking_response(response("openapi_error_404_resource_not_found.json", status=404),
                                         ["631888951038"])
    assert raised.value.http_status == 404


@pytest.mark.parametrize("name", ["legacy_sg_parcel_status_awb_assigned.json",
                                  "legacy_sg_parcel_status_awb_not_available.json"])
def test_legacy_parcel_status_answers_are_not_tracking_responses(legacy, name):
    # The parcel-status family (capitalised `Parcel_Number`, `Airway-Bill`, no events) is not
    # EPTrackingBulk: reading it as tracking would invent data, so it is refused by path.
    with pytest.raises(CourierPayloadError, match=r"body\.result\[0\]\.awb"):
        legacy.parse_tracking_response(response(name), ["TP559069090784186SG"])


def test_each_requested_number_keeps_the_couriers_own_item_found_or_not(open_api):
    import json

    numbers = ["631888951038", "631884685186", "631883534770", "631882123456", "000000000000"]
    result = open_api.parse_tracking_response(response("openapi_tracking_2026-01_two_not_found.json"), numbers)

    items = json.loads(more("openapi_tracking_2026-01_two_not_found.json"))["data"]["results"]
    assert result.raw_items == {item["awb_number"]: item for item in items}
    assert "000000000000" not in result.raw_items  # the courier said nothing about it


def test_legacy_items_are_kept_as_the_courier_sent_them(legacy):
    import json

    body = load_fixture("easyparcel", "legacy_eptrackingbulk_response_in_transit.json")
    [item] = json.loads(body)["result"]
    result = legacy.parse_tracking_response(HttpResponse(200, {}, body.encode()), [item["awb"]])
    assert result.raw_items == {item["awb"]: item}


# --- more/near_identical: close to the main fixtures, each different in one way that matters -----

def near(name: str) -> str:
    return load_fixture("easyparcel", "more", "near_identical", name)


def test_a_not_found_item_for_a_number_nobody_asked_for_is_ignored_and_the_omitted_ones_are_missing(open_api):
    numbers = ["631888951038", "631884685186", "631883534779", "631882123456"]
    body = near("openapi_tracking_2025-11_partial_unrequested_not_found.json").encode()
    result = open_api.parse_tracking_response(HttpResponse(200, {}, body), numbers)

    assert [u.tracking_number for u in result.updates] == numbers[:2]
    assert result.failures == (ItemFailure("631883534779", "absent from the courier's response", "missing"),
                               ItemFailure("631882123456", "absent from the courier's response", "missing"))
    assert "683534779" not in result.raw_items and set(result.raw_items) == set(numbers[:2])


def test_the_raw_tracking_webhook_doc_sample_is_not_json_and_says_so(open_api):
    with pytest.raises(CourierPayloadError, match="JSON"):
        open_api.parse_webhook(near("webhook_tracking_update_raw_doc_sample_invalid_json.json"))


def test_an_awb_update_labelled_status_update_is_read_by_its_topic_and_ignored(open_api):
    message = open_api.parse_webhook(near("webhook_awb_update_labelled_status_update_2025-06.json"))

    assert (message.topic, message.event_id, message.updates) == ("shipment.awb.update", "webhook-test-uuid-123", ())
    assert message.ignored_reason is not None


def test_a_401_with_the_invalid_api_key_message_is_an_auth_error(open_api):
    from pipeline.couriers.base import CourierAuthError

    body = near("openapi_auth_error_invalid_api_key_2025-06.json").encode()
    with pytest.raises(CourierAuthError, match="HTTP 401: Invalid API key"):
        open_api.parse_tracking_response(HttpResponse(401, {}, body), ["631888951038"])


def test_a_400_validation_failure_is_a_rejected_request_naming_the_errors(open_api):
    body = near("openapi_validation_failed_2025-06.json").encode()
    with pytest.raises(CourierRequestRejected, match="Validation failed; The service_id field is required"):
        open_api.parse_tracking_response(HttpResponse(400, {}, body), ["631888951038"])
