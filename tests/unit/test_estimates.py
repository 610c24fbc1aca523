"""Delivery estimates, pure: business days, journey facts from stored events, the fallback hierarchy
and minimum samples, quantile ranges, the delay rule and the backtest on simulated history."""
from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from pipeline import estimates as E

CAL = E.BusinessCalendar(holidays=frozenset({date(2026, 12, 25)}))
MYT = 8  # hours ahead of UTC


def local(day: date, hour: int = 10) -> datetime:
    """A moment on a Malaysian local date, as aware UTC."""
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC) - timedelta(hours=MYT)


@pytest.mark.parametrize("start, end, expected", [
    (date(2026, 12, 1), date(2026, 12, 1), 0),     # same day
    (date(2026, 12, 1), date(2026, 12, 3), 2),     # Tue -> Thu
    (date(2026, 12, 4), date(2026, 12, 7), 1),     # Fri -> Mon: the weekend does not count
    (date(2026, 12, 5), date(2026, 12, 6), 0),     # Sat -> Sun
    (date(2026, 12, 24), date(2026, 12, 28), 1),   # Thu -> Mon over a holiday and a weekend
    (date(2026, 12, 3), date(2026, 12, 1), -2),    # backwards is negative
])
def test_business_days_between(start, end, expected):
    assert CAL.days_between(start, end) == expected


@pytest.mark.parametrize("start, days, expected", [
    (date(2026, 12, 1), 0, date(2026, 12, 1)),
    (date(2026, 12, 1), 2, date(2026, 12, 3)),
    (date(2026, 12, 4), 1, date(2026, 12, 7)),
    (date(2026, 12, 24), 1, date(2026, 12, 28)),
    (date(2026, 12, 5), 1, date(2026, 12, 7)),
])
def test_adding_business_days(start, days, expected):
    assert CAL.add_days(start, days) == expected


def test_local_dates_are_in_the_shop_zone():
    assert CAL.local_date(datetime(2026, 12, 1, 17, 0, tzinfo=UTC)) == date(2026, 12, 2)


@pytest.mark.parametrize("values, percentile, expected", [
    ([1], 50, 1), ([1, 2, 3, 4], 50, 2), ([1, 2, 3, 4], 90, 4), ([1, 2, 3, 4], 10, 1),
    (list(range(1, 11)), 10, 1), (list(range(1, 11)), 90, 9), (list(range(1, 11)), 95, 10),
])
def test_nearest_rank_quantiles(values, percentile, expected):
    assert E.quantile(values, percentile) == expected


def event(time, status, text, location=None):
    return {"time": time.isoformat().replace("+00:00", "Z"), "status": status, "raw_text": text,
            "location": location, "raw_code": None}


def stored_journey(start: date, *, days_to_delivery=2, origin="Penang", destination="Sabah", carrier="City-Link",
                   failed=False, outcome="delivered"):
    """Stored events (as persist writes them) of a journey handed over on `start`."""
    hub = {"Penang": "Penang Hub, Penang, MY", "Selangor": "Shah Alam Hub, Selangor, MY",
           "Sabah": "Kota Kinabalu Hub, Sabah, MY", "Johor": "Johor Bahru Hub, Johor, MY"}
    delivered_day = CAL.add_days(start, days_to_delivery)
    events = [
        event(local(start, 8), "info_received", "Schedule In Arrangement"),
        event(local(start, 9), "info_received", f"Shipment information sent to {carrier}"),
        event(local(start, 11), "in_transit", f"Parcel has been collected at {origin}", origin),
        event(local(start, 14), "in_transit", "Arrived at hub", hub[origin]),
        event(local(delivered_day, 8), "out_for_delivery", "Out for delivery", hub[destination]),
    ]
    if failed:
        events.append(event(local(delivered_day, 9), "failed_attempt", "Delivery attempt failed", "Kota Kinabalu, MY"))
    if outcome == "delivered":
        events.append(event(local(delivered_day, 15), "delivered", "Delivered", "Kota Kinabalu, MY"))
    else:
        events.append(event(local(delivered_day, 15), "returned", "Returned to sender", "Penang, MY"))
    return list(reversed(events))


def test_a_finished_journey_becomes_a_fact():
    fact = E.journey_fact(stored_journey(date(2026, 12, 4), days_to_delivery=3, failed=True),
                          service="easyparcel", status="delivered", calendar=CAL)
    assert fact is not None
    assert (fact.courier, fact.service) == ("City-Link", "easyparcel")
    assert (fact.origin_state, fact.origin_country, fact.destination_state) == ("Penang", "MY", "Sabah")
    assert fact.handed_over_at == local(date(2026, 12, 4), 11)
    assert fact.delivered_at == local(date(2026, 12, 9), 15) == fact.finished_at
    assert fact.business_days == 3 and fact.failed_attempts == 1
    assert set(fact.milestones) == {"info_received", "in_transit", "out_for_delivery", "failed_attempt"}


def test_returned_journeys_are_facts_without_a_delivery_and_unfinished_ones_are_none():
    returned = E.journey_fact(stored_journey(date(2026, 12, 1), outcome="returned"), service="easyparcel",
                              status="returned", calendar=CAL)
    assert returned is not None and returned.delivered_at is None and returned.business_days is None
    assert E.journey_fact(stored_journey(date(2026, 12, 1)), service="easyparcel", status="in_transit",
                          calendar=CAL) is None


@pytest.mark.parametrize("text, carrier", [
    ("Shipment information sent to City-Link", "City-Link"),
    ("Shipment data received - Awaiting Parcel Handover to DHL", "DHL"),
    ("Data Submitted - Awaiting Parcel Handover to DHL", "DHL"),
    ("Schedule In Arrangement", None),
])
def test_the_carrier_is_read_from_easyparcels_texts(text, carrier):
    assert E.carrier_of([{"raw_text": text}]) == carrier


def facts_for(route_days: dict[tuple[str, str, str], list[int]]):
    """Facts handed over on Mondays, so remaining business days are easy to read."""
    facts = []
    start = date(2026, 11, 2)
    for (carrier, origin, destination), days_list in route_days.items():
        for days in days_list:
            facts.append(E.journey_fact(stored_journey(start, days_to_delivery=days, origin=origin,
                                                       destination=destination, carrier=carrier),
                                        service="easyparcel", status="delivered", calendar=CAL))
    return facts


POLICY = E.EstimatePolicy(min_samples=5)
STATS = E.build_statistics(facts_for({
    ("City-Link", "Penang", "Sabah"): [4, 4, 5, 5, 5, 6],
    ("City-Link", "Selangor", "Sabah"): [3, 3, 4, 4, 4],
    ("City-Link", "Penang", "Johor"): [1, 1, 2, 2],
    ("GDEX", "Selangor", "Johor"): [1, 1, 1, 2, 2, 3],
}), CAL)


@pytest.mark.parametrize("situation, level, samples, offsets", [
    # the route itself has enough journeys
    ({"courier": "City-Link", "origin_state": "Penang", "destination_state": "Sabah"}, "route", 6, (5, 4, 6)),
    # a route with too few journeys, and too few to Johor: the courier and origin
    ({"courier": "City-Link", "origin_state": "Penang", "destination_state": "Johor"}, "courier_origin", 10, (4, 1, 5)),
    # destination still unknown: the courier and origin, then the courier
    ({"courier": "City-Link", "origin_state": "Selangor"}, "courier_origin", 5, (4, 3, 4)),
    ({"courier": "City-Link"}, "courier", 15, (4, 1, 5)),
    # a courier we have never seen: everything
    ({"courier": "Skynet"}, "all", 21, (3, 1, 5)),
])
def test_the_estimate_comes_from_the_most_specific_level_with_enough_samples(situation, level, samples, offsets):
    monday = date(2026, 12, 7)
    where = E.ShipmentSituation(milestone="in_transit", reached_at=local(monday, 11), **situation)
    estimate = E.estimate_delivery(where, STATS, POLICY)
    assert estimate is not None
    assert (estimate.level, estimate.samples) == (level, samples)
    likely, low, high = offsets
    assert (estimate.most_likely, estimate.earliest, estimate.latest) == (
        CAL.add_days(monday, likely), CAL.add_days(monday, low), CAL.add_days(monday, high))


def test_without_enough_history_the_estimate_is_unknown():
    where = E.ShipmentSituation(courier="City-Link", milestone="in_transit", reached_at=local(date(2026, 12, 7)))
    assert E.estimate_delivery(where, STATS, E.EstimatePolicy(min_samples=100)) is None
    assert E.estimate_delivery(where, E.build_statistics([], CAL), POLICY) is None


def test_the_situation_of_a_shipment_in_progress():
    events = [e for e in stored_journey(date(2026, 12, 7)) if e["status"] in ("info_received", "in_transit")]
    where = E.situation_of(events, service="easyparcel", status="in_transit")
    assert where == E.ShipmentSituation(courier="City-Link", milestone="in_transit",
                                        reached_at=local(date(2026, 12, 7), 11), origin_state="Penang")
    assert E.situation_of(events, service="easyparcel", status="delivered") is None


@pytest.mark.parametrize("hours_waited, today_offset, expected", [
    (20, 0, None),                       # well within the usual time in transit
    (24 * 9, 9, "in transit for"),        # far longer than 95% of similar journeys
])
def test_the_delay_rule(hours_waited, today_offset, expected):
    reached = local(date(2026, 12, 7), 11)
    where = E.ShipmentSituation(courier="City-Link", milestone="in_transit", reached_at=reached,
                                origin_state="Penang")
    estimate = E.estimate_delivery(where, STATS, POLICY)
    reason = E.delay_reason(where, estimate, STATS, POLICY, now=reached + timedelta(hours=hours_waited))
    assert (reason is None) if expected is None else reason.startswith(expected)


def test_a_shipment_past_its_range_is_delayed_even_without_dwell_history():
    reached = local(date(2026, 12, 7), 11)
    where = E.ShipmentSituation(courier="City-Link", milestone="exception", reached_at=reached)
    estimate = E.Estimate(date(2026, 12, 8), date(2026, 12, 8), date(2026, 12, 9), "route", 30)
    assert E.delay_reason(where, estimate, STATS, POLICY, now=local(date(2026, 12, 9), 20)) is None
    reason = E.delay_reason(where, estimate, STATS, POLICY, now=local(date(2026, 12, 10), 9))
    assert reason == "past the estimated range (latest Wed 09 Dec)"


def test_the_backtest_trains_only_on_journeys_finished_before_each_prediction():
    # given one fast journey finishing after a slow one starts, the slow one is predicted without it
    facts = facts_for({("City-Link", "Penang", "Sabah"): [5]})
    report = E.backtest(facts, CAL, E.EstimatePolicy(min_samples=1))
    assert report["overall"] == {"predictions": 0} and report["unknown"] == 3


def test_backtest_on_simulated_history_beats_the_courier_median_and_covers_80_percent():
    from sim.history import simulated_facts

    facts = simulated_facts(1200, "unit", end=datetime(2026, 11, 30, tzinfo=UTC), days=90, calendar=CAL)
    report = E.backtest(facts, CAL, E.EstimatePolicy(min_samples=20))
    overall = report["overall"]
    assert overall["predictions"] > 2000
    assert overall["mae_days"] < overall["baseline_mae_days"]
    assert overall["inside_range"] >= 0.8
    assert set(report["by_courier"]) >= {"City-Link", "DHL", "Pos Laju"}


def test_first_estimates_learn_only_from_earlier_journeys():
    facts = facts_for({("City-Link", "Penang", "Sabah"): [2] * 3})
    # the three journeys overlap (same Monday), so none has history before it
    assert E.first_estimates(facts, CAL, E.EstimatePolicy(min_samples=1)) == [None, None, None]
    later = E.journey_fact(stored_journey(date(2026, 11, 16), days_to_delivery=3), service="easyparcel",
                           status="delivered", calendar=CAL)
    found = E.first_estimates([*facts, later], CAL, E.EstimatePolicy(min_samples=1))
    assert found[-1] == CAL.add_days(date(2026, 11, 16), 2)
