"""The webhook inbox: what a raw body becomes (pure), storing a group of webhooks in one
transaction (the receiver's group commit), claiming pending rows in batches for a drain, and
replaying rows an operator wants processed again."""
from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import models
from models import WebhookInbox

logger = logging.getLogger(__name__)

MAX_EVENT_ID_LENGTH = 128
ACCEPTED, DUPLICATE, REJECTED = "accepted", "duplicate", "rejected"


@dataclass(frozen=True)
class InboxEntry:
    """What goes into the inbox for a raw body: its text, topic and dedup id, or why it is refused."""

    raw_text: str
    topic: str | None
    external_event_id: str | None
    rejection: str | None = None


@dataclass(frozen=True)
class Received:
    outcome: str  # accepted | duplicate | rejected
    inbox_id: int | None = None
    reason: str | None = None


def inbox_entry(raw: bytes, *, id_fields: Sequence[str] = ("uuid",)) -> InboxEntry:
    """The inbox row for a webhook body (pure). The dedup id is the first of `id_fields` the body
    carries, else "sha256:" + the hex digest of the raw body (e.g. EasyParcel's
    shipment.status.update has no uuid); a body that is not a JSON object is refused."""
    # PostgreSQL text cannot hold NUL, and undecodable bytes are kept as replacement characters.
    text = raw.decode("utf-8", errors="replace").replace("\x00", "\ufffd")
    try:
        payload = json.loads(raw)
    except ValueError as error:
        return InboxEntry(text, None, None, f"the body is not valid JSON: {error}")
    except RecursionError:
        return InboxEntry(text, None, None, "the body is not valid JSON: it is nested too deeply")
    if not isinstance(payload, dict):
        return InboxEntry(text, None, None, "the body must be a JSON object")
    for name in ("topic", *id_fields):
        # PostgreSQL text cannot hold NUL: such a body would fail at every insert and retry.
        if isinstance(payload.get(name), str) and "\x00" in payload[name]:
            return InboxEntry(text, None, None, f"the body's {name} contains a NUL character")
    topic = payload.get("topic")
    event_id = None
    for name in id_fields:
        value = payload.get(name)
        if isinstance(value, bool) or not isinstance(value, (str, int)) or not str(value).strip():
            continue
        event_id = str(value).strip()
        break
    if event_id is None:
        event_id = "sha256:" + hashlib.sha256(raw).hexdigest()
    elif len(event_id) > MAX_EVENT_ID_LENGTH:
        event_id = "sha256:" + hashlib.sha256(event_id.encode("utf-8")).hexdigest()
    return InboxEntry(text, topic[:64] if isinstance(topic, str) else None, event_id)


def store_webhooks(entries: Sequence[tuple[str, InboxEntry]], *, now: datetime) -> list[Received]:
    """Store a group of webhooks (courier, entry) in one transaction and say, in the order given,
    what became of each: accepted (with its inbox id), duplicate (its event id is stored already,
    by an earlier group or earlier in this one) or rejected (kept as rejected with the reason).

    One multi-row `INSERT ... ON CONFLICT DO NOTHING RETURNING` for the new events (and, in the
    same statement, one for rejected bodies), committed durably (synchronous_commit on for this
    transaction, whatever the server's default) in one round trip on PostgreSQL
    (`models.store_inbox_group`). Raises whatever the database raises: then nothing of the group
    is stored."""
    first_of: dict[tuple[str, str], int] = {}
    new_rows: list[dict[str, Any]] = []
    rejected_rows: list[dict[str, Any]] = []
    for index, (courier, entry) in enumerate(entries):
        if entry.rejection is not None:
            rejected_rows.append({"courier": courier, "topic": None, "external_event_id": None,
                                  "raw_body": entry.raw_text, "received_at": now, "processed_at": now,
                                  "status": models.INBOX_REJECTED, "error": entry.rejection})
            continue
        key = (courier, entry.external_event_id or "")
        if key in first_of:
            continue
        first_of[key] = index
        new_rows.append({"courier": courier, "topic": entry.topic, "external_event_id": entry.external_event_id,
                         "raw_body": entry.raw_text, "received_at": now, "processed_at": None,
                         "status": models.INBOX_PENDING, "error": None})
    # Durable (the courier is told 200 only for a row that survives a crash), one round trip.
    stored, rejected_ids = models.store_inbox_group(new_rows, rejected_rows)
    results: list[Received] = []
    rejected_iter = iter(rejected_ids)
    for index, (courier, entry) in enumerate(entries):
        if entry.rejection is not None:
            results.append(Received(REJECTED, next(rejected_iter, None), entry.rejection))
            continue
        key = (courier, entry.external_event_id or "")
        inbox_id = stored.get(key)
        if inbox_id is not None and first_of[key] == index:
            results.append(Received(ACCEPTED, inbox_id))
        else:
            results.append(Received(DUPLICATE))
    return results


def claim_batch(now: datetime, *, limit: int, lease: timedelta, max_claims: int) -> tuple[list[WebhookInbox],
                                                                                            list[WebhookInbox]]:
    """Claim up to `limit` pending inbox rows for `lease`; returns (rows to process, rows given up).

    A row is given up (marked failed, with the reason, and logged) only when it has been claimed
    `max_claims` times before and every claim ended without a result: its worker died each time.
    Rows waiting in a backlog are never claimed, so waiting never counts against them."""
    rows = models.claim_inbox_rows(now, limit=limit, lease=lease)
    exhausted = [row for row in rows if row.attempts > max_claims]
    if exhausted:
        reason = (f"claimed {max_claims} times and never finished (the worker stopped each time); "
                  "`trackcache inbox replay` tries it again")
        mark(exhausted, models.INBOX_FAILED, now, error=reason)
        for row in exhausted:
            logger.error("inbox %s (%s) failed: %s", row.id, row.courier, reason)
    return [row for row in rows if row.attempts <= max_claims], exhausted


def mark(rows: Sequence[WebhookInbox], status: str, now: datetime, error: str | None = None) -> None:
    """Set the final status of inbox rows (and drop their claim)."""
    if rows:
        WebhookInbox.update(status=status, processed_at=now, error=error, claimed_until=None).where(
            WebhookInbox.id.in_([row.id for row in rows])).execute()


def release(rows: Sequence[WebhookInbox]) -> None:
    """Give claimed rows back at once, their claim not counted: the batch ended with an error
    (e.g. the database went away), not with a dead worker, and the message's retry takes them."""
    if rows:
        WebhookInbox.update(claimed_until=None, attempts=WebhookInbox.attempts - 1).where(
            (WebhookInbox.id.in_([row.id for row in rows])) & (WebhookInbox.status == models.INBOX_PENDING)).execute()


def replay(*, ids: Sequence[int] = (), statuses: Sequence[str] = (models.INBOX_FAILED,),
           since: datetime | None = None, courier: str | None = None) -> int:
    """Make inbox rows pending again (claims and errors cleared); returns how many. Without ids,
    every row of the given statuses (received since `since`, of `courier`) is replayed."""
    query = WebhookInbox.update(status=models.INBOX_PENDING, processed_at=None, error=None, attempts=0,
                                claimed_until=None)
    condition = WebhookInbox.status.in_(list(statuses))
    if ids:
        condition &= WebhookInbox.id.in_(list(ids))
    if since is not None:
        condition &= WebhookInbox.received_at >= since
    if courier is not None:
        condition &= WebhookInbox.courier == courier
    return int(query.where(condition).execute())


def unclaimed_pending(now: datetime, *, older_than: timedelta) -> int:
    """Pending rows received before `now - older_than` that no drain holds (for the sweep)."""
    return (WebhookInbox.select()
            .where((WebhookInbox.status == models.INBOX_PENDING) & (WebhookInbox.received_at < now - older_than)
                   & (WebhookInbox.claimed_until.is_null() | (WebhookInbox.claimed_until < now)))
            .count())
