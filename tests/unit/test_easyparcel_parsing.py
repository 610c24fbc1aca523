"""The EasyParcel adapter against every real fixture in tests/fixtures/easyparcel: the exact
canonical updates (UTC times, sorted events, statuses), failures, errors and request shapes."""
from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlencode

import pytest
from fixture_files import FIXTURES, load_fixture

from pipeline import status as S
from pipeline.canonical import ItemFailure, TrackingEvent, TrackingUpdate
from pipeline.couriers.base import (
    CourierAuthError,
    CourierPayloadError,
    CourierRateLimited,
    CourierRequestRejected,
    CourierUnavailable,
    HttpResponse,
)
from pipeline.couriers.easyparcel import (
    OPEN_API_2025_09_DOC_STATUS_CODES,
    OPEN_API_STATUS_CODES,
    EasyParcel,
    status_from_text,
    status_table_for,
)


def fixture(name: str) -> str:
    return load_fixture("easyparcel", name)


def response(name: str, status: int = 200, headers: dict[str, str] | None = None) -> HttpResponse:
    return HttpResponse(status=status, headers=headers or {}, body=fixture(name).encode("utf-8"))


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def event(at: str, status: str | None, text: str, code: str | None = "7",
          location: str | None = None) -> TrackingEvent:
    return TrackingEvent(time=utc(at), raw_text=text, status=status, raw_code=code, location=location)


@pytest.fixture
def open_api() -> EasyParcel:
    return EasyParcel("open", "https://api.easyparcel.com", api_version="2026-06")


@pytest.fixture
def legacy() -> EasyParcel:
    return EasyParcel("legacy", "https://connect.easyparcel.my")


KL_HUB = "Kuala Lumpur Hub, Kuala Lumpur, MY"
BAYAN_BARU = "BAYAN BARU, PENANG,, PIN, MY"

# 7028021894371796 in the official samples: two naive Malaysia-time courier events and one ISO UTC
# event, 0.494 s apart once both are in UTC, returned newest-first.
DHL_PRE_SHIPMENT = (
    event("2026-01-23 04:28:52", S.INFO_RECEIVED, "Data Submitted - Awaiting Parcel Handover to DHL",
          location=BAYAN_BARU),
    event("2026-01-23 04:28:52.494", S.INFO_RECEIVED, "Schedule In Arrangement"),
    event("2026-01-23 04:29:47", S.INFO_RECEIVED, "Shipment data received - Awaiting Parcel Handover to DHL",
          location=KL_HUB),
)
CITYLINK_838937 = (
    event("2025-04-23 00:13:12", S.INFO_RECEIVED, "Schedule In Arrangement"),
    event("2025-04-23 08:13:00", S.INFO_RECEIVED, "Shipment information sent to City-Link"),
)
CITYLINK_837659 = (
    event("2025-04-22 18:46:36", S.INFO_RECEIVED, "Schedule In Arrangement"),
    event("2025-04-23 02:46:00", S.INFO_RECEIVED, "Shipment information sent to City-Link"),
)
# The webhook sample's two events; the legacy fixtures reuse the same texts and times.
SUNTECH_JOURNEY = (
    event("2017-06-28 04:00:00", S.IN_TRANSIT, "Parcel has been collected at Penang", code="3"),
    event("2017-10-28 03:40:00", S.DELIVERED, "Deliverd To Suntech", code="5"),
)


def update(number: str, events: tuple[TrackingEvent, ...]) -> TrackingUpdate:
    return TrackingUpdate(courier="easyparcel", tracking_number=number, events=events)


# --- Open API tracking responses ---------------------------------------------------------------


def test_success_multi_gives_sorted_utc_events_whatever_order_the_courier_used(open_api):
    requested = ["7028021894371796", "960301021838937", "960301021837659"]

    result = open_api.parse_tracking_response(response("openapi_tracking_response_success_multi.json"), requested)

    assert result.updates == (
        update("7028021894371796", DHL_PRE_SHIPMENT),
        update("960301021838937", CITYLINK_838937),
        update("960301021837659", CITYLINK_837659),
    )
    assert result.failures == ()
    assert result.message == "3 requests success, 0 request error."


def test_partial_not_found_reports_the_unknown_awb_and_maps_cancelled_text_over_code_8(open_api):
    requested = json.loads(fixture("openapi_tracking_request_partial_not_found.json"))["awb_numbers"]

    result = open_api.parse_tracking_response(response("openapi_tracking_response_partial_not_found.json"),
                                              requested)

    cancelled = event("2026-01-30 02:04:18", S.CANCELLED, "Cancelled", code="8", location=KL_HUB)
    assert result.updates == (
        update("7028021894371796", (*DHL_PRE_SHIPMENT, cancelled)),
        update("960301021838937", CITYLINK_838937),
        update("960301021837659", CITYLINK_837659),
    )
    assert result.failures == (ItemFailure("1234567890", "AWB number not found", "not_found"),)


def test_partial_item_omitted_reports_the_awb_the_courier_left_out_as_missing(open_api):
    requested = json.loads(fixture("openapi_tracking_request_partial_item_omitted.json"))["awb_numbers"]

    result = open_api.parse_tracking_response(
        response("openapi_tracking_response_partial_item_omitted.json"), requested)

    assert result.updates == (
        update("631888951038", (event("2025-11-04 04:20:10", S.INFO_RECEIVED, "Schedule In Arrangement"),)),
        update("631884685186", (event("2025-11-04 04:14:40", S.INFO_RECEIVED, "Schedule In Arrangement"),)),
    )
    assert [(f.tracking_number, f.kind) for f in result.failures] == [("683534779", "missing")]
    assert result.message == "2 requests success, 1 request error."


def test_delivered_response_maps_every_step_from_pre_shipment_to_delivered(open_api):
    result = open_api.parse_tracking_response(response("openapi_tracking_response_delivered.json"),
                                              ["960301021840012"])

    assert result.failures == ()
    assert result.updates == (update("960301021840012", (
        event("2025-04-22 18:46:36", S.INFO_RECEIVED, "Schedule In Arrangement"),
        event("2025-04-23 02:46:00", S.INFO_RECEIVED, "Shipment information sent to City-Link"),
        event("2025-04-23 09:20:00", S.IN_TRANSIT, "Parcel has been collected at Penang", "3", "Penang"),
        event("2025-04-23 22:10:00", S.IN_TRANSIT, "Delivery In Transit", "4", KL_HUB),
        # code 4 ("Delivery In Transit") with an unambiguous text: the text wins
        event("2025-04-25 01:02:00", S.OUT_FOR_DELIVERY, "Out for delivery", "4", KL_HUB),
        event("2025-04-25 06:05:00", S.DELIVERED, "Delivered", "5", "Kuala Lumpur, MY"),
    )),)


def test_numbers_the_courier_answers_but_nobody_requested_are_ignored(open_api):
    result = open_api.parse_tracking_response(response("openapi_tracking_response_success_multi.json"),
                                              ["960301021838937"])

    assert [u.tracking_number for u in result.updates] == ["960301021838937"]
    assert result.failures == ()


# --- Open API errors ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["openapi_auth_error_invalid_token.json", "openapi_auth_error_message_form.json"])
def test_both_documented_401_bodies_are_auth_errors(open_api, name):
    with pytest.raises(CourierAuthError) as raised:
        open_api.parse_tracking_response(response(name, status=401), ["7028021894371796"])

    assert raised.value.http_status == 401
    expected = "invalid_token" if "invalid_token" in name else "Invalid Oauth 2.0 access token"
    assert expected in str(raised.value)


def test_a_401_body_inside_a_200_answer_is_still_an_auth_error(open_api):
    error = open_api.classify_error(response("openapi_auth_error_message_form.json", status=200))

    assert isinstance(error, CourierAuthError)


def test_validation_error_is_a_rejected_request_carrying_the_courier_messages(open_api):
    for status in (400, 422):
        error = open_api.classify_error(response("openapi_validation_error.json", status=status))

        assert isinstance(error, CourierRequestRejected)
        assert error.http_status == status
        assert "Validation error" in str(error)
        assert "The awb numbers field is required" in str(error)


@pytest.mark.parametrize(("headers", "expected"), [
    ({"retry-after": "30"}, 30.0),
    ({"Retry-After": "2.5"}, 2.5),
    ({"retry-after": "Wed, 21 Oct 2026 07:28:30 GMT", "date": "Wed, 21 Oct 2026 07:28:00 GMT"}, 30.0),
    ({"retry-after": "Wed, 21 Oct 2026 07:28:00 GMT", "date": "Wed, 21 Oct 2026 07:29:00 GMT"}, 0.0),
    ({"retry-after": "soon"}, None),
    ({}, None),
])
def test_429_is_rate_limited_with_retry_after_in_seconds(open_api, headers, expected):
    error = open_api.classify_error(HttpResponse(429, headers, b"Too Many Requests"))

    assert isinstance(error, CourierRateLimited)
    assert error.retry_after == expected


def test_retry_after_as_a_date_without_a_date_header_counts_from_now(open_api):
    error = open_api.classify_error(HttpResponse(429, {"retry-after": "Wed, 21 Oct 2026 07:30:00 GMT"}, b""),
                                    now=datetime(2026, 10, 21, 7, 28, tzinfo=UTC))

    assert isinstance(error, CourierRateLimited)
    assert error.retry_after == 120.0


@pytest.mark.parametrize(("status", "kind"), [
    (500, CourierUnavailable), (502, CourierUnavailable), (503, CourierUnavailable),
    (408, CourierUnavailable), (403, CourierAuthError), (404, CourierRequestRejected),
    (301, CourierUnavailable),
])
def test_http_statuses_map_to_error_kinds(open_api, status, kind):
    error = open_api.classify_error(HttpResponse(status, {}, b"<html>oops</html>"))

    assert type(error) is kind
    assert error.http_status == status


def test_a_200_tracking_answer_is_not_an_error(open_api):
    assert open_api.classify_error(response("openapi_tracking_response_success_multi.json")) is None


# --- requests ----------------------------------------------------------------------------------


def test_open_api_tracking_request_has_the_documented_shape(open_api):
    doc = json.loads(fixture("openapi_tracking_request.json"))

    request = open_api.build_tracking_request(doc["body"]["awb_numbers"], "token-123")

    assert request.method == doc["method"]
    assert request.url == doc["example_url"]
    assert request.json == doc["body"]
    assert request.form is None
    assert dict(request.headers) == {**doc["headers"], "Authorization": "Bearer token-123"}
    assert open_api.batch_limit == doc["limits"]["max_awb_numbers_per_request"]


def test_open_api_token_request_uses_basic_auth_and_client_credentials(open_api):
    doc = json.loads(fixture("openapi_tracking_request.json"))["oauth"]

    request = open_api.build_token_request("my-client", "s3cret")

    assert request.method == "POST"
    assert request.url == doc["token_url"]
    assert request.headers["Authorization"] == "Basic " + base64.b64encode(b"my-client:s3cret").decode()
    assert list(request.form or ()) == [("grant_type", "client_credentials")]
    assert "client_credentials" in doc["grant_types_supported"]


def test_the_documented_sample_token_response_gives_token_and_lifetime(open_api):
    sample = json.loads(fixture("openapi_tracking_request.json"))["oauth"]["sample_token_response"]

    token, expires_in = open_api.parse_token_response(HttpResponse(200, {}, json.dumps(sample).encode()))

    assert (token, expires_in) == ("<access_token>", 36000.0)


@pytest.mark.parametrize(("status", "kind"), [
    (400, CourierAuthError), (401, CourierAuthError), (403, CourierAuthError),
    (429, CourierRateLimited), (503, CourierUnavailable),
])
def test_refused_token_requests_raise_by_kind(open_api, status, kind):
    with pytest.raises(kind):
        open_api.parse_token_response(HttpResponse(status, {}, b'{"error": "invalid_client"}'))


@pytest.mark.parametrize("body", [b"not json", b"{}", b'{"access_token": "", "expires_in": 10}',
                                  b'{"access_token": "t", "expires_in": "soon"}', b"[1]"])
def test_a_token_answer_without_a_usable_token_is_a_payload_error(open_api, body):
    with pytest.raises(CourierPayloadError):
        open_api.parse_token_response(HttpResponse(200, {}, body))


def test_legacy_tracking_request_is_the_php_style_form(legacy):
    doc = json.loads(fixture("legacy_eptrackingbulk_request.json"))
    numbers = [value for key, value in doc["form_fields"].items() if key.startswith("bulk[")]

    request = legacy.build_tracking_request(numbers, "my-api-key")

    assert request.method == doc["method"]
    assert request.url == doc["url"]
    assert request.json is None
    assert list(request.form or ()) == list({**doc["form_fields"], "api": "my-api-key"}.items())
    assert request.headers["Content-Type"] == doc["content_type"]
    # what requests sends on the wire: PHP http_build_query's bracketed keys, percent-encoded
    assert urlencode(list(request.form or ())).startswith("api=my-api-key&bulk%5B0%5D%5Bawb_no%5D=238725129086")
    assert legacy.batch_limit <= doc["limits"]["max_items_per_bulk_request"]


def test_requests_over_the_batch_limit_or_empty_are_refused(open_api):
    with pytest.raises(ValueError):
        open_api.build_tracking_request([str(n) for n in range(101)], "t")
    with pytest.raises(ValueError):
        open_api.build_tracking_request([], "t")


# --- legacy responses --------------------------------------------------------------------------


def test_legacy_in_transit_combines_date_and_time_in_malaysia_time(legacy):
    result = legacy.parse_tracking_response(response("legacy_eptrackingbulk_response_in_transit.json"),
                                            ["238725129086"])

    assert result.failures == ()
    assert result.updates == (update("238725129086", (
        event("2017-06-27 08:35:10", S.INFO_RECEIVED, "Schedule In Arrangement", code=None, location=None),
        event("2017-06-28 04:00:00", S.IN_TRANSIT, "Parcel has been collected at Penang", code=None,
              location="Penang"),
    )),)


def test_legacy_delivered_maps_easyparcels_own_typo_to_delivered(legacy):
    result = legacy.parse_tracking_response(response("legacy_eptrackingbulk_response_delivered.json"),
                                            ["238725129086"])

    assert result.updates == (update("238725129086", tuple(
        TrackingEvent(time=e.time, raw_text=e.raw_text, status=e.status, raw_code=None, location="Penang")
        for e in SUNTECH_JOURNEY)),)


def test_legacy_bulk_partial_reports_fail_item_as_not_found(legacy):
    result = legacy.parse_tracking_response(response("legacy_eptrackingbulk_response_bulk_partial.json"),
                                            ["238725129086", "000000000000", "999"])

    assert [u.tracking_number for u in result.updates] == ["238725129086"]
    assert [e.status for e in result.updates[0].events] == [S.IN_TRANSIT, S.DELIVERED]
    assert result.failures == (
        ItemFailure("000000000000", "No tracking record found", "not_found"),
        ItemFailure("999", "absent from the courier's response", "missing"),
    )


def test_legacy_status_list_keyed_by_index_reads_like_a_list(legacy):
    body = json.loads(fixture("legacy_eptrackingbulk_response_delivered.json"))
    items = body["result"][0]["status_list"]
    body["result"][0]["status_list"] = {str(i): item for i, item in enumerate(items)}

    result = legacy.parse_tracking_response(HttpResponse(200, {}, json.dumps(body).encode()), ["238725129086"])

    assert [e.raw_text for e in result.updates[0].events] == [e.raw_text for e in SUNTECH_JOURNEY]


def test_legacy_fail_item_with_other_remarks_is_an_error_failure(legacy):
    body = json.loads(fixture("legacy_eptrackingbulk_response_bulk_partial.json"))
    body["result"][1]["remarks"] = "Courier system busy"

    result = legacy.parse_tracking_response(HttpResponse(200, {}, json.dumps(body).encode()), ["000000000000"])

    assert result.failures == (ItemFailure("000000000000", "Courier system busy", "error"),)


@pytest.mark.parametrize(("name", "code"), [
    ("legacy_eptrackingbulk_response_unauthorized.json", "5"),
    ("legacy_eptrackingbulk_response_missing_api_key.json", "3"),
])
def test_legacy_key_errors_in_a_200_envelope_are_auth_errors(legacy, name, code):
    with pytest.raises(CourierAuthError) as raised:
        legacy.parse_tracking_response(response(name), ["238725129086"])

    assert f"error_code {code}" in str(raised.value)


@pytest.mark.parametrize(("code", "kind"), [
    ("1", CourierAuthError), ("2", CourierAuthError), ("3", CourierAuthError), ("4", CourierAuthError),
    ("5", CourierAuthError), ("6", CourierRequestRejected), ("99", CourierRequestRejected),
])
def test_every_legacy_error_code_is_classified(legacy, code, kind):
    table = json.loads(fixture("status_codes.json"))["legacy_error_codes"]["codes"]
    body = {"api_status": "Error", "error_code": code, "error_remark": table.get(code, "?")}

    error = legacy.classify_error(HttpResponse(200, {}, json.dumps(body).encode()))

    assert type(error) is kind


# --- webhooks ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["webhook_shipment_tracking_update.json",
                                  "webhook_shipment_tracking_update_keyed_status_log.json"])
def test_tracking_webhook_reads_list_and_keyed_status_log_alike(open_api, name):
    message = open_api.parse_webhook(fixture(name).encode("utf-8"))

    assert message.topic == "shipment.tracking.update"
    assert message.event_id == "webhook-test-uuid-123"
    assert message.updates == (update("238725129086", SUNTECH_JOURNEY),)


def test_status_webhook_is_a_status_without_events_and_without_an_id(open_api):
    message = open_api.parse_webhook(fixture("webhook_shipment_status_update.json"))

    assert message.topic == "shipment.status.update"
    assert message.event_id is None
    assert message.updates == (TrackingUpdate(
        courier="easyparcel", tracking_number="238725129086", events=(),
        reported_status=S.CANCELLED, reported_at=utc("2017-10-28 03:40:00"),
    ),)


def test_awb_webhook_carries_no_tracking_update(open_api):
    message = open_api.parse_webhook(fixture("webhook_shipment_awb_update.json"))

    assert (message.topic, message.event_id, message.updates) == ("shipment.awb.update", "webhook-test-uuid-123", ())


def test_unknown_webhook_topic_is_a_message_without_updates(open_api):
    message = open_api.parse_webhook(b'{"topic": "ondemand.status.update", "uuid": "u-1", "status": 3}')

    assert (message.topic, message.event_id, message.updates) == ("ondemand.status.update", "u-1", ())


def test_webhook_and_poll_of_the_same_scan_share_a_fingerprint(open_api):
    polled = open_api.parse_tracking_response(response("openapi_tracking_response_delivered.json"),
                                              ["960301021840012"]).updates[0].events[2]
    body = {"topic": "shipment.tracking.update", "uuid": "x", "awb_number": "960301021840012",
            "status_log": [{"timestamp": "2025-04-23 17:20:00", "shipment_status_code": 3,
                            "tracking_status": "Parcel has been collected at Penang"}]}

    pushed = open_api.parse_webhook(json.dumps(body)).updates[0].events[0]

    assert pushed.location is None and polled.location == "Penang"
    assert pushed.fingerprint == polled.fingerprint


# --- status tables (status_codes.json) ---------------------------------------------------------


NEW_TABLE_EXPECTED = {
    "0": S.CANCELLED, "2": S.INFO_RECEIVED, "3": S.IN_TRANSIT, "4": S.IN_TRANSIT, "5": S.DELIVERED,
    "6": S.RETURNED, "7": S.INFO_RECEIVED, "8": S.EXCEPTION, "11": S.IN_TRANSIT,
}
OLD_TABLE_EXPECTED = {
    "1": S.PENDING, "2": S.PENDING, "3": S.INFO_RECEIVED, "4": S.IN_TRANSIT, "5": S.IN_TRANSIT,
    "6": S.IN_TRANSIT, "7": S.INFO_RECEIVED, "8": S.OUT_FOR_DELIVERY, "9": S.DELIVERED,
    "10": S.FAILED_ATTEMPT, "11": S.RETURNED,
}


def test_status_code_tables_cover_every_documented_code_exactly():
    codes = json.loads(fixture("status_codes.json"))

    assert set(codes["openapi_shipment_status_codes"]["codes"]) == set(NEW_TABLE_EXPECTED)
    assert set(codes["openapi_tracking_status_codes_2025_09_table"]["codes"]) == set(OLD_TABLE_EXPECTED)
    assert {str(k): v for k, v in OPEN_API_STATUS_CODES.items()} == NEW_TABLE_EXPECTED
    assert {str(k): v for k, v in OPEN_API_2025_09_DOC_STATUS_CODES.items()} == OLD_TABLE_EXPECTED


@pytest.mark.parametrize(("code", "expected"), sorted(NEW_TABLE_EXPECTED.items()))
def test_each_current_code_maps_by_code_when_the_text_is_unknown(open_api, code, expected):
    assert open_api.map_status("Some courier scan text", int(code)) == expected


@pytest.mark.parametrize("version", ["2025-09", "2025-12", "2026-03", "2026-06", "2027-01", "2024-01"])
def test_every_api_version_uses_the_table_easyparcel_now_documents_for_all(version):
    assert status_table_for(version) is OPEN_API_STATUS_CODES


@pytest.mark.parametrize("code", [1, 9, 10, 12, -1])
def test_unknown_codes_map_to_no_status(open_api, code):
    assert open_api.map_status("Some courier scan text", code) is None


def test_every_documented_code_description_maps_by_text_to_its_code_status():
    codes = json.loads(fixture("status_codes.json"))["openapi_shipment_status_codes"]["codes"]

    for code, description in codes.items():
        for text in description.split(" / "):
            assert status_from_text(text) in (NEW_TABLE_EXPECTED[code], None), (code, text)


@pytest.mark.parametrize("text", json.loads(
    (Path(FIXTURES) / "easyparcel" / "status_codes.json").read_text())["openapi_tracking_status_strings_seen_in_official_samples"])
def test_every_text_seen_in_official_samples_has_a_status(text):
    assert status_from_text(text) is not None


@pytest.mark.parametrize(("text", "expected"), [
    ("Cancelled", S.CANCELLED), ("  delivered ", S.DELIVERED), ("Deliverd To Suntech", S.DELIVERED),
    ("Out for delivery", S.OUT_FOR_DELIVERY), ("Parcel has been collected at Kuching", S.IN_TRANSIT),
    ("Shipment information sent to J&T", S.INFO_RECEIVED), ("Data Submitted", S.INFO_RECEIVED),
    ("Delivery attempt failed - recipient not available", S.FAILED_ATTEMPT),
    ("Delivered to sorting centre", None), ("Return to sender initiated", None), ("Arrived at facility", None), ("", None), (None, None),
])
def test_text_table_maps_only_unambiguous_texts(text, expected):
    assert status_from_text(text) == expected


def test_legacy_events_with_unknown_text_get_no_status(legacy):
    body = json.loads(fixture("legacy_eptrackingbulk_response_in_transit.json"))
    body["result"][0]["status_list"][0]["status"] = "Arrived at Sorting Facility"

    result = legacy.parse_tracking_response(HttpResponse(200, {}, json.dumps(body).encode()), ["238725129086"])

    assert [e.status for e in result.updates[0].events] == [S.INFO_RECEIVED, None]


# --- time zones --------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [
    ("2025-04-23 10:46:00", "2025-04-23 02:46:00"),
    ("2026-01-23T04:28:52.494Z", "2026-01-23 04:28:52.494"),
    ("2026-01-23T12:28:52+08:00", "2026-01-23 04:28:52"),
    ("2026-01-23T04:28:52", "2026-01-22 20:28:52"),
    ("2026-01-01 05:00", "2025-12-31 21:00:00"),
])
def test_naive_times_are_courier_local_and_marked_times_mean_what_they_say(open_api, text, expected):
    assert open_api.parse_time(text) == utc(expected)


def test_the_configured_zone_is_used_for_naive_times():
    singapore_is_also_plus_8 = EasyParcel(timezone="Asia/Singapore")
    utc_courier = EasyParcel(timezone="UTC")

    assert singapore_is_also_plus_8.parse_time("2025-04-23 10:46:00") == utc("2025-04-23 02:46:00")
    assert utc_courier.parse_time("2025-04-23 10:46:00") == utc("2025-04-23 10:46:00")


@pytest.mark.parametrize("value", [12, None, "", "yesterday", "2025-13-01 00:00:00", "2025-04-23",
                                   "0001-01-01 00:00:00"])
def test_bad_times_are_payload_errors_naming_the_path(open_api, value):
    body = json.loads(fixture("openapi_tracking_response_delivered.json"))
    body["data"]["results"][0]["status_log"][1]["event_date"] = value

    with pytest.raises(CourierPayloadError, match=r"^body\.data\.results\[0\]\.status_log\[1\]\.event_date: "):
        open_api.parse_tracking_response(HttpResponse(200, {}, json.dumps(body).encode()), ["960301021840012"])


# --- coverage of the fixture folder ------------------------------------------------------------


def test_every_fixture_file_is_named_by_a_test_in_this_module():
    on_disk = {p.name for p in (Path(FIXTURES) / "easyparcel").glob("*.json")}
    source = Path(__file__).read_text(encoding="utf-8")

    assert {name for name in on_disk if f'"{name}"' not in source} == set()
