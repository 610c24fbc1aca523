"""An event dated far in the future (year 9999) must not keep a shipment from ever expiring
(issue 18 point 9): it is stored and shown, but `last_event_at` (the expiry clock) counts only
events no more than a day's clock skew ahead of ours."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from models import TrackingCache
from pipeline import service
from pipeline import status as S
from pipeline.canonical import TrackingEvent
from pipeline.registration import ShipmentRegistration

NOW = datetime.now(timezone.utc).replace(microsecond=0)


def test_a_scan_dated_year_9999_does_not_stop_expiry(stack):
    # given a shipment whose courier reports a real scan and one dated year 9999
    result = service.register_shipment(ShipmentRegistration(order_id="ORD-9999", customer_email="b@example.com",
                                                             tracking_number="FK9999", courier="fake"))
    stack.courier.script_journey("FK9999", [
        TrackingEvent(time=NOW - timedelta(hours=2), raw_text="Parcel collected", status=S.IN_TRANSIT),
        TrackingEvent(time=datetime(9999, 12, 31, tzinfo=timezone.utc), raw_text="Out for delivery",
                      status=S.OUT_FOR_DELIVERY),
    ])
    service.request_refresh([result.shipment_id])
    stack.wait_for(lambda: TrackingCache.get_by_id(result.shipment_id).api_response_hash, what="the poll")
    stack.settle()
    row = TrackingCache.get_by_id(result.shipment_id)
    # then the far-future scan is kept but does not count as news
    assert len(row.tracking_events) == 2
    assert row.last_event_at == NOW - timedelta(hours=2)
    # and the shipment expires once nothing new came for TRACKING_EXPIRE_AFTER_DAYS
    assert service.run_maintenance(now=NOW + timedelta(days=31))["expired"] == 1
    assert TrackingCache.get_by_id(result.shipment_id).current_status == S.EXPIRED
