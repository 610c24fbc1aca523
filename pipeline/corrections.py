"""Correcting a registered shipment (`PATCH /api/admin/shipments/{order_id}/{tracking_number}`):
validating the fields a shop may change, the version a client read (for If-Match), and what an
order looks like once its personal data is erased. Pure: plain values in, plain values out."""
from __future__ import annotations

import hashlib
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from pipeline.registration import CUSTOMER_ID_PATTERN, EMAIL_PATTERN

CORRECTABLE_FIELDS = ("customer_email", "customer_id", "courier")
# Stored in place of an erased order's email hash: never the hex digest of any address, so no
# guest lookup can match it again.
ERASED_EMAIL_HASH = "erased"


@dataclass(frozen=True)
class ShipmentCorrection:
    """What a PATCH changes; a field left out (None) stays as it is."""

    customer_email: str | None = None
    customer_id: str | None = None
    clears_customer_id: bool = False
    courier: str | None = None

    def field_names(self) -> list[str]:
        names = []
        if self.customer_email is not None:
            names.append("customer_email")
        if self.customer_id is not None or self.clears_customer_id:
            names.append("customer_id")
        if self.courier is not None:
            names.append("courier")
        return names


def validate_correction(data: Mapping[str, Any], couriers: Collection[str]) -> tuple[ShipmentCorrection | None,
                                                                                    dict[str, str]]:
    """A clean correction, or per-field errors (unknown fields are errors too, so a typo is not
    silently ignored)."""
    errors: dict[str, str] = {}
    for name in data:
        if name not in CORRECTABLE_FIELDS:
            errors[name] = "cannot be corrected; correctable fields: " + ", ".join(CORRECTABLE_FIELDS)
    if not data:
        errors["body"] = "give at least one of: " + ", ".join(CORRECTABLE_FIELDS)
    email = data.get("customer_email")
    if "customer_email" in data:
        if not isinstance(email, str) or len(email.strip()) > 254 or not EMAIL_PATTERN.match(email.strip()):
            errors["customer_email"] = "must be an email address"
    customer_id = data.get("customer_id")
    if customer_id is not None and (not isinstance(customer_id, str) or not CUSTOMER_ID_PATTERN.match(customer_id.strip())):
        errors["customer_id"] = "must be 1-128 characters: letters, digits and . _ : @ - (or null to remove it)"
    courier = data.get("courier")
    if "courier" in data and (not isinstance(courier, str) or courier.strip().lower() not in couriers):
        errors["courier"] = f"must be one of: {', '.join(sorted(couriers))}"
    if errors:
        return None, errors
    return ShipmentCorrection(
        customer_email=email.strip() if isinstance(email, str) else None,
        customer_id=customer_id.strip() if isinstance(customer_id, str) else None,
        clears_customer_id="customer_id" in data and customer_id is None,
        courier=courier.strip().lower() if isinstance(courier, str) else None,
    ), {}


def shipment_version(email_hash: str, customer_id: str | None, courier: str, is_active: bool) -> str:
    """The ETag of a shipment's correctable state: what If-Match on a PATCH or DELETE compares."""
    text = "\x1f".join((email_hash, customer_id or "", courier, "1" if is_active else "0"))
    return '"' + hashlib.sha256(text.encode("utf-8")).hexdigest()[:24] + '"'


def matches_version(if_match: str | None, version: str) -> bool:
    """Whether an If-Match header allows the write (absent or `*` always does)."""
    if if_match is None or if_match.strip() == "*":
        return True
    return any(candidate.strip().removeprefix("W/") == version for candidate in if_match.split(","))


def is_erased(email_hash: str) -> bool:
    return email_hash == ERASED_EMAIL_HASH


def anonymous_events(events: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Tracking events without their locations (a delivery scan may name the recipient's place);
    times, statuses and codes stay for the statistics."""
    return [{**event, "location": None} for event in events]
