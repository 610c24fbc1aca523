"""Pure shaping of API answers: the guest privacy filter (locations and event texts, table-driven),
guest vs customer detail, newest-first events, ISO times, data age, ETags and the stale rule."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from pipeline.canonical import TrackingEvent
from web import views

NOW = datetime(2026, 11, 25, 10, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        # the examples of the issue
        ("Kuala Lumpur Hub, Kuala Lumpur, MY", "Kuala Lumpur, MY"),
        ("BAYAN BARU, PENANG,, PIN, MY", "Penang, MY"),
        # facility names and courier prefixes give way to the state
        ("Shah Alam Hub, Selangor, MY", "Selangor, MY"),
        ("City-Link drop-off point, Penang, MY", "Penang, MY"),
        ("Kota Kinabalu Hub, Sabah, MY", "Sabah, MY"),
        # a state alone, or only its courier code
        ("Penang", "Penang"),
        ("Kuala Lumpur", "Kuala Lumpur"),
        ("SGR, MY", "Selangor, MY"),
        ("WP Kuala Lumpur, Malaysia", "Kuala Lumpur, MY"),
        # streets, lot numbers and postcodes never reach guests
        ("No 12, Jalan Ampang, 50450 Kuala Lumpur, MY", "Kuala Lumpur, MY"),
        ("Lot 5, Jalan 3, MY", "MY"),
        # no state we know: the city-like field, facility words dropped
        ("Petaling Jaya, MY", "Petaling Jaya, MY"),
        ("KLANG SORTING CENTRE, MY", "Klang, MY"),
        ("Jurong West, Singapore", "Jurong West, SG"),
        # nothing to show
        ("", None),
        ("   ", None),
        (None, None),
        (", ,", None),
    ],
)
def test_guest_locations_are_reduced_to_state_or_city_and_country(raw, shown):
    assert views.public_location(raw) == shown


@pytest.mark.parametrize(
    ("text", "status", "shown"),
    [
        ("Parcel has been collected at Penang", "in_transit", "Parcel has been collected at Penang"),
        ("Shipment on hold - incomplete address, awaiting consignee instructions", "exception",
         "Shipment on hold - incomplete address, awaiting consignee instructions"),
        # a delivery names the recipient (webhook_shipment_tracking_update.json: "Deliverd To Suntech")
        ("Deliverd To Suntech", "delivered", "Delivered"),
        ("Received by: AHMAD BIN ALI", "in_transit", "In transit"),
        ("Arrived at hub. Remark: box damaged, resealed by staff", "in_transit", "Arrived at hub."),
        ("Out for delivery (driver Ali 012-3456789)", "out_for_delivery", "Out for delivery"),
        ("Call 012-345 6789 to reschedule", "failed_attempt", "Call to reschedule"),
        ("", "in_transit", "In transit"),
        (None, None, "Update"),
    ],
)
def test_guest_event_texts_drop_names_remarks_and_numbers(text, status, shown):
    assert views.public_description(text, status) == shown


def events(count: int) -> list[dict]:
    return [TrackingEvent(time=NOW - timedelta(hours=count - i), raw_text=f"Scan {i}", status="in_transit",
                          raw_code=f"C{i}", location="Kuala Lumpur Hub, Kuala Lumpur, MY").to_dict()
            for i in range(count)]


def row(**overrides) -> dict:
    base = {"tracking_number": "EP123", "courier": "easyparcel", "status": "in_transit", "events": events(12),
            "estimated_delivery": None, "delivered_at": None, "last_updated": NOW - timedelta(minutes=5),
            "next_update_due": NOW + timedelta(hours=2)}
    return base | overrides


def test_guests_see_the_newest_ten_events_filtered_and_without_raw_codes():
    shaped = views.shipment_view(row(events=list(reversed(events(12)))), audience=views.GUEST, guest_history=10)
    assert len(shaped["events"]) == 10
    assert [e["description"] for e in shaped["events"]][:2] == ["Scan 11", "Scan 10"]
    assert all(set(e) == {"time", "status", "description", "location"} for e in shaped["events"])
    assert shaped["events"][0]["location"] == "Kuala Lumpur, MY"


def test_customers_see_every_event_with_full_location_and_raw_code():
    shaped = views.shipment_view(row(), audience=views.CUSTOMER)
    assert len(shaped["events"]) == 12
    assert shaped["events"][0] == {"time": "2026-11-25T09:00:00Z", "status": "in_transit", "description": "Scan 11",
                                   "location": "Kuala Lumpur Hub, Kuala Lumpur, MY", "raw_code": "C11"}


def test_times_are_iso_utc_with_z_and_finished_shipments_have_no_next_refresh():
    shaped = views.shipment_view(row(status="delivered", delivered_at=NOW, next_update_due=NOW + timedelta(days=1)),
                                 audience=views.GUEST)
    assert shaped["delivered_at"] == "2026-11-25T10:00:00Z"
    assert shaped["last_updated"] == "2026-11-25T09:55:00Z"
    assert shaped["status_label"] == "Delivered"
    assert shaped["next_refresh_at"] is None


def test_a_shipment_that_is_never_polled_again_has_no_next_refresh():
    shaped = views.shipment_view(row(next_update_due=datetime(9999, 1, 1, tzinfo=timezone.utc)), audience=views.GUEST)
    assert shaped["next_refresh_at"] is None


def test_data_age_is_added_when_answering_in_the_documented_field_order():
    view = views.order_view("O-1", [row()], audience=views.GUEST)
    answered = views.with_data_age(view, NOW)
    shipment = answered["shipments"][0]
    assert shipment["data_age_seconds"] == 300
    assert list(shipment) == ["tracking_number", "courier", "status", "status_label", "events", "estimated_delivery",
                              "estimated_delivery_range", "estimate_source", "courier_estimated_delivery",
                              "delivered_at", "last_updated", "data_age_seconds", "next_refresh_at"]


NOON_THU = datetime(2026, 12, 3, 4, 0, tzinfo=timezone.utc)  # noon in Kuala Lumpur


@pytest.mark.parametrize(("fields", "expected"), [
    # nothing known
    ({}, {"estimated_delivery": None, "estimated_delivery_range": None, "estimate_source": None,
          "courier_estimated_delivery": None}),
    # ours, from history, with its range
    ({"estimated_delivery": NOON_THU, "estimated_delivery_earliest": NOON_THU - timedelta(days=1),
      "estimated_delivery_latest": NOON_THU + timedelta(days=1), "estimate_source": "history"},
     {"estimated_delivery": "2026-12-03T04:00:00Z",
      "estimated_delivery_range": {"earliest": "2026-12-02T04:00:00Z", "latest": "2026-12-04T04:00:00Z"},
      "estimate_source": "history", "courier_estimated_delivery": None}),
    # ours beside the courier's own
    ({"estimated_delivery": NOON_THU, "estimated_delivery_earliest": NOON_THU, "estimated_delivery_latest": NOON_THU,
      "estimate_source": "history", "courier_estimated_delivery": NOON_THU + timedelta(hours=6)},
     {"estimated_delivery": "2026-12-03T04:00:00Z",
      "estimated_delivery_range": {"earliest": "2026-12-03T04:00:00Z", "latest": "2026-12-03T04:00:00Z"},
      "estimate_source": "history", "courier_estimated_delivery": "2026-12-03T10:00:00Z"}),
    # only the courier's
    ({"estimated_delivery": NOON_THU, "estimate_source": "courier", "courier_estimated_delivery": NOON_THU},
     {"estimated_delivery": "2026-12-03T04:00:00Z", "estimated_delivery_range": None, "estimate_source": "courier",
      "courier_estimated_delivery": "2026-12-03T04:00:00Z"}),
    # a delivered shipment has no estimate any more
    ({"status": "delivered", "estimated_delivery": NOON_THU, "estimate_source": "history"},
     {"estimated_delivery": None, "estimated_delivery_range": None, "estimate_source": None,
      "courier_estimated_delivery": None}),
])
def test_the_delivery_estimate_fields(fields, expected):
    shaped = views.shipment_view(row(**fields), audience=views.GUEST)
    assert {key: shaped[key] for key in expected} == expected


@pytest.mark.parametrize(
    ("age", "is_stale"),
    [(timedelta(hours=23), False), (timedelta(hours=24), False), (timedelta(hours=24, seconds=1), True)],
)
def test_data_older_than_the_ttl_is_stale(age, is_stale):
    assert views.is_stale(NOW - age, NOW, ttl=timedelta(hours=24)) is is_stale


def test_the_etag_ignores_key_order_and_changes_with_the_data():
    first = views.etag_for({"a": 1, "b": [1, 2]})
    assert first == views.etag_for({"b": [1, 2], "a": 1})
    assert first != views.etag_for({"a": 2, "b": [1, 2]})
    assert first.startswith('W/"')


@pytest.mark.parametrize(
    ("header", "matches"),
    [(None, False), ("", False), ('W/"abc"', True), ('"abc"', True), ('"x", W/"abc"', True), ("*", True),
     ('"abd"', False)],
)
def test_if_none_match_compares_weakly(header, matches):
    assert views.matches_etag(header, 'W/"abc"') is matches


def test_admin_view_keeps_everything_and_serialises_times():
    shipment = {"id": 1, "order_id": "O-1", "current_status": "in_transit", "tracking_events": events(2),
                "last_api_update": NOW, "next_update_due": datetime(9999, 1, 1, tzinfo=timezone.utc),
                "last_api_response": {"raw": True}}
    shaped = views.admin_order_view({"id": "O-1", "created_at": NOW}, [shipment], [{"started_at": NOW}], [], now=NOW)
    assert shaped["order"]["created_at"] == "2026-11-25T10:00:00Z"
    item = shaped["shipments"][0]
    assert item["events"][0]["raw_code"] == "C1" and item["last_api_response"] == {"raw": True}
    assert item["next_update_due"] is None and item["data_age_seconds"] == 0
    assert shaped["update_logs"] == [{"started_at": "2026-11-25T10:00:00Z"}]
