"""The customer read path: an order's guest or customer view from the read cache, else from the
database (then cached), ownership checks that do not reveal which orders exist, and the
background refreshes a stale read or a premium customer's request triggers. Never calls the
courier: refreshes go through the pipeline's queues."""
from __future__ import annotations

import functools
import hashlib
import hmac
import logging
from collections.abc import Callable, Sequence
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
    # False for an owner-only document (the order row's owner fields, no shipments loaded): what a
    # miss that failed the ownership check caches, so it costs what an unknown order costs.
    is_complete: bool = True

    def to_ready(self) -> read_bodies.ReadyDocument:
        """The read cache's final form of this document (answer body parts and ETag)."""
        return read_bodies.ready_document(exists=self.exists, email_hash=self.email_hash,
                                          customer_id=self.customer_id, view=self.view, shipments=self.shipments,
                                          is_complete=self.is_complete)

    @classmethod
    def from_ready(cls, ready: read_bodies.ReadyDocument) -> OrderDocument:
        return cls(exists=ready.exists, email_hash=ready.email_hash, customer_id=ready.customer_id,
                   view=ready.view() if ready.exists and ready.is_complete else {},
                   shipments=tuple({"id": s.id, "is_pollable": s.is_pollable,
                                    "last_updated": None if s.last_updated is None else
                                    views.iso(datetime.fromtimestamp(s.last_updated, UTC))} for s in ready.shipments),
                   is_complete=ready.is_complete)


# What a read did about refreshing the order's data (`refresh.state` in the answer).
REQUESTED, UNDER_WAY, NOT_NEEDED, UNAVAILABLE = "requested", "under_way", "not_needed", "unavailable"


@dataclass(frozen=True)
class ReadOutcome:
    is_found: bool
    view: dict[str, Any]
    is_cache_hit: bool
    refresh: dict[str, Any]


# --- loading -------------------------------------------------------------------------------------

def owner_document(order_id: str) -> OrderDocument:
    """An order's owner fields alone (one query on the order row, no shipments): enough to answer
    "not yours" or "no such order" with the same work."""
    order = (Order.select(Order.id, Order.customer_email_hash, Order.customer_id)
             .where(Order.id == order_id).first())
    if order is None:
        return OrderDocument(exists=False)
    return OrderDocument(exists=True, email_hash=order.customer_email_hash, customer_id=order.customer_id,
                         is_complete=False)


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


def _cached_document(order_id: str, audience: str) -> OrderDocument | None:
    """The document in the read cache (complete or owner-only), None when absent or unreachable."""
    try:
        raw = read_cache.get(runtime.current().coordination, order_id, audience)
    except Exception as error:  # Redis down: serve from the database
        logger.warning("read cache unavailable for order %s: %s", order_id, error)
        return None
    if raw is None:
        return None
    ready = read_bodies.ReadyDocument.from_bytes(raw)
    return None if ready is None else OrderDocument.from_ready(ready)


def _cache_document(order_id: str, audience: str, document: OrderDocument) -> None:
    rt = runtime.current()
    ttl = rt.config.read_cache_seconds if document.exists else min(MISSING_TTL_SECONDS, rt.config.read_cache_seconds)
    try:
        read_cache.put(rt.coordination, order_id, audience, document.to_ready().to_bytes(), ttl_seconds=ttl)
    except Exception as error:
        logger.warning("read cache not written for order %s: %s", order_id, error)


def _completed(order_id: str, audience: str) -> OrderDocument:
    document = build_document(order_id, audience, guest_history=runtime.current().config.guest_history)
    _cache_document(order_id, audience, document)
    return document


def load_document(order_id: str, audience: str) -> tuple[OrderDocument, bool]:
    """The complete document from the read cache, else from the database (and then cached); also
    says whether it was a cache hit. A read cache that cannot be reached is skipped, not fatal."""
    cached = _cached_document(order_id, audience)
    if cached is not None and (cached.is_complete or not cached.exists):
        return cached, True
    return _completed(order_id, audience), False


def load_owned_document(order_id: str, audience: str,
                        is_owner: Callable[[OrderDocument], bool]) -> tuple[OrderDocument | None, bool]:
    """The complete document when `is_owner` accepts it, else None; also whether it was a cache hit.

    On a miss the ownership is checked against the order row before any shipment is loaded, and an
    owner-only document is cached, so a real order with a wrong email costs what an unknown order
    costs (one query, one cache write; then hits alike)."""
    cached = _cached_document(order_id, audience)
    document = cached if cached is not None else owner_document(order_id)
    if not is_owner(document):
        if cached is None:
            _cache_document(order_id, audience, document)
        return None, cached is not None
    if document.is_complete:
        return document, cached is not None
    return _completed(order_id, audience), False


# --- ownership -------------------------------------------------------------------------------------

def is_guest_owner(document: OrderDocument, email: str, email_hash_key: str) -> bool:
    """Whether the email is the order's; unknown orders do the same work as known ones."""
    presented = models.hash_email(email, email_hash_key)
    is_same = hmac.compare_digest(presented.encode("ascii"), document.email_hash.encode("ascii"))
    return is_same and document.exists


@functools.lru_cache(maxsize=65_536)
def _digest(text: str) -> bytes:
    """A customer id's digest (remembered: hot customers ask again; same work whatever the answer)."""
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


def refresh_answer(state: str, reason: str, *, job_ids: Sequence[int] = (), since: str | None = None,
                   ) -> dict[str, Any]:
    """The `refresh` object of an answer (pure): what happened (`state`), why (`reason`: customer,
    stale, fresh or final), the poll jobs created, and since when a refresh is under way.
    `requested` stays for older clients: true only when this read created jobs."""
    answer: dict[str, Any] = {"requested": state == REQUESTED, "state": state, "reason": reason}
    if job_ids:
        answer["job_ids"] = list(job_ids)
    if since is not None:
        answer["since"] = since
    return answer


def _slot_key(kind: str, shipment_id: int) -> str:
    return f"refresh:{kind}:{shipment_id}"


def claim_refresh_slots(coordination: Coordination, kind: str, shipment_ids: Sequence[int], *,
                        interval_seconds: int, now: datetime) -> tuple[list[int], list[str]]:
    """Take the refresh slot of each shipment whose refresh of this kind has not been asked for
    within the interval (so concurrent readers in any web process enqueue it only once). Returns
    the shipments claimed now, and when the others' refreshes were asked for (ISO times)."""
    claimed, taken_since = [], []
    stamp = views.iso(now)
    for shipment_id in shipment_ids:
        key = _slot_key(kind, shipment_id)
        if coordination.set(key, stamp, ttl_seconds=interval_seconds, only_if_absent=True):
            claimed.append(shipment_id)
            continue
        taken = coordination.get(key)
        if taken is not None and views.parse_iso(taken.decode("utf-8", "replace")) is not None:
            taken_since.append(taken.decode("utf-8"))
    return claimed, taken_since


def release_refresh_slots(coordination: Coordination, kind: str, shipment_ids: Sequence[int]) -> None:
    """Give back slots whose refresh could not be enqueued, so the next read asks again."""
    try:
        coordination.delete(*[_slot_key(kind, shipment_id) for shipment_id in shipment_ids])
    except Exception as error:  # they expire by themselves
        logger.warning("refresh slots of shipments %s not released: %s", list(shipment_ids), error)


def read_order(order_id: str, *, email: str | None, customer: Customer | None, wants_refresh: bool) -> ReadOutcome:
    """Answer a tracking read: find the document, check ownership, and refresh what needs it. The
    answer's `refresh` says what really happened: jobs requested (their ids), a refresh already
    under way (since when), not needed (fresh, or every shipment final), or unavailable (the
    coordination store or the broker could not be reached)."""
    rt = runtime.current()
    if customer is None:
        audience = views.GUEST
        key = rt.config.email_hash_key.reveal()
        document, is_hit = load_owned_document(order_id, audience,
                                               lambda candidate: is_guest_owner(candidate, email or "", key))
    else:
        audience = views.CUSTOMER
        document, is_hit = load_owned_document(order_id, audience,
                                               lambda candidate: is_customer_owner(candidate, customer))
    if document is None:
        return ReadOutcome(is_found=False, view={}, is_cache_hit=is_hit, refresh={"requested": False})
    return ReadOutcome(True, document.view, is_hit, _refresh(order_id, document, customer, wants_refresh))


def _refresh(order_id: str, document: OrderDocument, customer: Customer | None, wants_refresh: bool,
             ) -> dict[str, Any]:
    from pipeline import service

    rt = runtime.current()
    now = rt.now()
    pollable = [int(s["id"]) for s in document.shipments if s.get("is_pollable")]
    if wants_refresh and customer is not None:
        kind, interval, lane, triggered_by = ("customer", rt.config.premium_refresh_interval, lanes.MANUAL,
                                              f"customer:{customer.customer_id}")
        wanted = pollable
        if not wanted:
            return refresh_answer(NOT_NEEDED, "final")
    else:
        kind, interval, lane, triggered_by = "stale", rt.config.stale_refresh_interval, lanes.BULK, "stale-read"
        wanted = stale_shipment_ids(document.shipments, now, ttl=timedelta(hours=rt.config.cache_ttl_hours))
        if not wanted:
            return refresh_answer(NOT_NEEDED, "fresh" if pollable else "final")
    reason = "customer" if kind == "customer" else "stale"
    try:
        claimed, taken_since = claim_refresh_slots(rt.coordination, kind, wanted, interval_seconds=interval, now=now)
    except Exception as error:  # the coordination store is down: answer without refreshing
        logger.warning("refresh of order %s not requested, coordination store unavailable: %s", order_id, error)
        return refresh_answer(UNAVAILABLE, reason)
    if not claimed:
        return refresh_answer(UNDER_WAY, reason, since=min(taken_since) if taken_since else None)
    try:
        job_ids = service.request_refresh(claimed, lane=lane, triggered_by=triggered_by)
    except Exception:
        logger.exception("refresh of shipments %s (%s) could not be enqueued", claimed, triggered_by)
        release_refresh_slots(rt.coordination, kind, claimed)
        return refresh_answer(UNAVAILABLE, reason)
    if not job_ids:  # the shipments went away between the read and the refresh
        release_refresh_slots(rt.coordination, kind, claimed)
        return refresh_answer(NOT_NEEDED, "final")
    return refresh_answer(REQUESTED, reason, job_ids=job_ids, since=views.iso(now))
