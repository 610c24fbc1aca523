"""Read queries of the integration API: the admin's shipment list (filters, keyset pagination by
id, so rows inserted while a client pages never shift a page), the changes feed page with each
shipment's current state, and a signed-in customer's orders with their latest statuses."""
from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import peewee

from models import Order, OrderContact, TrackingCache
from pipeline import changes_feed
from pipeline import status as statuses
from pipeline.corrections import ContactState, shipment_version
from web import listing

_LIST_COLUMNS = (
    TrackingCache.id, TrackingCache.order, TrackingCache.courier_tracking_number, TrackingCache.courier_service,
    TrackingCache.current_status, TrackingCache.is_active, TrackingCache.requires_attention,
    TrackingCache.estimated_delivery, TrackingCache.actual_delivery, TrackingCache.last_event_at,
    TrackingCache.last_api_update, TrackingCache.next_update_due, TrackingCache.created_at, TrackingCache.updated_at,
)


def _contacts(order_ids: Sequence[str]) -> dict[str, ContactState]:
    """The notification options of these orders (those with a stored contact)."""
    if not order_ids:
        return {}
    rows = (OrderContact.select(OrderContact.order, OrderContact.notify_email, OrderContact.locale,
                                OrderContact.email_encrypted.is_null(False).alias("has_address"),
                                OrderContact.unsubscribed_at.is_null(False).alias("is_unsubscribed"),
                                OrderContact.bounced_at.is_null(False).alias("is_bounced"))
            .where(OrderContact.order.in_(order_ids)).dicts())
    return {row["order"]: ContactState(notify_email=bool(row["notify_email"]), locale=row["locale"],
                                       has_address=bool(row["has_address"]),
                                       is_unsubscribed=bool(row["is_unsubscribed"]), is_bounced=bool(row["is_bounced"]))
            for row in rows}


def _items(rows: Sequence[dict[str, Any]], now: datetime) -> list[dict[str, Any]]:
    """Shipment items with their versions and notification options (one query for the orders'
    correctable fields, one for their contacts)."""
    order_ids = sorted({row["order_id"] for row in rows})
    orders = {order.id: order for order in Order.select(Order.id, Order.customer_email_hash, Order.customer_id)
              .where(Order.id.in_(order_ids))} if order_ids else {}
    contacts = _contacts(order_ids)
    items = []
    for row in rows:
        order = orders.get(row["order_id"])
        contact = contacts.get(row["order_id"])
        version = shipment_version(order.customer_email_hash, order.customer_id, row["courier_service"],
                                   bool(row["is_active"]), contact) if order is not None else None
        items.append(listing.shipment_item(row, now=now, version=version, contact=contact))
    return items


def _rows(query: peewee.Query) -> list[dict[str, Any]]:
    rows = []
    for row in query.dicts():
        row["order_id"] = row.pop("order")
        rows.append(row)
    return rows


def list_shipments(query: listing.ListQuery, now: datetime) -> tuple[list[dict[str, Any]], str | None]:
    """One page of shipments in id order and the cursor of the next page (None on the last)."""
    filters = query.filters
    select = TrackingCache.select(*_LIST_COLUMNS).where(TrackingCache.id > query.after_id)
    if filters.tracking_number is not None:
        select = select.where(TrackingCache.courier_tracking_number == filters.tracking_number)
    if filters.status is not None:
        select = select.where(TrackingCache.current_status == filters.status)
    if filters.courier is not None:
        select = select.where(TrackingCache.courier_service == filters.courier)
    if filters.requires_attention is not None:
        select = select.where(TrackingCache.requires_attention == filters.requires_attention)
    if filters.active is not None:
        select = select.where(TrackingCache.is_active == filters.active)
    if filters.updated_since is not None:
        select = select.where(TrackingCache.updated_at >= filters.updated_since)
    if filters.delayed is not None:
        late = (TrackingCache.estimated_delivery.is_null(False) & (TrackingCache.estimated_delivery < now)
                & TrackingCache.current_status.not_in(sorted(statuses.FINAL_STATUSES)))
        select = select.where(late if filters.delayed else ~late)
    rows = _rows(select.order_by(TrackingCache.id).limit(query.limit + 1))
    has_more = len(rows) > query.limit
    rows = rows[:query.limit]
    next_cursor = listing.shipment_cursor(rows[-1]["id"], filters) if has_more else None
    return _items(rows, now), next_cursor


def shipment_items_by_id(shipment_ids: Sequence[int], now: datetime) -> dict[int, dict[str, Any]]:
    """The current item of each of these shipments (for answers after writes and the feed)."""
    if not shipment_ids:
        return {}
    rows = _rows(TrackingCache.select(*_LIST_COLUMNS).where(TrackingCache.id.in_(sorted(set(shipment_ids)))))
    return {item["shipment_id"]: item for item in _items(rows, now)}


def changes_page(after: changes_feed.FeedCursor, limit: int, now: datetime) -> tuple[list[dict[str, Any]], str]:
    """A page of the changes feed: each change with the shipment as it is now."""
    changes, cursor = changes_feed.read_changes(after, limit)
    current = shipment_items_by_id([change["shipment_id"] for change in changes], now)
    page = []
    for change in changes:
        page.append({"cursor": changes_feed.FeedCursor(int(change["txid"]), int(change["id"])).encode(),
                     "change": change["change"], "changed_at": change["changed_at"],
                     "shipment_id": change["shipment_id"], "shipment": current.get(change["shipment_id"])})
    return page, cursor.encode()


def customer_orders(customer_id: str, limit: int, after: tuple[datetime, str] | None) -> tuple[list[dict[str, Any]],
                                                                                             str | None]:
    """A customer's orders, newest first, each with its shipments' latest statuses; the cursor of
    the next page (None on the last)."""
    select = Order.select(Order.id, Order.created_at).where(Order.customer_id == customer_id)
    if after is not None:
        moment, order_id = after
        select = select.where((Order.created_at < moment) | ((Order.created_at == moment) & (Order.id < order_id)))
    orders = list(select.order_by(Order.created_at.desc(), Order.id.desc()).limit(limit + 1))
    has_more = len(orders) > limit
    orders = orders[:limit]
    shipments: dict[str, list[dict[str, Any]]] = {}
    if orders:
        for row in (TrackingCache.select(*_LIST_COLUMNS).where(TrackingCache.order.in_([o.id for o in orders]))
                    .order_by(TrackingCache.id).dicts()):
            shipments.setdefault(row["order"], []).append(listing.customer_shipment(row))
    page = [{"order_id": order.id, "created_at": order.created_at, "shipments": shipments.get(order.id, [])}
            for order in orders]
    next_cursor = listing.order_cursor(orders[-1].created_at, orders[-1].id) if has_more else None
    return page, next_cursor
