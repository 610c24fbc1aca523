"""The canonical status taxonomy every courier maps into: names, labels, polling groups and
which statuses are final (sticky)."""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Group(str, Enum):
    """Polling frequency groups of the seed plan."""

    PRE_SHIPMENT = "pre_shipment"
    IN_TRANSIT = "in_transit"
    OUT_FOR_DELIVERY = "out_for_delivery"
    EXCEPTION = "exception"
    FINAL = "final"


@dataclass(frozen=True)
class Status:
    name: str
    label: str
    group: Group
    # Position on the customer's progress bar (0 = ordered ... 4 = delivered); finals that end
    # elsewhere than delivery keep the stage they stopped at.
    stage: int


PENDING = "pending"
INFO_RECEIVED = "info_received"
IN_TRANSIT = "in_transit"
OUT_FOR_DELIVERY = "out_for_delivery"
FAILED_ATTEMPT = "failed_attempt"
AVAILABLE_FOR_PICKUP = "available_for_pickup"
DELIVERED = "delivered"
EXCEPTION = "exception"
RETURNED = "returned"
CANCELLED = "cancelled"
EXPIRED = "expired"

STATUSES: dict[str, Status] = {
    s.name: s
    for s in (
        Status(PENDING, "Pending", Group.PRE_SHIPMENT, 0),
        Status(INFO_RECEIVED, "Information received", Group.PRE_SHIPMENT, 1),
        Status(IN_TRANSIT, "In transit", Group.IN_TRANSIT, 2),
        Status(AVAILABLE_FOR_PICKUP, "Available for pickup", Group.IN_TRANSIT, 3),
        Status(OUT_FOR_DELIVERY, "Out for delivery", Group.OUT_FOR_DELIVERY, 3),
        Status(FAILED_ATTEMPT, "Delivery attempt failed", Group.EXCEPTION, 3),
        Status(EXCEPTION, "Exception", Group.EXCEPTION, 2),
        Status(DELIVERED, "Delivered", Group.FINAL, 4),
        Status(RETURNED, "Returned to sender", Group.FINAL, 2),
        Status(CANCELLED, "Cancelled", Group.FINAL, 0),
        Status(EXPIRED, "Expired", Group.FINAL, 2),
    )
}

FINAL_STATUSES = frozenset(name for name, s in STATUSES.items() if s.group is Group.FINAL)


def is_known(status: str | None) -> bool:
    return status in STATUSES


def is_final(status: str | None) -> bool:
    return status in FINAL_STATUSES


def label_of(status: str) -> str:
    """Human label of a canonical status (the name itself if unknown)."""
    known = STATUSES.get(status)
    return known.label if known else status


def group_of(status: str) -> Group:
    """Polling group of a canonical status; an unknown status polls like pre-shipment."""
    known = STATUSES.get(status)
    return known.group if known else Group.PRE_SHIPMENT
