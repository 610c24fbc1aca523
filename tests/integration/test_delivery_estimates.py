"""Delivery estimates end to end over the courier simulator, PostgreSQL, Redis and a real worker:
a poll that changes milestone stores an estimate learnt from journey facts, the delivery-day rule
then polls at most every 30 minutes, a shipment stuck longer than similar journeys is flagged
delayed (attention list, metric, the delay channel) and polled on the exception interval, and a
delivered shipment becomes a journey fact."""
from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta, timezone

import pytest
from stacks import build_stack
from starlette.testclient import TestClient
from web_client import ADMIN_TOKEN, GUEST_ADDRESS

import settings
from models import JourneyFact, TrackingCache
from pipeline import estimates, estimating, runtime, service
from pipeline import status as S
from pipeline.registration import ShipmentRegistration
from sim.server import SimulatorConfig, SimulatorServer
from web.app import create_app

MYT = timezone(timedelta(hours=8))


def local_noon_today() -> datetime:
    today = datetime.now(MYT).date()
    return datetime(today.year, today.month, today.day, 12, tzinfo=MYT).astimezone(UTC)


@pytest.fixture
def simulated(postgres_url, redis_url):
    def start(epoch: datetime):
        sim = SimulatorServer(SimulatorConfig(speed=0, epoch=epoch, seed="estimates")).start()
        made, stop = build_stack(
            "redis", postgres_url, redis_url, real_courier=True, easyparcel_base_url=sim.url,
            easyparcel_client_id="demo-client", easyparcel_client_secret=settings.Secret("demo-secret"),
            estimate_min_samples=10)
        estimating.forget_statistics()
        stoppers.append(lambda: (stop(), sim.stop()))
        return made, sim

    stoppers: list = []
    yield start
    for stopper in stoppers:
        stopper()
    estimating.forget_statistics()


def seed_facts(count: int, *, in_transit_hours: float, delivered_after_hours: float) -> None:
    """Journeys of the last weeks handed over on weekday mornings: in transit for `in_transit_hours`,
    delivered `delivered_after_hours` after the handover."""
    rows = []
    day = datetime.now(MYT).date() - timedelta(days=30)
    while len(rows) < count:
        day += timedelta(days=1)
        if day.weekday() >= 5:
            continue
        handed = datetime(day.year, day.month, day.day, 8, tzinfo=MYT).astimezone(UTC)
        fact = estimates.JourneyFact(
            courier="History Express", service="easyparcel", origin_state="Penang", origin_country="MY",
            destination_state="Johor", destination_country="MY",
            milestones={S.IN_TRANSIT: handed, S.OUT_FOR_DELIVERY: handed + timedelta(hours=in_transit_hours)},
            outcome=S.DELIVERED, finished_at=handed + timedelta(hours=delivered_after_hours), handed_over_at=handed,
            delivered_at=handed + timedelta(hours=delivered_after_hours), business_days=0)
        rows.append(estimating.fact_row(fact, shipment_id=None))
    JourneyFact.insert_many(rows).execute()


def register(order_id: str, number: str) -> int:
    registration = ShipmentRegistration(order_id, "estimates@example.com", number, "easyparcel")
    return service.register_shipment(registration).shipment_id


def test_an_estimate_of_today_makes_the_delivery_day_rule_poll_every_30_minutes(simulated):
    # given history where parcels in transit are delivered the same day, and a parcel in transit today
    stack, _ = simulated(local_noon_today())
    seed_facts(20, in_transit_hours=48, delivered_after_hours=10)
    sid = register("EST-1", "EPTRN0000001")
    # when it is polled
    assert service.run_poll_sweep() == 1
    stack.wait_for(lambda: TrackingCache.get_by_id(sid).estimate_source == "history", timeout=30,
                   what="the estimate to be stored")
    row = TrackingCache.get_by_id(sid)
    # then the estimate is today, with its range, learnt from all history (no route level has enough)
    calendar = estimating.config_from(stack.config).calendar
    today = calendar.local_date(datetime.now(UTC))
    assert row.current_status == S.IN_TRANSIT
    assert calendar.local_date(row.estimated_delivery) == today == calendar.local_date(row.estimated_delivery_latest)
    assert row.first_estimated_delivery == row.estimated_delivery and row.estimate_basis == "all (20 journeys)"
    # and the next poll is at most the delivery-day interval away (x 1.5 on a weekend), not the 2 h of transit
    waited = (row.next_update_due - row.updated_at).total_seconds() / 60
    assert waited <= 30 * 1.5 + 1 and row.update_frequency_minutes <= 45
    # and the customer API serves it
    app = create_app(stack.config, boot=False)
    with TestClient(app, client=GUEST_ADDRESS) as client:
        answer = client.get("/api/customer/track-order",
                            params={"order_id": "EST-1", "email": "estimates@example.com"}).json()
    shipment = answer["shipments"][0]
    assert shipment["estimate_source"] == "history"
    assert shipment["estimated_delivery"] == row.estimated_delivery.isoformat().replace("+00:00", "Z")
    assert set(shipment["estimated_delivery_range"]) == {"earliest", "latest"}


def test_a_shipment_stuck_longer_than_similar_journeys_is_delayed_and_polled_on_the_exception_interval(simulated):
    # given history where parcels leave "in transit" within an hour, and a parcel in transit for hours
    stack, _ = simulated(datetime.now(UTC).replace(microsecond=0))
    seed_facts(20, in_transit_hours=1, delivered_after_hours=3)
    sid = register("EST-2", "EPTRN0000002")
    heard: list[str] = []
    stop = threading.Event()
    coordination = runtime.current().coordination

    def listen() -> None:
        heard.extend(coordination.subscribe(estimating.DELAY_CHANNEL, stop))

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    time.sleep(0.5)  # subscribed before anything is published
    # when it is polled
    assert service.run_poll_sweep() == 1
    stack.wait_for(lambda: TrackingCache.get_by_id(sid).is_delayed, timeout=30, what="the delay flag")
    row = TrackingCache.get_by_id(sid)
    # then it is delayed, with the reason, and polled at least hourly (x 1.5 on a weekend)
    assert row.delay_reason.startswith("in transit for") and "95% of similar journeys" in row.delay_reason
    assert row.update_frequency_minutes <= 60 * 1.5
    # and the attention list, the metric and the delay channel all say so
    app = create_app(stack.config, boot=False)
    with TestClient(app, client=GUEST_ADDRESS) as client:
        attention = client.get("/api/admin/tracking/attention",
                               headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}).json()
        metrics = client.get("/metrics").text
    [listed] = [item for item in attention["shipments"] if item["tracking_number"] == "EPTRN0000002"]
    assert "delayed" in listed["reasons"] and listed["delay_reason"] == row.delay_reason
    assert "trackcache_shipments_delayed 1.0" in metrics
    stack.wait_for(lambda: heard, timeout=10, what="the delay message")
    stop.set()
    listener.join(timeout=5)
    assert '"tracking_number": "EPTRN0000002"' in heard[0]


def test_a_delivered_shipment_becomes_a_journey_fact_and_the_job_refreshes_the_rest(simulated):
    stack, _ = simulated(datetime.now(UTC).replace(microsecond=0))
    seed_facts(20, in_transit_hours=30, delivered_after_hours=40)
    delivered = register("EST-3", "EPDEL0000003")
    waiting = register("EST-4", "EPTRN0000004")
    assert service.run_poll_sweep() == 2
    stack.wait_for(lambda: JourneyFact.select().where(JourneyFact.tracking_cache == delivered).exists(),
                   timeout=30, what="the journey fact")
    fact = JourneyFact.get(JourneyFact.tracking_cache == delivered)
    assert fact.outcome == S.DELIVERED and fact.delivered_at is not None and fact.origin_state is not None
    # recording it again (persist runs at least once) replaces it rather than adding a second
    config = estimating.config_from(stack.config)
    assert estimating.record_facts([TrackingCache.get_by_id(delivered)], config) == 1
    assert JourneyFact.select().where(JourneyFact.tracking_cache == delivered).count() == 1
    # when the estimates job runs, it rebuilds from 21 facts and refreshes the shipment in transit
    TrackingCache.update(estimated_delivery=None, estimate_source=None).where(TrackingCache.id == waiting).execute()
    summary = service.run_estimates_job()
    assert summary["refreshed"] == 1 and summary["changed_orders"] == 1
    assert TrackingCache.get_by_id(waiting).estimate_basis == "all (21 journeys)"


def test_a_couriers_own_estimate_is_kept_beside_ours_and_used_when_we_have_none(stack):
    # given a courier that sends its own estimate, and no history yet (both databases)
    from pipeline.canonical import TrackingEvent

    estimating.forget_statistics()
    theirs = datetime.now(UTC).replace(microsecond=0) + timedelta(days=2)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=5)
    stack.courier.script_journey("FKEST1", [
        TrackingEvent(start, "Shipment information sent to City-Link", "info_received"),
        TrackingEvent(start + timedelta(hours=2), "Parcel has been collected at Penang", "in_transit", None, "Penang"),
    ], estimated_delivery=theirs)
    sid = service.register_shipment(ShipmentRegistration("EST-5", "estimates@example.com", "FKEST1",
                                                         "fake")).shipment_id
    # when it is polled
    assert service.run_poll_sweep() == 1
    stack.wait_for(lambda: TrackingCache.get_by_id(sid).estimate_source is not None, timeout=30,
                   what="the courier's estimate")
    row = TrackingCache.get_by_id(sid)
    # then ours is the courier's (we have no history), and the courier's is kept in its own column
    assert row.courier_estimated_delivery == theirs == row.estimated_delivery
    assert row.estimate_source == "courier" and row.estimated_delivery_earliest is None
    # and once history exists, ours replaces it in estimated_delivery while the courier's stays beside it
    seed_facts(20, in_transit_hours=30, delivered_after_hours=40)
    service.run_estimates_job()
    row = TrackingCache.get_by_id(sid)
    assert row.estimate_source == "history" and row.courier_estimated_delivery == theirs
    estimating.forget_statistics()
