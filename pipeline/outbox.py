"""Notifications, database side: the outbox rows written in the persist transaction, claiming and
recording delivery attempts, the shop's webhook endpoints, and customers' contact details (the
address encrypted). Decisions (event types, payloads, dedupe keys, retry schedule) come from
`pipeline.webhook_events`."""
from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import peewee

import models
from models import NotificationAttempt, NotificationEndpoint, NotificationOutbox, OrderContact
from pipeline import webhook_events as events
from pipeline.contacts import ContactCipher

logger = logging.getLogger(__name__)

# How long an old secret keeps signing after a rotation.
SECRET_GRACE = timedelta(hours=24)
DISABLED_FOR_FAILING = "every delivery failed for"


def _config() -> Any:
    from pipeline import runtime

    return runtime.current().config


def cipher() -> ContactCipher:
    """The address cipher for the configured TRACKING_CONTACT_KEYS."""
    return ContactCipher(_config().contact_keys.reveal())


def is_email_enabled(config: Any | None = None) -> bool:
    config = config or _config()
    return bool(config.smtp_url) and bool(config.contact_keys)


# --- written in the persist transaction --------------------------------------------------------

def record_status_changes(changes: Sequence[Mapping[str, Any]], *, now: datetime) -> list[int]:
    """Outbox rows for a batch's status changes, inside the caller's transaction: one webhook per
    subscribed event type per enabled endpoint, one email per configured transition of an
    opted-in customer. One multi-row INSERT that skips rows whose dedupe key exists, so a status
    reached again by the same event notifies once. Returns the ids of the rows to deliver."""
    if not changes:
        return []
    config = _config()
    endpoints = list(NotificationEndpoint.select(NotificationEndpoint.id, NotificationEndpoint.events)
                     .where(NotificationEndpoint.is_enabled == True))
    contacts: dict[str, OrderContact] = {}
    email_changes = [c for c in changes if events.wants_email(c, config.email_statuses)]
    if email_changes and is_email_enabled(config):
        # TRACKING_EMAIL_ALL_SHIPMENTS decides at registration (the contact is stored with
        # notify_email on); a contact whose emails the shop turned off stays quiet either way.
        wanted = (OrderContact.order.in_(sorted({c["order_id"] for c in email_changes}))
                  & OrderContact.email_encrypted.is_null(False) & (OrderContact.notify_email == True)
                  & OrderContact.unsubscribed_at.is_null() & OrderContact.bounced_at.is_null())
        contacts = {row.order_id: row for row in OrderContact.select(OrderContact.order, OrderContact.locale)
                    .where(wanted)}
    rows: list[dict[str, Any]] = []
    for change in changes:
        for event_type in events.event_types_for(change):
            for endpoint in endpoints:
                if events.is_subscribed(endpoint.events or (), event_type):
                    rows.append(_row(events.WEBHOOK, event_type, change, now=now, endpoint_id=endpoint.id,
                                     payload=events.webhook_payload(event_type, change, now=now)))
        contact = contacts.get(change["order_id"])
        if contact is not None and events.wants_email(change, config.email_statuses):
            rows.append(_row(events.EMAIL, events.STATUS_CHANGED, change, now=now, endpoint_id=None,
                             payload=events.email_payload(change, contact.locale)))
    return _insert(rows)


def _row(channel: str, event_type: str, change: Mapping[str, Any], *, now: datetime, endpoint_id: int | None,
         payload: dict[str, Any]) -> dict[str, Any]:
    target = endpoint_id if endpoint_id is not None else f"order:{change['order_id']}"
    return {"channel": channel, "event_type": event_type, "endpoint_id": endpoint_id,
            "order_id": change["order_id"], "tracking_cache_id": change["shipment_id"],
            "message_id": events.new_message_id(), "dedupe_key": events.dedupe_key(channel, target, event_type, change),
            "payload": payload, "status": models.NOTIFY_PENDING, "attempts": 0, "next_attempt_at": now,
            "created_at": now}


_INSERT_COLUMNS = ("channel", "event_type", "endpoint_id", "order_id", "tracking_cache_id", "message_id",
                   "dedupe_key", "payload", "status", "attempts", "next_attempt_at", "created_at")


def _insert(rows: Sequence[dict[str, Any]]) -> list[int]:
    """Insert outbox rows, skipping existing dedupe keys; the ids of the rows inserted (on SQLite,
    of every pending row with those keys: delivering a pending row twice is harmless). Plain SQL:
    building a 700-row INSERT through peewee's query builder cost four times the persist itself
    (bench/notifications_persist.py)."""
    if not rows:
        return []
    stamp = NotificationOutbox.created_at.db_value
    params = [[row["channel"], row["event_type"], row["endpoint_id"], row["order_id"], row["tracking_cache_id"],
               row["message_id"], row["dedupe_key"], json.dumps(row["payload"], separators=(",", ":")),
               row["status"], row["attempts"], stamp(row["next_attempt_at"]), stamp(row["created_at"])]
              for row in rows]
    names = ", ".join(_INSERT_COLUMNS)
    if models.is_postgres():
        ids: list[int] = []
        one = "(" + ", ".join(["%s"] * len(_INSERT_COLUMNS)) + ")"
        for start in range(0, len(params), 1000):
            chunk = params[start:start + 1000]
            cursor = models.database.execute_sql(
                f"INSERT INTO notification_outbox ({names}) VALUES " + ", ".join([one] * len(chunk))
                + " ON CONFLICT DO NOTHING RETURNING id", [value for row in chunk for value in row])
            ids.extend(row[0] for row in cursor.fetchall())
        return ids
    cursor = models.database.cursor()
    cursor.executemany(f"INSERT OR IGNORE INTO notification_outbox ({names}) VALUES "
                       f"({', '.join(['?'] * len(_INSERT_COLUMNS))})", params)
    keys = [row["dedupe_key"] for row in rows]
    return [row.id for row in NotificationOutbox.select(NotificationOutbox.id).where(
        NotificationOutbox.dedupe_key.in_(keys) & (NotificationOutbox.status == models.NOTIFY_PENDING))]


# --- delivering ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Claim:
    """The outcome of trying to claim an outbox row: the row (ours to deliver), or why not."""

    row: NotificationOutbox | None = None
    retry_in: float | None = None  # seconds until it may be tried (claimed elsewhere, or not yet due)


def claim(outbox_id: int, *, now: datetime, lease: timedelta) -> Claim:
    """Take an outbox row for one delivery attempt, if it is pending, due and not held by another
    worker (a single UPDATE, so two workers never deliver the same attempt)."""
    taken = NotificationOutbox.update(claimed_until=now + lease).where(
        (NotificationOutbox.id == outbox_id) & (NotificationOutbox.status == models.NOTIFY_PENDING)
        & (NotificationOutbox.next_attempt_at <= now)
        & (NotificationOutbox.claimed_until.is_null() | (NotificationOutbox.claimed_until < now))).execute()
    row = NotificationOutbox.get_or_none(NotificationOutbox.id == outbox_id)
    if row is None or row.status != models.NOTIFY_PENDING:
        return Claim()
    if taken:
        return Claim(row=row)
    later = max(row.next_attempt_at, row.claimed_until or row.next_attempt_at)
    return Claim(retry_in=max(0.5, (later - now).total_seconds() + 0.5))


@dataclass(frozen=True)
class Attempt:
    """What one delivery attempt did."""

    is_success: bool
    status_code: int | None = None
    latency_ms: int | None = None
    excerpt: str | None = None
    error: str | None = None
    is_permanent: bool = False  # retrying cannot help (e.g. the mailbox does not exist)


@dataclass(frozen=True)
class AttemptOutcome:
    status: str
    retry_in: int | None = None
    endpoint_disabled: bool = False


def record_attempt(row: NotificationOutbox, attempt: Attempt, *, now: datetime, delays: Sequence[int],
                   disable_after: timedelta) -> AttemptOutcome:
    """Store an attempt and move the row on: delivered, failed for good (retries spent or a
    permanent failure: a bounced address stops the customer's emails), or pending until its next
    try. An endpoint failing for longer than `disable_after` is disabled."""
    attempts = (row.attempts or 0) + 1
    retry_in = None if attempt.is_success or attempt.is_permanent else events.retry_delay(attempts, delays)
    status = (models.NOTIFY_DELIVERED if attempt.is_success
              else models.NOTIFY_PENDING if retry_in is not None else models.NOTIFY_FAILED)
    disabled = False
    with models.database.atomic():
        NotificationAttempt.insert(outbox=row.id, attempted_at=now, is_success=attempt.is_success,
                                   status_code=attempt.status_code, latency_ms=attempt.latency_ms,
                                   response_excerpt=attempt.excerpt, error=_clip(attempt.error)).execute()
        NotificationOutbox.update(
            attempts=attempts, status=status, claimed_until=None, last_error=_clip(attempt.error),
            last_status_code=attempt.status_code,
            next_attempt_at=now + timedelta(seconds=retry_in) if retry_in is not None else row.next_attempt_at,
            delivered_at=now if attempt.is_success else None,
        ).where(NotificationOutbox.id == row.id).execute()
        if row.channel == events.WEBHOOK and row.endpoint_id is not None:
            disabled = _track_endpoint_health(row.endpoint_id, attempt.is_success, now=now,
                                              disable_after=disable_after)
            if disabled:  # nothing more goes to it until an admin enables it again
                NotificationOutbox.update(status=models.NOTIFY_CANCELLED, last_error="endpoint disabled").where(
                    (NotificationOutbox.endpoint_id == row.endpoint_id)
                    & (NotificationOutbox.status == models.NOTIFY_PENDING)).execute()
                status, retry_in = models.NOTIFY_CANCELLED, None
        if row.channel == events.EMAIL and attempt.is_permanent and row.order_id:
            OrderContact.update(bounced_at=now, updated_at=now).where(OrderContact.order == row.order_id).execute()
    return AttemptOutcome(status=status, retry_in=retry_in, endpoint_disabled=disabled)


def _track_endpoint_health(endpoint_id: int, is_success: bool, *, now: datetime, disable_after: timedelta) -> bool:
    """Remember since when an endpoint fails; disable it past `disable_after`. True if disabled now."""
    if is_success:
        NotificationEndpoint.update(failing_since=None).where(
            (NotificationEndpoint.id == endpoint_id) & NotificationEndpoint.failing_since.is_null(False)).execute()
        return False
    NotificationEndpoint.update(failing_since=now).where(
        (NotificationEndpoint.id == endpoint_id) & NotificationEndpoint.failing_since.is_null()).execute()
    reason = f"{DISABLED_FOR_FAILING} {disable_after.days or disable_after} days"
    return bool(NotificationEndpoint.update(is_enabled=False, disabled_reason=reason, updated_at=now).where(
        (NotificationEndpoint.id == endpoint_id) & (NotificationEndpoint.is_enabled == True)
        & (NotificationEndpoint.failing_since <= now - disable_after)).execute())


def count_endpoints_disabled_for_failing() -> int:
    """Endpoints the delivery machinery disabled because every delivery failed for days."""
    return NotificationEndpoint.select().where(
        (NotificationEndpoint.is_enabled == False)
        & NotificationEndpoint.disabled_reason.startswith(DISABLED_FOR_FAILING)).count()


def signing_keys(endpoint_id: int) -> events.SigningKeys | None:
    """An endpoint's signing secrets, or None when it is gone or disabled."""
    endpoint = NotificationEndpoint.get_or_none(NotificationEndpoint.id == endpoint_id)
    if endpoint is None or not endpoint.is_enabled:
        return None
    return events.SigningKeys(endpoint.secret, endpoint.previous_secret, endpoint.previous_secret_expires_at)


def endpoint_url(endpoint_id: int) -> str | None:
    endpoint = NotificationEndpoint.get_or_none(NotificationEndpoint.id == endpoint_id)
    return endpoint.url if endpoint is not None else None


def cancel(outbox_id: int, reason: str, *, now: datetime) -> None:
    NotificationOutbox.update(status=models.NOTIFY_CANCELLED, claimed_until=None, last_error=_clip(reason)).where(
        NotificationOutbox.id == outbox_id).execute()


def lost_deliveries(*, now: datetime, grace: timedelta, limit: int = 1000) -> list[int]:
    """Pending rows due for longer than `grace` and held by nobody: their message was lost (a
    worker killed after the commit, a broker that dropped it)."""
    return [row.id for row in NotificationOutbox.select(NotificationOutbox.id).where(
        (NotificationOutbox.status == models.NOTIFY_PENDING) & (NotificationOutbox.next_attempt_at < now - grace)
        & (NotificationOutbox.claimed_until.is_null() | (NotificationOutbox.claimed_until < now)))
        .order_by(NotificationOutbox.next_attempt_at).limit(limit)]


# --- endpoints (admin) -----------------------------------------------------------------------

def create_endpoint(url: str, event_types: Sequence[str], description: str, *, now: datetime) -> tuple[int, str]:
    """A new enabled endpoint; returns its id and secret (shown once)."""
    secret = events.new_secret()
    endpoint_id = NotificationEndpoint.insert(url=url, events=list(event_types), description=description,
                                              secret=secret, is_enabled=True, created_at=now,
                                              updated_at=now).execute()
    return int(endpoint_id), secret


def update_endpoint(endpoint_id: int, changes: Mapping[str, Any], *, now: datetime) -> bool:
    """Change an endpoint's url, events, description or enabled flag; False if it does not exist.
    Enabling again forgets the failure streak."""
    values: dict[str, Any] = {key: changes[key] for key in ("url", "events", "description") if key in changes}
    if "enabled" in changes:
        values["is_enabled"] = bool(changes["enabled"])
        values["disabled_reason"] = None if changes["enabled"] else "disabled by an admin"
        if changes["enabled"]:
            values["failing_since"] = None
    values["updated_at"] = now
    return bool(NotificationEndpoint.update(**values).where(NotificationEndpoint.id == endpoint_id).execute())


def delete_endpoint(endpoint_id: int, *, now: datetime) -> bool:
    """Delete an endpoint and cancel its pending deliveries (their history stays)."""
    with models.database.atomic():
        NotificationOutbox.update(status=models.NOTIFY_CANCELLED, last_error="endpoint deleted").where(
            (NotificationOutbox.endpoint_id == endpoint_id)
            & (NotificationOutbox.status == models.NOTIFY_PENDING)).execute()
        return bool(NotificationEndpoint.delete().where(NotificationEndpoint.id == endpoint_id).execute())


def rotate_secret(endpoint_id: int, *, now: datetime) -> str | None:
    """A new secret; the old one keeps signing (a second signature) for 24 hours."""
    endpoint = NotificationEndpoint.get_or_none(NotificationEndpoint.id == endpoint_id)
    if endpoint is None:
        return None
    secret = events.new_secret()
    NotificationEndpoint.update(secret=secret, previous_secret=endpoint.secret,
                                previous_secret_expires_at=now + SECRET_GRACE, updated_at=now).where(
        NotificationEndpoint.id == endpoint_id).execute()
    return secret


def endpoint_row(endpoint_id: int) -> NotificationEndpoint | None:
    return NotificationEndpoint.get_or_none(NotificationEndpoint.id == endpoint_id)


def queue_test_event(endpoint_id: int, *, now: datetime) -> int | None:
    """A `webhook.test` delivery to an endpoint; its outbox id, or None when the endpoint is unknown."""
    if endpoint_row(endpoint_id) is None:
        return None
    message_id = events.new_message_id()
    return int(NotificationOutbox.insert(
        channel=events.WEBHOOK, event_type=events.TEST, endpoint_id=endpoint_id, message_id=message_id,
        dedupe_key=f"test:{message_id}", payload=events.test_payload(endpoint_id, now=now),
        status=models.NOTIFY_PENDING, next_attempt_at=now, created_at=now).execute())


def replay(outbox_id: int, *, now: datetime) -> int | None:
    """A new delivery of a webhook's payload under a new webhook-id, marked as a replay of the
    original; None when there is no such webhook delivery."""
    original = NotificationOutbox.get_or_none((NotificationOutbox.id == outbox_id)
                                              & (NotificationOutbox.channel == events.WEBHOOK))
    if original is None:
        return None
    message_id = events.new_message_id()
    return int(NotificationOutbox.insert(
        channel=events.WEBHOOK, event_type=original.event_type, endpoint_id=original.endpoint_id,
        order_id=original.order_id, tracking_cache_id=original.tracking_cache_id, message_id=message_id,
        dedupe_key=f"replay:{message_id}", payload=events.replay_payload(original.payload, original.message_id),
        status=models.NOTIFY_PENDING, next_attempt_at=now, replay_of=original.message_id, created_at=now).execute())


def endpoint_summaries(*, now: datetime, window: timedelta = timedelta(days=1)) -> list[dict[str, Any]]:
    """Every endpoint with its delivery figures of the last `window`: delivered, pending, failed,
    and the last attempt."""
    since = now - window
    counts: dict[tuple[int, str], int] = {}
    rows: Any = (NotificationOutbox
                                       .select(NotificationOutbox.endpoint_id, NotificationOutbox.status,
                                               peewee.fn.COUNT(NotificationOutbox.id))
                                       .where((NotificationOutbox.channel == events.WEBHOOK)
                                              & (NotificationOutbox.created_at >= since))
                                       .group_by(NotificationOutbox.endpoint_id, NotificationOutbox.status).tuples())
    for endpoint_id, status, count in rows:
        counts[(int(endpoint_id or 0), str(status))] = int(count)
    summaries = []
    for endpoint in NotificationEndpoint.select().order_by(NotificationEndpoint.id):
        summaries.append({**endpoint_view(endpoint), "last_day": {
            state: counts.get((endpoint.id, state), 0)
            for state in (models.NOTIFY_DELIVERED, models.NOTIFY_PENDING, models.NOTIFY_FAILED)}})
    return summaries


def endpoint_view(endpoint: NotificationEndpoint) -> dict[str, Any]:
    """An endpoint as the admin API shows it (never its secret)."""
    return {"id": endpoint.id, "url": endpoint.url, "description": endpoint.description, "events": endpoint.events,
            "enabled": bool(endpoint.is_enabled), "disabled_reason": endpoint.disabled_reason,
            "failing_since": endpoint.failing_since, "created_at": endpoint.created_at,
            "updated_at": endpoint.updated_at,
            "previous_secret_expires_at": endpoint.previous_secret_expires_at if endpoint.previous_secret else None}


def deliveries(endpoint_id: int, *, limit: int = 50, failed_only: bool = False) -> list[dict[str, Any]]:
    """An endpoint's newest deliveries, each with every attempt."""
    query = NotificationOutbox.select().where(NotificationOutbox.endpoint_id == endpoint_id)
    if failed_only:
        query = query.where(NotificationOutbox.status == models.NOTIFY_FAILED)
    rows = list(query.order_by(NotificationOutbox.id.desc()).limit(limit))
    attempts: dict[int, list[dict[str, Any]]] = {}
    if rows:
        for attempt in (NotificationAttempt.select()
                        .where(NotificationAttempt.outbox.in_([row.id for row in rows]))
                        .order_by(NotificationAttempt.id)):
            attempts.setdefault(attempt.outbox_id, []).append({
                "attempted_at": attempt.attempted_at, "success": bool(attempt.is_success),
                "status_code": attempt.status_code, "latency_ms": attempt.latency_ms,
                "response_excerpt": attempt.response_excerpt, "error": attempt.error})
    return [delivery_view(row, attempts.get(row.id, [])) for row in rows]


def delivery_view(row: NotificationOutbox, attempts: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    return {"id": row.id, "webhook_id": row.message_id, "event_type": row.event_type, "status": row.status,
            "order_id": row.order_id, "attempts": row.attempts, "next_attempt_at":
            row.next_attempt_at if row.status == models.NOTIFY_PENDING else None,
            "last_status_code": row.last_status_code, "last_error": row.last_error, "replay_of": row.replay_of,
            "created_at": row.created_at, "delivered_at": row.delivered_at, "payload": row.payload,
            "attempt_log": list(attempts)}


# --- customer contacts -----------------------------------------------------------------------

def contact_rows(contacts: Mapping[str, tuple[str, str, bool]], *, now: datetime) -> list[dict[str, Any]]:
    """order id -> (address, locale, notify_email) as encrypted `order_contacts` rows."""
    box = cipher()
    return [{"order": order_id, "email_encrypted": box.encrypt(address), "locale": locale,
             "notify_email": notify, "created_at": now, "updated_at": now}
            for order_id, (address, locale, notify) in contacts.items()]


def store_contacts(contacts: Mapping[str, tuple[str, str, bool]], *, now: datetime) -> None:
    """Store (or refresh) the encrypted contact of orders, inside the registration transaction.
    An unsubscribe or bounce already recorded stays."""
    rows = contact_rows(contacts, now=now)
    for start in range(0, len(rows), 500):
        OrderContact.insert_many(rows[start:start + 500]).on_conflict(
            conflict_target=[OrderContact.order],
            preserve=[OrderContact.email_encrypted, OrderContact.locale, OrderContact.notify_email,
                      OrderContact.updated_at]).execute()


def update_contact_address(order_id: str, address: str, *, now: datetime) -> int:
    """Re-encrypt an order's stored address after its email was corrected (a bounce recorded
    against the old address no longer applies); returns the rows changed (0: no contact stored)."""
    if not OrderContact.select().where(OrderContact.order == order_id).exists():
        return 0  # no address stored for this order (no emails asked for, or no keys configured)
    return (OrderContact.update(email_encrypted=cipher().encrypt(address), bounced_at=None, updated_at=now)
            .where(OrderContact.order == order_id).execute())


def set_contact_options(order_id: str, *, notify_email: bool | None, locale: str | None, now: datetime) -> None:
    """Change an order's notification options (None: leave as is), inside the caller's
    transaction. Turning emails off cancels the order's unsent emails; a new language applies to
    the unsent ones too (their payload carries it)."""
    values: dict[str, Any] = {"updated_at": now}
    if notify_email is not None:
        values["notify_email"] = notify_email
    if locale is not None:
        values["locale"] = locale
    OrderContact.update(**values).where(OrderContact.order == order_id).execute()
    if notify_email is False:
        _cancel_emails(order_id, "the shop turned the order's emails off")
    elif locale is not None:
        for row in NotificationOutbox.select(NotificationOutbox.id, NotificationOutbox.payload).where(
                _unsent_emails(order_id)):
            NotificationOutbox.update(payload={**row.payload, "locale": locale}).where(
                NotificationOutbox.id == row.id).execute()


def contact_of(order_id: str) -> OrderContact | None:
    return OrderContact.get_or_none(OrderContact.order == order_id)


def customer_address(order_id: str) -> str | None:
    """The decrypted address of an order's customer (the notifier alone calls this), or None
    when there is none, or its emails were turned off, unsubscribed or bounced.

    Raises: ContactKeyError when no configured key opens the stored address."""
    contact = contact_of(order_id)
    if (contact is None or not contact.email_encrypted or not contact.notify_email or contact.unsubscribed_at
            or contact.bounced_at):
        return None
    return cipher().decrypt(contact.email_encrypted)


def unsubscribe(order_id: str, *, now: datetime) -> bool:
    """Stop emails for an order (its pending emails are cancelled); False if it has no contact."""
    with models.database.atomic():
        changed = OrderContact.update(unsubscribed_at=now, updated_at=now).where(
            (OrderContact.order == order_id) & OrderContact.unsubscribed_at.is_null()).execute()
        _cancel_emails(order_id, "the customer unsubscribed")
    return bool(changed) or contact_of(order_id) is not None


def erase_customer_contact(order_id: str) -> int:
    """Erase what we hold to reach an order's customer: the encrypted address row, and its
    emails not yet sent. For order erasure (call it in the erasing transaction). Returns rows erased."""
    with models.database.atomic():
        _cancel_emails(order_id, "the order was erased")
        return OrderContact.delete().where(OrderContact.order == order_id).execute()


def _unsent_emails(order_id: str) -> Any:
    return ((NotificationOutbox.order_id == order_id) & (NotificationOutbox.channel == events.EMAIL)
            & (NotificationOutbox.status == models.NOTIFY_PENDING))


def _cancel_emails(order_id: str, reason: str) -> None:
    NotificationOutbox.update(status=models.NOTIFY_CANCELLED, last_error=reason).where(
        _unsent_emails(order_id)).execute()


def rotate_contact_keys(*, batch: int = 500) -> int:
    """Re-encrypt every stored address under the newest key; returns how many were rewritten.

    Raises: ContactKeyError when an address opens with no configured key."""
    box = cipher()
    done = 0
    last = ""
    while True:
        rows = list(OrderContact.select(OrderContact.order, OrderContact.email_encrypted)
                    .where((OrderContact.order > last) & OrderContact.email_encrypted.is_null(False))
                    .order_by(OrderContact.order).limit(batch))
        if not rows:
            return done
        with models.database.atomic():
            for row in rows:
                OrderContact.update(email_encrypted=box.rotate(str(row.email_encrypted))).where(
                    OrderContact.order == row.order_id).execute()
        done += len(rows)
        last = rows[-1].order_id


def _clip(text: str | None, limit: int = 2000) -> str | None:
    if text is None:
        return None
    return text if len(text) <= limit else text[: limit - 1] + "…"
