"""Example webhook bodies, one per event type, built by the same function that builds the real
ones (`pipeline.webhook_events.webhook_payload`): the OpenAPI document and the README show them."""
from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pipeline import webhook_events as events

AT = datetime(2026, 11, 24, 9, 15, 2, tzinfo=UTC)
_BY_TYPE: dict[str, tuple[str, str, dict[str, Any] | None]] = {
    events.STATUS_CHANGED: ("info_received", "in_transit", {
        "time": "2026-11-24T09:10:00Z", "status": "in_transit", "description": "Arrived at Shah Alam Hub",
        "location": "Shah Alam Hub, Selangor, MY"}),
    events.OUT_FOR_DELIVERY: ("in_transit", "out_for_delivery", {
        "time": "2026-11-25T01:30:00Z", "status": "out_for_delivery", "description": "Out for delivery",
        "location": "Petaling Jaya, Selangor, MY"}),
    events.DELIVERED: ("out_for_delivery", "delivered", {
        "time": "2026-11-25T06:42:00Z", "status": "delivered", "description": "Delivered",
        "location": "Petaling Jaya, Selangor, MY"}),
    events.EXCEPTION: ("in_transit", "exception", {
        "time": "2026-11-25T03:05:00Z", "status": "exception", "description": "Shipment on hold at hub",
        "location": "Shah Alam Hub, Selangor, MY"}),
    events.ATTENTION_REQUIRED: ("in_transit", "in_transit", None),
}


def example_change(event_type: str) -> dict[str, Any]:
    previous, status, event = _BY_TYPE[event_type]
    is_attention = event_type == events.ATTENTION_REQUIRED
    return {"shipment_id": 1, "order_id": "ORD-1001", "tracking_number": "EP123456789MY", "courier": "easyparcel",
            "previous": previous, "status": status, "event": event,
            "estimated_delivery": None if status == "delivered" else "2026-11-25T00:00:00Z",
            "delivered_at": "2026-11-25T06:42:00Z" if status == "delivered" else None,
            "requires_attention": is_attention,
            "attention_reason": "5 consecutive failed polls" if is_attention else None,
            "is_attention": is_attention, "occurred_at": events.iso(AT)}


def example_payload(event_type: str) -> dict[str, Any]:
    return events.webhook_payload(event_type, example_change(event_type), now=AT)
