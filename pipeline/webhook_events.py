"""Notifications, pure core: which event types a status change raises, the webhook payload, the
dedupe keys that make a status reached twice notify once, the retry schedule, the endpoint URL
rules and the Standard Webhooks signature. No I/O: the outbox and the delivery actor call these."""
from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlparse

from standardwebhooks import Webhook

from pipeline import status as statuses

STATUS_CHANGED = "shipment.status_changed"
OUT_FOR_DELIVERY = "shipment.out_for_delivery"
DELIVERED = "shipment.delivered"
EXCEPTION = "shipment.exception"
ATTENTION_REQUIRED = "shipment.attention_required"
TEST = "webhook.test"
EVENT_TYPES = (STATUS_CHANGED, OUT_FOR_DELIVERY, DELIVERED, EXCEPTION, ATTENTION_REQUIRED)
# Statuses that raise shipment.exception: the exception polling group.
EXCEPTION_STATUSES = frozenset(name for name, s in statuses.STATUSES.items() if s.group is statuses.Group.EXCEPTION)

WEBHOOK, EMAIL = "webhook", "email"
SECRET_PREFIX = "whsec_"
MAX_URL_LENGTH = 2048
# First bytes of an endpoint's answer kept with each attempt.
EXCERPT_BYTES = 512


def event_types_for(change: Mapping[str, Any]) -> list[str]:
    """The event types one recorded change raises: every status change is
    `shipment.status_changed`, plus the specific type of its new status; a shipment newly
    flagged for attention is `shipment.attention_required`."""
    found = []
    if change.get("previous") != change.get("status"):
        found.append(STATUS_CHANGED)
        if change["status"] == statuses.OUT_FOR_DELIVERY:
            found.append(OUT_FOR_DELIVERY)
        elif change["status"] == statuses.DELIVERED:
            found.append(DELIVERED)
        elif change["status"] in EXCEPTION_STATUSES:
            found.append(EXCEPTION)
    if change.get("is_attention"):
        found.append(ATTENTION_REQUIRED)
    return found


def is_subscribed(events: Sequence[str], event_type: str) -> bool:
    """Whether an endpoint subscribed to `events` wants `event_type` ("*" means every type)."""
    return "*" in events or event_type in events


def wants_email(change: Mapping[str, Any], email_statuses: Sequence[str]) -> bool:
    """Whether a change is a transition the customer is emailed about."""
    return change.get("previous") != change.get("status") and change.get("status") in email_statuses


def cause_of(change: Mapping[str, Any]) -> str:
    """What identifies the cause of a change: the fingerprint of the event that set the status
    (so the same scan arriving again, by poll or webhook, gives the same cause)."""
    event = change.get("event") or {}
    return str(event.get("fingerprint") or change.get("occurred_at") or "")


def dedupe_key(channel: str, target: int | str, event_type: str, change: Mapping[str, Any]) -> str:
    """The outbox's unique key for one notification of one change to one target (an endpoint
    id, or the shipment's customer): a status reached again by the same event adds nothing."""
    parts = [channel, str(target), event_type, str(change["shipment_id"]), str(change["status"])]
    parts.append(str(change.get("attention_reason") or "") if event_type == ATTENTION_REQUIRED else cause_of(change))
    return f"{channel}:" + hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()


def new_message_id() -> str:
    """A webhook-id (Standard Webhooks: unique per message, the same on every retry)."""
    return "msg_" + secrets.token_hex(16)


def new_secret() -> str:
    """A fresh endpoint signing secret, `whsec_` + base64 of 32 random bytes."""
    import base64

    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def data_of(change: Mapping[str, Any]) -> dict[str, Any]:
    """The `data` object of a shipment event: the order, the parcel, the statuses, the event that
    caused the change, the estimated delivery when known and when it happened."""
    event = change.get("event")
    return {
        "order_id": change["order_id"],
        "tracking_number": change["tracking_number"],
        "courier": change["courier"],
        "previous_status": change["previous"],
        "status": change["status"],
        "status_label": statuses.label_of(change["status"]),
        "event": None if not event else {key: event.get(key) for key in ("time", "status", "description", "location")},
        "estimated_delivery": change.get("estimated_delivery"),
        "delivered_at": change.get("delivered_at"),
        "requires_attention": bool(change.get("requires_attention")),
        "attention_reason": change.get("attention_reason"),
        "occurred_at": change["occurred_at"],
    }


def webhook_payload(event_type: str, change: Mapping[str, Any], *, now: datetime) -> dict[str, Any]:
    """The JSON body of one webhook (Standard Webhooks' type / timestamp / data shape)."""
    return {"type": event_type, "timestamp": iso(now), "data": data_of(change)}


def test_payload(endpoint_id: int, *, now: datetime) -> dict[str, Any]:
    return {"type": TEST, "timestamp": iso(now),
            "data": {"endpoint_id": endpoint_id, "message": "A test event from trackcache."}}


def replay_payload(payload: Mapping[str, Any], original_message_id: str) -> dict[str, Any]:
    """A replayed webhook's body: the original one, saying it is a replay of which message."""
    return {**payload, "replay_of": original_message_id}


def email_payload(change: Mapping[str, Any], locale: str) -> dict[str, Any]:
    """What the email of one change is rendered from at delivery (never the address itself)."""
    return {**data_of(change), "locale": locale}


def retry_delay(attempts: int, delays: Sequence[int]) -> int | None:
    """Seconds to wait after the `attempts`-th failed attempt, or None when retries are spent."""
    if attempts < 1 or attempts > len(delays):
        return None
    return int(delays[attempts - 1])


def is_success(status_code: int | None) -> bool:
    return status_code is not None and 200 <= status_code < 300


def url_problem(url: Any, *, allow_http: bool) -> str | None:
    """What is wrong with an endpoint URL (None when it is fine): https only unless http is allowed,
    a host, no credentials, no fragment, at most 2048 characters."""
    if not isinstance(url, str) or not url.strip():
        return "is required"
    if len(url) > MAX_URL_LENGTH:
        return f"must be at most {MAX_URL_LENGTH} characters"
    try:
        parsed = urlparse(url.strip())
        parsed.port  # noqa: B018 (raises ValueError on a bad port)
    except ValueError:
        return "must be a URL"
    allowed = ("https", "http") if allow_http else ("https",)
    if parsed.scheme not in allowed:
        return "must be an https:// URL" + ("" if allow_http else " (TRACKING_NOTIFY_ALLOW_HTTP allows http://)")
    if not parsed.hostname:
        return "must name a host"
    if parsed.username or parsed.password:
        return "must not carry credentials"
    if parsed.fragment:
        return "must not have a fragment"
    return None


def events_problem(events: Any) -> str | None:
    """What is wrong with an endpoint's event list (None when fine)."""
    if not isinstance(events, list) or not events:
        return "must be a non-empty list of event types"
    unknown = [e for e in events if not isinstance(e, str) or (e != "*" and e not in EVENT_TYPES)]
    if unknown:
        return "unknown event type(s); known: " + ", ".join((*EVENT_TYPES, "*"))
    return None


@dataclass(frozen=True)
class SigningKeys:
    """An endpoint's current secret and, for a while after a rotation, its previous one."""

    current: str
    previous: str | None = None
    previous_expires_at: datetime | None = None

    def active(self, now: datetime) -> list[str]:
        keys = [self.current]
        if self.previous and self.previous_expires_at is not None and now < self.previous_expires_at:
            keys.append(self.previous)
        return keys


def signed_headers(keys: SigningKeys, message_id: str, body: str, *, now: datetime) -> dict[str, str]:
    """Standard Webhooks headers for a body: webhook-id, webhook-timestamp and one v1 signature
    per active secret (space-separated), so a receiver with either secret verifies it."""
    stamp = datetime.fromtimestamp(int(now.timestamp()), tz=UTC)
    signatures = [Webhook(secret).sign(message_id, stamp, body) for secret in keys.active(now)]
    return {"webhook-id": message_id, "webhook-timestamp": str(int(stamp.timestamp())),
            "webhook-signature": " ".join(signatures), "Content-Type": "application/json",
            "User-Agent": "trackcache-webhooks/1"}


def iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
