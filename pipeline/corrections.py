"""Correcting a registered shipment (`PATCH /api/admin/shipments/{order_id}/{tracking_number}`):
validating the fields a shop may change, deciding what a change of the notification options does
to the order's contact, the version a client read (for If-Match), and what an order looks like
once its personal data is erased. Pure: plain values in, plain values out."""
from __future__ import annotations

import hashlib
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from pipeline.registration import CUSTOMER_ID_PATTERN, EMAIL_PATTERN, NEEDS_CONTACT_KEYS

CORRECTABLE_FIELDS = ("customer_email", "customer_id", "courier", "notify_email", "locale")
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
    # The order's notification options: status emails on or off, and their language.
    notify_email: bool | None = None
    locale: str | None = None

    def field_names(self) -> list[str]:
        names = []
        if self.customer_email is not None:
            names.append("customer_email")
        if self.customer_id is not None or self.clears_customer_id:
            names.append("customer_id")
        if self.courier is not None:
            names.append("courier")
        if self.notify_email is not None:
            names.append("notify_email")
        if self.locale is not None:
            names.append("locale")
        return names


def validate_correction(data: Mapping[str, Any], couriers: Collection[str], locales: Collection[str] = ("en",),
                        ) -> tuple[ShipmentCorrection | None, dict[str, str]]:
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
    notify_email = data.get("notify_email")
    if "notify_email" in data and not isinstance(notify_email, bool):
        errors["notify_email"] = "must be true or false"
    locale = data.get("locale")
    if "locale" in data and (not isinstance(locale, str) or locale not in locales):
        errors["locale"] = f"must be one of: {', '.join(sorted(locales))}"
    if errors:
        return None, errors
    return ShipmentCorrection(
        customer_email=email.strip() if isinstance(email, str) else None,
        customer_id=customer_id.strip() if isinstance(customer_id, str) else None,
        clears_customer_id="customer_id" in data and customer_id is None,
        courier=courier.strip().lower() if isinstance(courier, str) else None,
        notify_email=notify_email if isinstance(notify_email, bool) else None,
        locale=locale if isinstance(locale, str) else None,
    ), {}


# --- notification options ------------------------------------------------------------------------

@dataclass(frozen=True)
class ContactState:
    """What is stored to email an order's customer (its `order_contacts` row), as the decision needs it."""

    notify_email: bool
    locale: str
    has_address: bool = True
    is_unsubscribed: bool = False
    is_bounced: bool = False

    @property
    def is_emailed(self) -> bool:
        """Whether status emails go to the customer: turned on, an address stored, neither
        unsubscribed nor bouncing."""
        return self.notify_email and self.has_address and not self.is_unsubscribed and not self.is_bounced


@dataclass(frozen=True)
class ContactPlan:
    """What a correction does to the order's contact: create it (with the PATCH's address), or set
    `notify_email` and `locale` on the stored one (None: leave as is). `changed` names the
    options that change."""

    creates: bool = False
    notify_email: bool | None = None
    locale: str | None = None
    changed: tuple[str, ...] = ()


@dataclass(frozen=True)
class ContactRefusal:
    """Why the notification options cannot be applied: a 422 with per-field errors, or a 409."""

    status: int
    detail: str
    fields: dict[str, str] = field(default_factory=dict)


def plan_contact(correction: ShipmentCorrection, current: ContactState | None, *, order_id: str,
                 has_contact_keys: bool, default_locale: str, replaces_address: bool) -> ContactPlan | ContactRefusal:
    """What the correction's `notify_email` and `locale` do to the order's contact. An order keeps
    only the hash of its customer's email unless emails were asked for, so turning emails on for
    it needs `customer_email` in the same PATCH; a customer who unsubscribed is never re-subscribed
    by the shop, and an address that bounced is not used again until a new one is given.
    `replaces_address`: the PATCH gives a customer_email other than the stored one."""
    notify, locale = correction.notify_email, correction.locale
    if notify is None and locale is None:
        return ContactPlan()
    if current is None or not current.has_address:
        if notify is False:  # no emails go to this order anyway
            return ContactPlan()
        if notify is None:
            return ContactRefusal(422, "the order gets no status emails, so it has no email language", {
                "locale": f"order {order_id} gets no status emails: send notify_email: true (with customer_email) "
                          "to turn them on in this language"})
        if not has_contact_keys:
            return ContactRefusal(422, "email notifications are not set up on this server",
                                  {"notify_email": NEEDS_CONTACT_KEYS})
        if correction.customer_email is None:
            return ContactRefusal(422, "no email address is stored for this order", {
                "notify_email": f"order {order_id} has no stored email address (an order registered without "
                                "notify_email keeps only a hash of it): send customer_email in the same PATCH"})
        return ContactPlan(creates=True, notify_email=True, locale=locale or default_locale,
                           changed=("notify_email",) + (("locale",) if locale else ()))
    if notify is True and current.is_unsubscribed:
        return ContactRefusal(409, f"the customer of order {order_id} unsubscribed from its status emails; "
                                   "only they can subscribe again")
    if notify is True and current.is_bounced and not replaces_address:
        return ContactRefusal(409, f"emails to the address of order {order_id} bounced; send a working "
                                   "customer_email with notify_email")
    changed = []
    if notify is not None and notify != current.notify_email:
        changed.append("notify_email")
    if locale is not None and locale != current.locale:
        changed.append("locale")
    return ContactPlan(notify_email=notify if "notify_email" in changed else None,
                       locale=locale if "locale" in changed else None, changed=tuple(changed))


def shipment_version(email_hash: str, customer_id: str | None, courier: str, is_active: bool,
                     contact: ContactState | None = None) -> str:
    """The ETag of a shipment's correctable state (with the order's notification options): what
    If-Match on a PATCH or DELETE compares."""
    parts = [email_hash, customer_id or "", courier, "1" if is_active else "0"]
    if contact is not None:
        parts += ["1" if contact.notify_email else "0", contact.locale]
    text = "\x1f".join(parts)
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
