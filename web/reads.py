"""The customer read path: an order's guest or customer view from the read cache, else from the
database (then cached), ownership checks that do not reveal which orders exist, and the
background refreshes a stale read or a premium customer's request triggers. Never calls the
courier: refreshes go through the pipeline's queues."""
from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import models
from models import Order, TrackingCache
from pipeline import lanes, read_cache, runtime
from pipeline import status as statuses
from pipeline.coordination import Coordination
from web import read_bodies, views
from web.auth import Customer

logger = logging.getLogger(__name__)

# Compared against when the order does not exist, so "no such order" and "wrong email" cost the
# same work (one keyed hash, one constant-time compare) and give the same answer.
DUMMY_EMAIL_HASH = read_bodies.DUMMY_EMAIL_HASH
# How long "no such order" is cached (registration invalidates it at once anyway).
MISSING_TTL_SECONDS = 60


@dataclass(frozen=True)
class OrderDocument:
    """What the read path knows about an order for one audience (cached in its final form, see
    `to_ready`)."""

    exists: bool
    email_hash: str = DUMMY_EMAIL_HASH
    customer_id: str | None = None
    view: dict[str, Any] = field(default_factory=dict)
    # Per shipment: id, last_updated (ISO), is_pollable; used for refreshes, never shown.
    shipments: tuple[dict[str, Any], ...] = ()

    def to_ready(self) -> read_bodies.ReadyDocument:
        """The read cache's final form of this document (answer body parts and ETag)."""
        return read_bodies.ready_document(exists=self.exists, email_hash=self.email_hash,
                                          customer_id=self.customer_id, view=self.view, shipments=self.shipments)

    @classmethod
    def from_ready(cls, ready: read_bodies.ReadyDocument) -> OrderDocument:
        return cls(exists=ready.exists, email_hash=ready.email_hash, customer_id=ready.customer_id,
                   view=ready.view() if ready.exists else {},
                   shipments=tuple({"id": s.id, "is_pollable": s.is_pollable,
                                    "last_updated": None if s.last_updated is None else
                                    views.iso(datetime.fromtimestamp(s.last_updated, UTC))} for s in ready.shipments))


@dataclass(frozen=True)
class ReadOutcome:
    is_found: bool
    view: dict[str, Any]
    is_cache_hit: bool
    refresh: dict[str, Any]
    refresh_ids: tuple[int, ...] = ()
    refresh_lane: str = lanes.BULK.name
    triggered_by: str = "stale-read"


# --- loading -------------------------------------------------------------------------------------

def build_document(order_id: str, audience: str, *, guest_history: int) -> OrderDocument:
    """The document of an order straight from the database."""
    order = Order.get_or_none(Order.id == order_id)
    if order is None:
        return OrderDocument(exists=False)
    rows = list(TrackingCache.select().where(TrackingCache.order == order_id).order_by(TrackingCache.id))
    shaped = [{
        "tracking_number": row.courier_tracking_number, "courier": row.courier_service,
        "status": row.current_status, "events": row.tracking_events or [],
        "estimated_delivery": row.estimated_delivery, "delivered_at": row.actual_delivery,
        # Delivery estimates (issue 16): the range, its source and the courier's own estimate.
        "estimated_delivery_earliest": row.estimated_delivery_earliest,
        "estimated_delivery_latest": row.estimated_delivery_latest, "estimate_source": row.estimate_source,
        "courier_estimated_delivery": row.courier_estimated_delivery,
        "last_updated": row.last_api_update, "next_update_due": row.next_update_due,
    } for row in rows]
    internal = tuple({"id": row.id, "last_updated": views.iso(row.last_api_update),
                      "is_pollable": bool(row.is_active) and not statuses.is_final(row.current_status)}
                     for row in rows)
    return OrderDocument(exists=True, email_hash=order.customer_email_hash, customer_id=order.customer_id,
                         view=views.order_view(order_id, shaped, audience=audience, guest_history=guest_history),
                         shipments=internal)


def load_document(order_id: str, audience: str) -> tuple[OrderDocument, bool]:
    """The document from the read cache, else from the database (and then cached); also says
    whether it was a cache hit. A read cache that cannot be reached is skipped, not fatal."""
    rt = runtime.current()
    coordination = rt.coordination
    try:
        raw = read_cache.get(coordination, order_id, audience)
    except Exception as error:  # Redis down: serve from the database
        logger.warning("read cache unavailable for order %s: %s", order_id, error)
        raw = None
    if raw is not None:
        ready = read_bodies.ReadyDocument.from_bytes(raw)
        if ready is not None:
            return OrderDocument.from_ready(ready), True
    document = build_document(order_id, audience, guest_history=rt.config.guest_history)
    ttl = rt.config.read_cache_seconds if document.exists else min(MISSING_TTL_SECONDS, rt.config.read_cache_seconds)
    try:
        read_cache.put(coordination, order_id, audience, document.to_ready().to_bytes(), ttl_seconds=ttl)
    except Exception as error:
        logger.warning("read cache not written for order %s: %s", order_id, error)
    return document, False


# --- ownership -------------------------------------------------------------------------------------

def is_guest_owner(document: OrderDocument, email: str, email_hash_key: str) -> bool:
    """Whether the email is the order's; unknown orders do the same work as known ones."""
    presented = models.hash_email(email, email_hash_key)
    is_same = hmac.compare_digest(presented.encode("ascii"), document.email_hash.encode("ascii"))
    return is_same and document.exists


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8")).digest()


def is_customer_owner(document: OrderDocument, customer: Customer) -> bool:
    """Whether the order belongs to this signed-in customer (same work whatever the answer)."""
    is_same = hmac.compare_digest(_digest(customer.customer_id), _digest(document.customer_id or "\x00"))
    return is_same and document.exists and document.customer_id is not None


# --- refreshes -------------------------------------------------------------------------------------

def stale_shipment_ids(shipments: Sequence[dict[str, Any]], now: datetime, *, ttl: timedelta) -> list[int]:
    """Pollable shipments whose data is older than the cache TTL (pure)."""
    return [int(s["id"]) for s in shipments
            if s.get("is_pollable") and views.is_stale(views.parse_iso(s.get("last_updated")), now, ttl=ttl)]


def claim_refresh_slots(coordination: Coordination, kind: str, shipment_ids: Sequence[int], *,
                        interval_seconds: int) -> list[int]:
    """The shipments whose refresh of this kind has not been asked for within the interval (their
    slot is taken now, so concurrent readers in any web process enqueue it only once)."""
    claimed = []
    for shipment_id in shipment_ids:
        if coordination.set(f"refresh:{kind}:{shipment_id}", "1", ttl_seconds=interval_seconds, only_if_absent=True):
            claimed.append(shipment_id)
    return claimed


def read_order(order_id: str, *, email: str | None, customer: Customer | None, wants_refresh: bool) -> ReadOutcome:
    """Answer a tracking read: find the document, check ownership, and decide on refreshes."""
    rt = runtime.current()
    audience = views.GUEST if customer is None else views.CUSTOMER
    document, is_hit = load_document(order_id, audience)
    if customer is None:
        is_owner = is_guest_owner(document, email or "", rt.config.email_hash_key.reveal())
    else:
        is_owner = is_customer_owner(document, customer)
    if not is_owner:
        return ReadOutcome(is_found=False, view={}, is_cache_hit=is_hit, refresh={"requested": False})
    now = rt.now()
    pollable = [int(s["id"]) for s in document.shipments if s.get("is_pollable")]
    try:
        if wants_refresh and customer is not None:
            if not pollable:
                return ReadOutcome(True, document.view, is_hit, {"requested": False, "reason": "final"})
            fresh = claim_refresh_slots(rt.coordination, "customer", pollable,
                                        interval_seconds=rt.config.premium_refresh_interval)
            return ReadOutcome(True, document.view, is_hit, {"requested": True, "reason": "customer"},
                               refresh_ids=tuple(fresh), refresh_lane=lanes.MANUAL.name,
                               triggered_by=f"customer:{customer.customer_id}")
        stale = stale_shipment_ids(document.shipments, now, ttl=timedelta(hours=rt.config.cache_ttl_hours))
        if stale:
            fresh = claim_refresh_slots(rt.coordination, "stale", stale,
                                        interval_seconds=rt.config.stale_refresh_interval)
            return ReadOutcome(True, document.view, is_hit, {"requested": True, "reason": "stale"},
                               refresh_ids=tuple(fresh), refresh_lane=lanes.BULK.name, triggered_by="stale-read")
    except Exception as error:  # the coordination store is down: answer without refreshing
        logger.warning("refresh of order %s not requested, coordination store unavailable: %s", order_id, error)
    return ReadOutcome(True, document.view, is_hit, {"requested": False})


def enqueue_refresh(shipment_ids: Sequence[int], lane_name: str, triggered_by: str) -> None:
    """Run after the answer is sent: put the refreshes on their lane (errors are logged, the
    sweep polls the shipments anyway)."""
    from pipeline import service

    try:
        service.request_refresh(list(shipment_ids), lane=lanes.LANES[lane_name], triggered_by=triggered_by)
    except Exception:
        logger.exception("refresh of shipments %s (%s) could not be enqueued", list(shipment_ids), triggered_by)
