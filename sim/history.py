"""Simulated delivery history for the demo and the estimates backtest: the simulator's finished
journeys, read by the real EasyParcel adapter from their Open API rendering, as stored events,
merged shipment states and journey facts. Pure: no I/O."""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pipeline import estimates
from pipeline.couriers.base import HttpResponse
from pipeline.couriers.easyparcel import EasyParcel
from pipeline.merge import ShipmentState, merge_updates
from sim import journeys as J

API_VERSION = "2026-06"
MAX_EVENTS = 100


@dataclass(frozen=True)
class FinishedShipment:
    """One simulated finished journey as the pipeline would have stored it."""

    tracking_number: str
    state: ShipmentState
    events: list[dict[str, Any]]  # stored form (TrackingEvent.to_dict), newest first
    fact: estimates.JourneyFact


def finished_shipments(count: int, seed: str, *, end: datetime, days: int,
                       calendar: estimates.BusinessCalendar) -> list[FinishedShipment]:
    """`count` finished journeys of the `days` before `end`, oldest first, read by the real adapter."""
    adapter = EasyParcel(api="open", api_version=API_VERSION)
    history = J.history_journeys(count, seed, end=end, days=days)
    items = [J.render_openapi_item(journey, end, API_VERSION, seed) for journey in history]
    shipments: list[FinishedShipment] = []
    for start in range(0, len(items), 100):
        chunk = [item for item in items[start:start + 100] if item is not None]
        body = json.dumps(J.openapi_tracking_response(chunk, len(chunk), 0, "history")).encode("utf-8")
        result = adapter.parse_tracking_response(HttpResponse(200, {}, body), [i["awb_number"] for i in chunk])
        for update in result.updates:
            state = merge_updates(ShipmentState(), [update], max_events=MAX_EVENTS).state
            events = [event.to_dict() for event in state.events]
            fact = estimates.journey_fact(events, service=adapter.name, status=state.status, calendar=calendar)
            if fact is not None:
                shipments.append(FinishedShipment(update.tracking_number, state, events, fact))
    return shipments


def simulated_facts(count: int, seed: str, *, end: datetime, days: int,
                    calendar: estimates.BusinessCalendar) -> Sequence[estimates.JourneyFact]:
    """Just the journey facts of `finished_shipments`, oldest first."""
    return [shipment.fact for shipment in finished_shipments(count, seed, end=end, days=days, calendar=calendar)]
