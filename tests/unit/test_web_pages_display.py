"""Pure presentation helpers of the pages: shop-zone times with UTC kept in the data, ages and
waits in words, the progress steps per status, and the shaping of the dashboard's figures."""
from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from web import display

KL = "Asia/Kuala_Lumpur"
NOW = datetime(2026, 3, 3, 6, 0, tzinfo=UTC)


def test_times_are_shown_in_the_shop_zone_from_utc_strings_or_datetimes():
    assert display.format_local("2026-03-02T16:05:00Z", KL) == "Tue 3 Mar, 00:05"
    assert display.format_local(datetime(2026, 3, 2, 16, 5, tzinfo=UTC), KL, with_year=True) == \
        "Tue 3 Mar 2026, 00:05"
    assert display.format_local(datetime(2026, 3, 2, 16, 5), "UTC") == "Mon 2 Mar, 16:05", "naive means UTC"
    assert display.format_local(None, KL) == "" and display.format_day(None, KL) == ""
    assert display.format_day("2026-03-04T20:00:00Z", KL) == "Thursday 5 March"


def test_the_zone_caption_names_the_city_and_the_offset_of_that_moment():
    assert display.zone_caption(KL, NOW) == "Kuala Lumpur time (UTC+08:00)"
    assert display.zone_caption("America/St_Johns", datetime(2026, 1, 1, tzinfo=UTC)) == \
        "St Johns time (UTC-03:30)"
    assert display.zone_caption("America/St_Johns", datetime(2026, 7, 1, tzinfo=UTC)) == \
        "St Johns time (UTC-02:30)"


@pytest.mark.parametrize(("seconds", "words"), [
    (None, "never"), (-5, "just now"), (0, "just now"), (59, "just now"), (60, "1 minute ago"),
    (119, "1 minute ago"), (120, "2 minutes ago"), (3599, "59 minutes ago"), (3600, "1 hour ago"),
    (7 * 3600, "7 hours ago"), (86400, "1 day ago"), (3 * 86400 + 5, "3 days ago"),
])
def test_time_ago_in_words(seconds, words):
    assert display.time_ago(seconds) == words


@pytest.mark.parametrize(("seconds", "words"), [
    (None, "none"), (0, "0 s"), (45, "45 s"), (60, "1 min"), (754, "12 min"), (3600, "1 h"), (11100, "3 h 5 min"),
    (86400, "1 d"), (2 * 86400 + 4 * 3600, "2 d 4 h"),
])
def test_duration_in_words(seconds, words):
    assert display.duration(seconds) == words


def states(status: str) -> list[str]:
    return [step.state for step in display.progress_steps(status)]


@pytest.mark.parametrize(("status", "expected"), [
    ("pending", ["current", "upcoming", "upcoming", "upcoming", "upcoming"]),
    ("info_received", ["done", "current", "upcoming", "upcoming", "upcoming"]),
    ("in_transit", ["done", "done", "current", "upcoming", "upcoming"]),
    ("out_for_delivery", ["done", "done", "done", "current", "upcoming"]),
    ("available_for_pickup", ["done", "done", "done", "current", "upcoming"]),
    ("failed_attempt", ["done", "done", "done", "stopped", "upcoming"]),
    ("exception", ["done", "done", "stopped", "upcoming", "upcoming"]),
    ("delivered", ["done", "done", "done", "done", "done"]),
    ("returned", ["done", "done", "stopped", "upcoming", "upcoming"]),
    ("cancelled", ["stopped", "upcoming", "upcoming", "upcoming", "upcoming"]),
    ("expired", ["done", "done", "stopped", "upcoming", "upcoming"]),
    ("no_such_status", ["current", "upcoming", "upcoming", "upcoming", "upcoming"]),
])
def test_progress_steps_follow_the_status_stage_and_stop_on_problems(status, expected):
    assert states(status) == expected
    current = [step for step in display.progress_steps(status) if step.is_current]
    assert len(current) == (0 if status == "delivered" else 1)


def test_progress_percent_and_tones():
    assert [display.progress_percent(s) for s in ("pending", "in_transit", "delivered")] == [0, 50, 100]
    assert [display.status_tone(s) for s in ("delivered", "exception", "cancelled", "in_transit", None)] == [
        "ok", "warn", "bad", "neutral", "neutral"]


GUEST_SHIPMENT = {
    "tracking_number": "EP1", "courier": "easyparcel", "status": "in_transit", "status_label": "In transit",
    "events": [{"time": "2026-03-03T02:00:00Z", "status": "in_transit", "description": "Arrived at hub",
                "location": "Penang, MY"},
               {"time": "2026-03-02T10:00:00Z", "status": "info_received", "description": "Information received",
                "location": None}],
    "estimated_delivery": "2026-03-04T16:00:00Z", "delivered_at": None, "last_updated": "2026-03-03T05:45:00Z",
}


def test_a_shipment_page_keeps_utc_in_the_data_and_shows_local_time_and_age():
    page = display.shipment_page(GUEST_SHIPMENT, zone=KL, now=NOW)
    assert (page.courier, page.status_label, page.tone, page.is_problem) == ("EasyParcel", "In transit", "neutral",
                                                                              False)
    assert page.status_note == "Your parcel is on its way."
    assert [(e.utc, e.local, e.location) for e in page.events] == [
        ("2026-03-03T02:00:00Z", "Tue 3 Mar, 10:00", "Penang, MY"),
        ("2026-03-02T10:00:00Z", "Mon 2 Mar, 18:00", None)]
    assert (page.estimated_delivery, page.estimated_local) == ("2026-03-04T16:00:00Z", "Thursday 5 March")
    assert page.updated_ago == "15 minutes ago" and page.delivered_at is None


def test_a_delivered_shipment_shows_its_delivery_time_not_an_estimate():
    delivered = GUEST_SHIPMENT | {"status": "delivered", "status_label": "Delivered",
                                  "delivered_at": "2026-03-03T04:30:00Z"}
    page = display.shipment_page(delivered, zone=KL, now=NOW)
    assert (page.delivered_local, page.estimated_delivery, page.tone) == ("Tue 3 Mar, 12:30", None, "ok")
    assert display.shipment_pages({"shipments": [delivered, GUEST_SHIPMENT]}, zone=KL, now=NOW)[1].status == \
        "in_transit"


def test_usage_days_fill_the_last_30_days_oldest_first():
    history = [{"day": "2026-03-01", "calls": 10, "successes": 8}, {"day": "2026-03-03", "calls": 4, "successes": 4},
               {"day": "2026-01-01", "calls": 99, "successes": 99}]
    rows = display.usage_days(history, date(2026, 3, 3), days=30)
    assert len(rows) == 30 and rows[0]["day"] == "2026-02-02" and rows[-1]["day"] == "2026-03-03"
    assert rows[-3] == {"day": "2026-03-01", "label": "1 Mar", "calls": 10, "ok": 8, "failed": 2}
    assert rows[-2]["calls"] == 0 and rows[-1]["ok"] == 4
    assert sum(row["calls"] for row in rows) == 14


def test_status_counts_follow_the_journey_and_skip_empty_statuses():
    counts = display.status_counts({"delivered": 3, "pending": 1, "weird": 2, "in_transit": 0, "exception": 4})
    assert [(row["status"], row["label"], row["count"], row["tone"]) for row in counts] == [
        ("pending", "Pending", 1, "neutral"), ("exception", "Exception", 4, "warn"),
        ("delivered", "Delivered", 3, "ok"), ("weird", "weird", 2, "neutral")]


@pytest.mark.parametrize(("rate", "text"), [(None, "no calls"), (1.0, "100 %"), (0.975, "97.5 %"), (0.0, "0 %"),
                                            (0.33333, "33.3 %")])
def test_percent(rate, text):
    assert display.percent(rate) == text


@pytest.mark.parametrize(("value", "expected"), [
    ("2026-03-01T08:00:00Z", True), ("2026-03-01T08:00:00.123000Z", True), ("2026-03-01T08:00:00+00:00", True),
    ("2026-03-01", False), ("EPMY800004", False), ("2026-13-01T08:00:00Z", False), ("abcd-efghijTklmnopqrZ", False),
    (datetime(2026, 3, 1, tzinfo=UTC), True),
])
def test_is_moment_recognises_stored_utc_times_only(value, expected):
    assert display.is_moment(value) is expected


@pytest.mark.parametrize(("estimated", "earliest", "latest", "source", "expected"), [
    (None, None, None, None, ""),
    ("2026-12-04T04:00:00Z", "2026-12-03T04:00:00Z", "2026-12-05T04:00:00Z", "history",
     "Arrives Fri 4 Dec, between Thu and Sat"),
    ("2026-12-03T04:00:00Z", "2026-12-02T04:00:00Z", "2026-12-04T04:00:00Z", "history",
     "Arrives Thu 3 Dec, between Wed and Fri"),
    ("2026-12-03T04:00:00Z", "2026-12-03T04:00:00Z", "2026-12-03T04:00:00Z", "history", "Arrives Thu 3 Dec"),
    ("2026-12-03T04:00:00Z", "2026-12-01T04:00:00Z", "2026-12-10T04:00:00Z", "history",
     "Arrives Thu 3 Dec, between Tue 1 Dec and Thu 10 Dec"),
    ("2026-12-03T04:00:00Z", None, None, "courier", "Arrives Thu 3 Dec (the courier's estimate)"),
    # the day is the shop's: 17:00 UTC on the 2nd is already the 3rd in Kuala Lumpur
    ("2026-12-02T17:00:00Z", None, None, "history", "Arrives Thu 3 Dec"),
])
def test_the_arrival_sentence(estimated, earliest, latest, source, expected):
    assert display.arrival_sentence(estimated, earliest, latest, source, "Asia/Kuala_Lumpur") == expected
