"""What the shop's integration API changes on stored shipments: corrections (customer email,
customer id, courier, notification options) under a version check, stopping the tracking of a shipment (kept for
history), and erasing an order's personal data on request (anonymous statistics stay). Each
runs in one transaction with its changes-feed rows; read caches are invalidated after commit."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import models
from models import Order, OrderContact, TrackingCache, TrackingUpdateLog
from pipeline import changes_feed, outbox, read_cache, runtime
from pipeline.corrections import (
    ERASED_EMAIL_HASH,
    ContactRefusal,
    ContactState,
    ShipmentCorrection,
    anonymous_events,
    is_erased,
    matches_version,
    plan_contact,
    shipment_version,
)

logger = logging.getLogger(__name__)

CORRECTED, UNCHANGED, STOPPED, ERASED = "corrected", "unchanged", "stopped", "erased"
NOT_FOUND, CONFLICT, PRECONDITION_FAILED, INVALID = "not_found", "conflict", "precondition_failed", "invalid"


@dataclass(frozen=True)
class ShipmentWrite:
    """The outcome of a write on one shipment (or order) and what it changed."""

    outcome: str
    row: TrackingCache | None = None
    order: Order | None = None
    changed_fields: tuple[str, ...] = ()
    detail: str | None = None
    shipment_ids: tuple[int, ...] = field(default=())
    fields: dict[str, str] = field(default_factory=dict)  # per-field errors of an INVALID write


def _locked_shipment(order_id: str, tracking_number: str) -> tuple[TrackingCache, Order, OrderContact | None] | None:
    query = TrackingCache.select().where((TrackingCache.order == order_id)
                                         & (TrackingCache.courier_tracking_number == tracking_number))
    order_query = Order.select().where(Order.id == order_id)
    contact_query = OrderContact.select().where(OrderContact.order == order_id)
    if models.is_postgres():
        order_query = order_query.for_update()
        query = query.for_update()
        contact_query = contact_query.for_update()
    order = order_query.first()  # the order first, then its shipment: the same order as registration
    row = query.first()
    if order is None or row is None:
        return None
    return row, order, contact_query.first()


def _writable_shipment(order_id: str, tracking_number: str, if_match: str | None,
                       ) -> tuple[TrackingCache, Order, OrderContact | None] | ShipmentWrite:
    """The locked shipment, order and contact, or the refusal (not found, If-Match failed) to answer."""
    found = _locked_shipment(order_id, tracking_number)
    if found is None:
        return ShipmentWrite(NOT_FOUND)
    row, order, contact = found
    if not matches_version(if_match, version_of(row, order, contact)):
        return ShipmentWrite(PRECONDITION_FAILED, row, order,
                             detail="the shipment changed since it was read (If-Match does not match)")
    return row, order, contact


def contact_state(contact: OrderContact | None) -> ContactState | None:
    """The decision's view of an order's contact row."""
    if contact is None:
        return None
    return ContactState(notify_email=bool(contact.notify_email), locale=contact.locale,
                        has_address=bool(contact.email_encrypted), is_unsubscribed=contact.unsubscribed_at is not None,
                        is_bounced=contact.bounced_at is not None)


def version_of(row: TrackingCache, order: Order, contact: OrderContact | None) -> str:
    return shipment_version(order.customer_email_hash, order.customer_id, row.courier_service, bool(row.is_active),
                            contact_state(contact))


def correct_shipment(order_id: str, tracking_number: str, correction: ShipmentCorrection, *,
                     if_match: str | None, now: datetime) -> ShipmentWrite:
    """Apply a correction. The email, customer id and notification options belong to the order
    (all its shipments); the courier to this shipment, whose next poll is then due at once with
    the new courier. Nothing is written when any part is refused."""
    rt = runtime.current()
    with models.write_transaction():
        found = _writable_shipment(order_id, tracking_number, if_match)
        if isinstance(found, ShipmentWrite):
            return found
        row, order, contact = found
        if is_erased(order.customer_email_hash):
            return ShipmentWrite(CONFLICT, row, order,
                                 detail=f"order {order_id}'s personal data was erased; register a new order instead")
        changed: list[str] = []
        order_changes: dict[str, Any] = {}
        if correction.customer_email is not None:
            email_hash = models.hash_email(correction.customer_email, rt.config.email_hash_key.reveal())
            if email_hash != order.customer_email_hash:
                order_changes["customer_email_hash"] = email_hash
                changed.append("customer_email")
        plan = plan_contact(correction, contact_state(contact), order_id=order_id,
                            has_contact_keys=bool(rt.config.contact_keys),
                            default_locale=rt.config.email_default_locale,
                            replaces_address="customer_email_hash" in order_changes)
        if isinstance(plan, ContactRefusal):
            return ShipmentWrite(INVALID if plan.status == 422 else CONFLICT, row, order, detail=plan.detail,
                                 fields=plan.fields)
        new_customer = None if correction.clears_customer_id else correction.customer_id
        if (correction.customer_id is not None or correction.clears_customer_id) and new_customer != order.customer_id:
            order_changes["customer_id"] = new_customer
            changed.append("customer_id")
        shipment_changes: dict[str, Any] = {}
        if correction.courier is not None and correction.courier != row.courier_service:
            shipment_changes = {"courier_service": correction.courier, "api_response_hash": None,
                                "last_api_response": None, "claimed_until": None, "updated_at": now}
            if row.is_active:
                shipment_changes["next_update_due"] = now
            changed.append("courier")
        changed += plan.changed
        if not changed:
            return ShipmentWrite(UNCHANGED, row, order)
        if order_changes:
            Order.update(**order_changes).where(Order.id == order_id).execute()
            if "customer_email_hash" in order_changes and correction.customer_email is not None:
                # Emails must follow the correction: the stored (encrypted) address is replaced too.
                outbox.update_contact_address(order_id, correction.customer_email, now=now)
            for name, value in order_changes.items():
                setattr(order, name, value)
        if plan.creates:
            assert correction.customer_email is not None and plan.locale is not None
            outbox.store_contacts({order_id: (correction.customer_email, plan.locale, True)}, now=now)
        elif plan.changed:
            outbox.set_contact_options(order_id, notify_email=plan.notify_email, locale=plan.locale, now=now)
        if shipment_changes:
            TrackingCache.update(**shipment_changes).where(TrackingCache.id == row.id).execute()
            for name, value in shipment_changes.items():
                setattr(row, name, value)
        touched = [row.id]
        if order_changes or plan.changed:  # every shipment of the order reads differently now
            touched = [r.id for r in TrackingCache.select(TrackingCache.id).where(TrackingCache.order == order_id)]
        changes_feed.record_shipment_changes(touched, changes_feed.CORRECTED, now)
        result = ShipmentWrite(CORRECTED, row, order, tuple(changed), shipment_ids=tuple(touched))
    read_cache.invalidate(rt.coordination, [order_id])
    return result


def stop_tracking(order_id: str, tracking_number: str, *, if_match: str | None, now: datetime) -> ShipmentWrite:
    """Stop polling a shipment for good; it stays stored and readable for history."""
    rt = runtime.current()
    with models.write_transaction():
        found = _writable_shipment(order_id, tracking_number, if_match)
        if isinstance(found, ShipmentWrite):
            return found
        row, order, _ = found
        if not row.is_active:
            return ShipmentWrite(UNCHANGED, row, order)
        TrackingCache.update(is_active=False, next_update_due=models.NEVER, claimed_until=None,
                             updated_at=now).where(TrackingCache.id == row.id).execute()
        row.is_active, row.next_update_due, row.claimed_until, row.updated_at = False, models.NEVER, None, now
        changes_feed.record_shipment_changes([row.id], changes_feed.STOPPED, now)
        result = ShipmentWrite(STOPPED, row, order, ("is_active",), shipment_ids=(row.id,))
    read_cache.invalidate(rt.coordination, [order_id])
    return result


# Personal data of an order, and what erasing leaves in its place (the encrypted address for
# emails lives in order_contacts, which erasing deletes).
ERASED_ORDER_VALUES: dict[str, Any] = {"customer_email_hash": ERASED_EMAIL_HASH, "customer_id": None}
ERASED_TRIGGER = "customer:erased"


def erase_order(order_id: str, *, now: datetime) -> ShipmentWrite:
    """Erase an order's personal data: the email hash, the customer id (and any other column of
    ERASED_ORDER_VALUES); its shipments stop being tracked and lose what may describe the
    recipient (delivery location, event locations, the courier's raw answer). Statuses, times,
    couriers and update logs stay as anonymous statistics. A second erasure changes nothing."""
    rt = runtime.current()
    with models.write_transaction():
        query = Order.select().where(Order.id == order_id)
        if models.is_postgres():
            query = query.for_update()
        order = query.first()
        if order is None:
            return ShipmentWrite(NOT_FOUND)
        rows = list(TrackingCache.select().where(TrackingCache.order == order_id).order_by(TrackingCache.id))
        if is_erased(order.customer_email_hash) and order.customer_id is None:
            return ShipmentWrite(UNCHANGED, shipment_ids=tuple(r.id for r in rows))
        Order.update(**ERASED_ORDER_VALUES).where(Order.id == order_id).execute()
        outbox.erase_customer_contact(order_id)  # the encrypted address for emails, and unsent emails
        for row in rows:
            TrackingCache.update(
                is_active=False, next_update_due=models.NEVER, claimed_until=None, delivery_location=None,
                last_api_response=None, api_response_hash=None,
                tracking_events=anonymous_events(list(row.tracking_events or [])), updated_at=now,
            ).where(TrackingCache.id == row.id).execute()
        if rows:  # a premium customer's refreshes are logged as triggered by "customer:<id>"
            TrackingUpdateLog.update(triggered_by=ERASED_TRIGGER).where(
                TrackingUpdateLog.tracking_cache.in_([r.id for r in rows])
                & TrackingUpdateLog.triggered_by.startswith("customer:")).execute()
        changes_feed.record_shipment_changes([r.id for r in rows], changes_feed.ERASED, now)
        result = ShipmentWrite(ERASED, changed_fields=tuple(ERASED_ORDER_VALUES), shipment_ids=tuple(r.id for r in rows))
    read_cache.invalidate(rt.coordination, [order_id])
    logger.info("order %s: personal data erased (%d shipments)", order_id, len(rows))
    return result
