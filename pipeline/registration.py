"""Validating a shipment registration (order id, customer email, tracking number, courier):
pure, shared by the admin API and the CSV import, so both reject the same input the same way."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Collection, Mapping

ORDER_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:#/-]{0,127}$")
TRACKING_NUMBER_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{3,63}$")
CUSTOMER_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$")
# Deliberately loose: one @, something on each side, a dot in the domain, no spaces.
EMAIL_PATTERN = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")


@dataclass(frozen=True)
class ShipmentRegistration:
    order_id: str
    customer_email: str
    tracking_number: str
    courier: str
    customer_id: str | None = None
    # Notifications: email the customer about status changes (None: TRACKING_EMAIL_ALL_SHIPMENTS
    # decides), in this language (None: TRACKING_EMAIL_LOCALE).
    notify_email: bool | None = None
    locale: str | None = None


def validate_registration(data: Mapping[str, Any], couriers: Collection[str], locales: Collection[str] = ("en",),
                          ) -> tuple[ShipmentRegistration | None, dict[str, str]]:
    """A clean registration, or per-field errors naming what is wrong."""
    errors: dict[str, str] = {}

    def text(name: str, *, required: bool = True) -> str | None:
        value = data.get(name)
        if value is None or (isinstance(value, str) and not value.strip()):
            if required:
                errors[name] = "is required"
            return None
        if not isinstance(value, str):
            errors[name] = "must be a string"
            return None
        return value.strip()

    order_id = text("order_id")
    if order_id is not None and not ORDER_ID_PATTERN.match(order_id):
        errors["order_id"] = "must be 1-128 characters: letters, digits and . _ : # / -"
    email = text("customer_email")
    if email is not None and (len(email) > 254 or not EMAIL_PATTERN.match(email)):
        errors["customer_email"] = "must be an email address"
    number = text("tracking_number")
    if number is not None:
        number = number.replace(" ", "").upper()
        if not TRACKING_NUMBER_PATTERN.match(number):
            errors["tracking_number"] = "must be 4-64 characters: letters, digits and -"
    courier = text("courier", required=False) or "easyparcel"
    courier = courier.lower()
    if courier not in couriers:
        errors["courier"] = f"must be one of: {', '.join(sorted(couriers))}"
    customer_id = text("customer_id", required=False)
    if customer_id is not None and not CUSTOMER_ID_PATTERN.match(customer_id):
        errors["customer_id"] = "must be 1-128 characters: letters, digits and . _ : @ -"
    notify_email = data.get("notify_email")
    if notify_email is not None and not isinstance(notify_email, bool):
        errors["notify_email"] = "must be true or false"
    locale = data.get("locale")
    if locale is not None and (not isinstance(locale, str) or locale not in locales):
        errors["locale"] = f"must be one of: {', '.join(sorted(locales))}"
    if errors:
        return None, errors
    assert order_id and email and number
    return ShipmentRegistration(order_id=order_id, customer_email=email, tracking_number=number,
                                courier=courier, customer_id=customer_id, notify_email=notify_email,
                                locale=locale), {}


NEEDS_CONTACT_KEYS = "needs TRACKING_CONTACT_KEYS (addresses are stored only encrypted)"


def notification_problems(registration: ShipmentRegistration, *, has_contact_keys: bool) -> dict[str, str]:
    """Per-field errors of a registration's email options on this server: asking for emails
    needs a contact key, since the address is only ever stored encrypted."""
    if registration.notify_email and not has_contact_keys:
        return {"notify_email": NEEDS_CONTACT_KEYS}
    return {}


@dataclass(frozen=True)
class ExistingOrder:
    customer_email_hash: str
    customer_id: str | None


def registration_conflict(registration: ShipmentRegistration, email_hash: str, order: ExistingOrder | None,
                          registered_courier: str | None) -> str | None:
    """Why a registration conflicts with what is stored (None when it does not): another email or
    customer on the order, or the tracking number already registered under another courier."""
    if order is not None:
        if order.customer_email_hash != email_hash:
            return f"order {registration.order_id} is registered with a different customer email"
        if registration.customer_id and order.customer_id and order.customer_id != registration.customer_id:
            return f"order {registration.order_id} belongs to another customer"
    if registered_courier is not None and registered_courier != registration.courier:
        return (f"tracking number {registration.tracking_number} is registered for this order with courier "
                f"{registered_courier}")
    return None
