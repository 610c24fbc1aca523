"""Webhook receivers: EasyParcel's (`POST /api/webhooks/easyparcel/{secret}`: it signs nothing, so
the URL carries the secret) and a signed form for any registered courier and the simulator
(`POST /api/webhooks/{courier}` with X-Trackcache-Timestamp and X-Trackcache-Signature). Each
verifies, stores the raw body in the inbox before answering, enqueues it, and answers fast;
duplicates (same event id) are acknowledged without being processed twice."""
from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

import peewee
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

import models
from models import WebhookInbox
from pipeline import runtime
from web.auth import is_same_secret, webhook_signature_problem
from web.database import call
from web.errors import ApiError

logger = logging.getLogger(__name__)

EASYPARCEL = "easyparcel"
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
    if not isinstance(payload, dict):
        return InboxEntry(text, None, None, "the body must be a JSON object")
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


def receive_webhook(courier: str, raw: bytes, *, id_fields: Sequence[str]) -> Received:
    """Store a webhook in the inbox (before anyone answers the courier) and enqueue it; a
    duplicate event id is acknowledged and not stored or processed again."""
    from pipeline import service

    now = runtime.current().now()
    entry = inbox_entry(raw, id_fields=id_fields)
    if entry.rejection is not None:
        row = WebhookInbox.create(courier=courier, topic=None, external_event_id=None, raw_body=entry.raw_text,
                                  received_at=now, processed_at=now, status=models.INBOX_REJECTED,
                                  error=entry.rejection)
        return Received(REJECTED, row.id, entry.rejection)
    try:
        with models.database.atomic():
            row = WebhookInbox.create(courier=courier, topic=entry.topic, external_event_id=entry.external_event_id,
                                      raw_body=entry.raw_text, received_at=now, status=models.INBOX_PENDING)
    except peewee.IntegrityError:
        logger.info("webhook %s %s is a duplicate; not processed again", courier, entry.external_event_id)
        return Received(DUPLICATE)
    try:
        service.enqueue_inbox(courier, [row.id])
    except Exception:
        # Stored is accepted: the maintenance sweep re-enqueues inbox rows the broker never got.
        logger.exception("webhook inbox %s stored but not enqueued; maintenance will pick it up", row.id)
    return Received(ACCEPTED, row.id)


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The request body, refused with 413 as soon as it exceeds `max_bytes` (declared or read)."""
    declared = request.headers.get("content-length", "")
    too_large = ApiError(413, "payload_too_large", f"the body exceeds {max_bytes} bytes")
    if declared.isdigit() and int(declared) > max_bytes:
        raise too_large
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


def _answer(received: Received) -> Response:
    if received.outcome == REJECTED:
        raise ApiError(400, "malformed_body", received.reason or "the body cannot be read")
    if received.outcome == DUPLICATE:
        return JSONResponse({"status": DUPLICATE})
    return JSONResponse({"status": ACCEPTED, "inbox_id": received.inbox_id})


async def easyparcel_webhook(request: Request) -> Response:
    config = runtime.current().config
    if not is_same_secret(request.path_params["secret"], config.webhook_secret.reveal()):
        raise ApiError(401, "invalid_webhook_secret", "the webhook URL's secret is not valid")
    raw = await read_body(request, config.webhook_max_bytes)
    return _answer(await call(receive_webhook, EASYPARCEL, raw, id_fields=("uuid",)))


async def signed_webhook(request: Request) -> Response:
    from pipeline.couriers import available_couriers

    courier = request.path_params["courier"]
    config = runtime.current().config
    if courier not in available_couriers(config):
        raise ApiError(404, "unknown_courier", f"no courier is registered as {courier!r}")
    raw = await read_body(request, config.webhook_max_bytes)
    problem = webhook_signature_problem(config.webhook_secret.reveal(), request.headers.get("x-trackcache-timestamp"),
                                        request.headers.get("x-trackcache-signature"), raw, now=time.time())
    if problem is not None:
        raise ApiError(401, "invalid_signature", problem)
    return _answer(await call(receive_webhook, courier, raw, id_fields=("uuid", "event_id")))


routes = [
    Route("/api/webhooks/easyparcel/{secret}", easyparcel_webhook, methods=["POST"], name="easyparcel_webhook"),
    Route("/api/webhooks/{courier}", signed_webhook, methods=["POST"], name="signed_webhook"),
]
