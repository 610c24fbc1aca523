"""Pure core of the integration API's lists: the shipment list's filters and its cursor, the
customer's order list cursor, and the one shape of a shipment in admin lists, bulk answers and
the changes feed. Plain values in, plain values (or per-field errors) out."""
from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pipeline import status as statuses
from pipeline.canonical import iso_utc, parse_iso
from pipeline.corrections import ContactState
from pipeline.registration import TRACKING_NUMBER_PATTERN

MAX_LIST_LIMIT = 500
DEFAULT_LIST_LIMIT = 100
MAX_CUSTOMER_LIMIT = 100
DEFAULT_CUSTOMER_LIMIT = 20
_TRUE, _FALSE = ("1", "true", "yes"), ("0", "false", "no")
FILTER_NAMES = ("tracking_number", "status", "courier", "requires_attention", "delayed", "updated_since", "active")


@dataclass(frozen=True)
class ShipmentFilters:
    """What `GET /api/admin/shipments` asks for; every filter is optional."""

    tracking_number: str | None = None
    status: str | None = None
    courier: str | None = None
    requires_attention: bool | None = None
    delayed: bool | None = None
    updated_since: datetime | None = None
    active: bool | None = None

    def digest(self) -> str:
        """A short digest of the filters, carried in the cursor so it is not reused with others."""
        text = "\x1f".join("" if value is None else str(value) for value in (
            self.tracking_number, self.status, self.courier, self.requires_attention, self.delayed,
            iso_utc(self.updated_since), self.active))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


@dataclass(frozen=True)
class ListQuery:
    filters: ShipmentFilters
    limit: int
    after_id: int = 0


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode("utf-8")).decode("ascii").rstrip("=")


def _unb64(text: str) -> str:
    """Raises ValueError when the text is not our base64."""
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise ValueError("not a cursor") from None


def shipment_cursor(last_id: int, filters: ShipmentFilters) -> str:
    """The opaque cursor after the shipment `last_id` for these filters."""
    return _b64(f"s1.{last_id}.{filters.digest()}")


def _bool_param(params: Mapping[str, str], name: str, errors: dict[str, str]) -> bool | None:
    raw = params.get(name)
    if raw is None:
        return None
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    errors[name] = "must be true or false"
    return None


def _limit_param(params: Mapping[str, str], errors: dict[str, str], *, default: int, maximum: int) -> int:
    raw = params.get("limit")
    if raw is None:
        return default
    if not raw.isdigit() or not 0 < int(raw) <= maximum:
        errors["limit"] = f"must be 1-{maximum}"
        return default
    return int(raw)


def parse_shipment_list_query(params: Mapping[str, str], couriers: list[str]) -> tuple[ListQuery | None,
                                                                                     dict[str, str]]:
    """The list query of `GET /api/admin/shipments`, or per-field errors."""
    errors: dict[str, str] = {}
    for name in params:
        if name not in FILTER_NAMES + ("limit", "cursor"):
            errors[name] = "is not a filter of this list; filters: " + ", ".join(FILTER_NAMES)
    number = params.get("tracking_number")
    if number is not None:
        number = number.replace(" ", "").upper()
        if not TRACKING_NUMBER_PATTERN.match(number):
            errors["tracking_number"] = "must be 4-64 characters: letters, digits and -"
    status = params.get("status")
    if status is not None and not statuses.is_known(status):
        errors["status"] = "must be one of: " + ", ".join(sorted(statuses.STATUSES))
    courier = params.get("courier")
    if courier is not None and courier.lower() not in couriers:
        errors["courier"] = "must be one of: " + ", ".join(sorted(couriers))
    updated_since = None
    if params.get("updated_since") is not None:
        try:
            updated_since = parse_iso(params["updated_since"])
        except ValueError:
            updated_since = None
        if updated_since is None:
            errors["updated_since"] = "must be an ISO 8601 time, e.g. 2026-12-01T00:00:00Z"
    filters = ShipmentFilters(
        tracking_number=number, status=status, courier=courier.lower() if courier else None,
        requires_attention=_bool_param(params, "requires_attention", errors),
        delayed=_bool_param(params, "delayed", errors), updated_since=updated_since,
        active=_bool_param(params, "active", errors))
    limit = _limit_param(params, errors, default=DEFAULT_LIST_LIMIT, maximum=MAX_LIST_LIMIT)
    after_id = 0
    cursor = params.get("cursor")
    if cursor is not None and not errors:
        try:
            version, last_id, digest = _unb64(cursor).split(".")
            if version != "s1" or not last_id.isdigit() or len(last_id) > 18:
                raise ValueError("not a cursor")
        except ValueError:
            errors["cursor"] = "is not a cursor this list handed out"
        else:
            if digest != filters.digest():
                errors["cursor"] = "belongs to a list with other filters; repeat the filters it was made with"
            after_id = int(last_id)
    if errors:
        return None, errors
    return ListQuery(filters=filters, limit=limit, after_id=after_id), {}


# --- customers' orders ---------------------------------------------------------------------------

def order_cursor(created_at: datetime, order_id: str) -> str:
    """The opaque cursor after an order in a customer's list (newest first)."""
    return _b64(f"o1|{iso_utc(created_at)}|{order_id}")


def parse_order_list_query(params: Mapping[str, str]) -> tuple[tuple[int, tuple[datetime, str] | None] | None,
                                                              dict[str, str]]:
    """(limit, position after which to continue) of `GET /api/customer/orders`, or per-field errors."""
    errors: dict[str, str] = {}
    for name in params:
        if name not in ("limit", "cursor"):
            errors[name] = "is not a parameter of this list (limit, cursor)"
    limit = _limit_param(params, errors, default=DEFAULT_CUSTOMER_LIMIT, maximum=MAX_CUSTOMER_LIMIT)
    position = None
    cursor = params.get("cursor")
    if cursor is not None:
        try:
            version, stamp, order_id = _unb64(cursor).split("|", 2)
            moment = parse_iso(stamp)
            if version != "o1" or moment is None or not order_id:
                raise ValueError("not a cursor")
            position = (moment, order_id)
        except ValueError:
            errors["cursor"] = "is not a cursor this list handed out"
    if errors:
        return None, errors
    return (limit, position), {}


# --- shapes ----------------------------------------------------------------------------------------

def is_delayed(status: str, estimated_delivery: datetime | None, now: datetime) -> bool:
    """Past its estimated delivery time and not finished."""
    return estimated_delivery is not None and estimated_delivery < now and not statuses.is_final(status)


def shipment_item(row: Mapping[str, Any], *, now: datetime, version: str | None = None,
                  contact: ContactState | None = None) -> dict[str, Any]:
    """A shipment in admin lists and answers: identity, courier, status and its flags, key times,
    and the order's email options (`notify_email`: status emails go to the customer; `locale`:
    their language, None without a stored contact). `row` holds the tracking_cache columns plus
    `order_id`."""
    status = row["current_status"]
    next_due = row.get("next_update_due")
    item = {
        "shipment_id": row["id"], "order_id": row["order_id"], "tracking_number": row["courier_tracking_number"],
        "courier": row["courier_service"], "status": status, "status_label": statuses.label_of(status),
        "is_active": bool(row.get("is_active", True)), "requires_attention": bool(row.get("requires_attention")),
        "is_delayed": is_delayed(status, row.get("estimated_delivery"), now),
        "estimated_delivery": iso_utc(row.get("estimated_delivery")), "delivered_at": iso_utc(row.get("actual_delivery")),
        "last_event_at": iso_utc(row.get("last_event_at")), "last_checked_at": iso_utc(row.get("last_api_update")),
        "next_poll_at": None if not row.get("is_active", True) or next_due is None or next_due.year >= 9999
        else iso_utc(next_due),
        "created_at": iso_utc(row.get("created_at")), "updated_at": iso_utc(row.get("updated_at")),
        "notify_email": contact is not None and contact.is_emailed,
        "locale": contact.locale if contact is not None else None,
    }
    if version is not None:
        item["version"] = version
    return item


def customer_shipment(row: Mapping[str, Any]) -> dict[str, Any]:
    """A shipment in a customer's order list: the latest status, not the event history."""
    status = row["current_status"]
    return {"tracking_number": row["courier_tracking_number"], "courier": row["courier_service"], "status": status,
            "status_label": statuses.label_of(status), "estimated_delivery": iso_utc(row.get("estimated_delivery")),
            "delivered_at": iso_utc(row.get("actual_delivery")), "last_updated": iso_utc(row.get("last_api_update"))}


def utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
