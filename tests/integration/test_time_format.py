"""Every time the service shows is one format: ISO 8601 UTC to the second with a Z
(`2026-11-24T09:10:56Z`), in the customer and admin API answers, the cached documents behind them
and the pages' `<time datetime>` values, whatever precision the courier or the clock had."""
from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from web_client import T0, scan

FIXED = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")
LOOKS_LIKE_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}")

# A journey whose scans have fractions of a second beside whole seconds.
JOURNEY = [scan(0, "Shipment information received", "info_received", None, "7"),
           scan(3 + 0.087 / 3600, "Parcel has been collected at Penang", "in_transit", "Penang, MY", "3"),
           scan(9, "Out for delivery", "out_for_delivery", "Kuala Lumpur, MY", "4")]


def times_in(value: Any) -> list[str]:
    """Every string in a JSON value that looks like a time."""
    if isinstance(value, str):
        return [value] if LOOKS_LIKE_TIME.match(value) else []
    if isinstance(value, dict):
        return [t for v in value.values() for t in times_in(v)]
    if isinstance(value, list):
        return [t for v in value for t in times_in(v)]
    return []


def test_customer_and_admin_answers_give_every_time_in_one_fixed_format(api):
    assert JOURNEY[1].time.microsecond == 87_000 and T0.microsecond == 0
    api.polled("ORD-F1", "FKF001", JOURNEY, customer_id="cust-f1")
    answers = [api.guest("ORD-F1", "buyer@example.com").json(),
               api.customer("ORD-F1", "cust-f1").json(),
               api.customer("ORD-F1", "cust-f1").json(),  # the second from the read cache
               api.admin("GET", "/api/admin/shipments/ORD-F1").json()]
    for answer in answers:
        times = times_in({k: v for k, v in answer.items() if k != "shipments"} | {
            "shipments": [{k: v for k, v in s.items() if k != "last_api_response"} for s in answer["shipments"]]})
        assert times, answer
        assert [t for t in times if not FIXED.fullmatch(t)] == []
    collected = answers[1]["shipments"][0]["events"][1]
    assert collected["time"] == (T0 + timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_tracking_page_time_elements_use_the_same_format(api):
    api.polled("ORD-F2", "FKF002", JOURNEY)
    lookup = api.client.post("/track", data={"order_id": "ORD-F2", "email": "buyer@example.com"},
                             follow_redirects=False)
    page = api.client.get(lookup.headers["location"]).text
    values = re.findall(r'<time datetime="([^"]*)"', page)
    assert len(values) >= 4
    assert [v for v in values if not FIXED.fullmatch(v)] == []
