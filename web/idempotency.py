"""Idempotency keys on every admin POST: a request sent with an `Idempotency-Key` header is
answered once; a retry with the same key and the same body (method, path, query and bytes) gets
the first answer again (marked `Idempotent-Replayed: true`), the same key with another body is
refused with 422, and a retry while the first is still running gets 409. Keys belong to the
admin token that used them and are kept TRACKING_IDEMPOTENCY_HOURS (24 h by default).

Only answers of requests that ran and succeeded (1xx-3xx) are kept. A refusal (any 4xx: the
input, the state or the credentials were wrong, and nothing changed) or a server error is not
kept, so its retry runs for real, as Stripe's keys behave; a refused request stores nothing. An ASGI middleware, so every admin POST route gets it without code of
its own; the key's row is claimed in its own short transaction before the route runs."""
from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import models
from models import IdempotencyKey
from web.auth import ADMIN, bearer_token, role_of, token_fingerprint
from web.database import call
from web.errors import error_response

logger = logging.getLogger(__name__)

HEADER = "idempotency-key"
MAX_KEY_LENGTH = 255
# Request bodies larger than this are passed on untouched (the route answers 413 anyway).
MAX_BODY_BYTES = 1 << 20
# A claim whose request has run this long without an answer is taken to be lost (a crashed server).
IN_PROGRESS_TIMEOUT = timedelta(minutes=5)
NEW, REPLAY, MISMATCH, IN_PROGRESS = "new", "replay", "mismatch", "in_progress"


@dataclass(frozen=True)
class Claim:
    outcome: str  # new | replay | mismatch | in_progress
    status_code: int | None = None
    body: bytes = b""
    content_type: str | None = None


def key_problem(key: str) -> str | None:
    """Why an Idempotency-Key value cannot be used (None when it can): 1-255 visible ASCII characters."""
    if not 0 < len(key) <= MAX_KEY_LENGTH or not all(33 <= ord(ch) < 127 for ch in key):
        return f"the Idempotency-Key header must be 1-{MAX_KEY_LENGTH} visible ASCII characters (a UUID is ideal)"
    return None


def request_hash(method: str, path: str, query: bytes, body: bytes) -> str:
    """What makes two requests "the same" for a key: method, path, query string and body bytes."""
    digest = hashlib.sha256()
    for part in (method.encode("ascii"), path.encode("utf-8"), query, body):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


def is_kept(status: int) -> bool:
    """Whether an answer is kept for retries (it means the request ran and changed what it says)."""
    return status < 400


# --- the store ---------------------------------------------------------------------------------

def _key_of(actor: str, key: str):  # type: ignore[no-untyped-def]
    return (IdempotencyKey.actor == actor) & (IdempotencyKey.idempotency_key == key)


def claim_key(actor: str, key: str, fingerprint: str, *, now: datetime, ttl: timedelta) -> Claim:
    """Claim a key for a request, or say what was stored under it (sync)."""
    with models.write_transaction():
        IdempotencyKey.delete().where(_key_of(actor, key) & (
            (IdempotencyKey.created_at < now - ttl)
            | (IdempotencyKey.status_code.is_null() & (IdempotencyKey.created_at < now - IN_PROGRESS_TIMEOUT)))
        ).execute()
        inserted = (IdempotencyKey.insert(actor=actor, idempotency_key=key, request_hash=fingerprint, created_at=now)
                    .on_conflict_ignore().as_rowcount().execute())
        if inserted:
            return Claim(NEW)
        row = IdempotencyKey.get_or_none(_key_of(actor, key))
    if row is None:  # pragma: no cover - deleted between the insert and the read by an expiry elsewhere
        return Claim(IN_PROGRESS)
    if row.request_hash != fingerprint:
        return Claim(MISMATCH)
    if row.status_code is None:
        return Claim(IN_PROGRESS)
    return Claim(REPLAY, status_code=row.status_code, body=(row.response_body or "").encode("utf-8"),
                 content_type=row.content_type)


def keep_answer(actor: str, key: str, status: int, body: bytes, content_type: str | None) -> None:
    """Store the first answer under its key (sync)."""
    IdempotencyKey.update(status_code=status, response_body=body.decode("utf-8", errors="replace"),
                          content_type=content_type).where(_key_of(actor, key)).execute()


def release_key(actor: str, key: str) -> None:
    """Forget a claim whose request did not run, so a retry runs it (sync)."""
    IdempotencyKey.delete().where(_key_of(actor, key) & IdempotencyKey.status_code.is_null()).execute()


# --- the middleware ------------------------------------------------------------------------------

async def _read_body(receive: Receive) -> tuple[bytes, bool]:
    """The whole request body, and whether it fits the limit (when it does not, what was read)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), False
        body = message.get("body", b"")
        chunks.append(body)
        size += len(body)
        if size > MAX_BODY_BYTES:
            return b"".join(chunks), False
        if not message.get("more_body", False):
            return b"".join(chunks), True


def _replaying(body: bytes, receive: Receive, *, is_complete: bool) -> Receive:
    """A receive channel that gives the already-read body first, then the rest of the original."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": not is_complete}
        return await receive()

    return replay


class IdempotencyKeys:
    """ASGI middleware applying idempotency keys to admin POSTs made with an admin token."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or not scope["path"].startswith("/api/admin/"):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        key = headers.get(HEADER)
        actor = self._admin_actor(headers)
        if key is None or actor is None:  # no key, or not an admin: the route answers as usual (401/403)
            await self.app(scope, receive, send)
            return
        problem = key_problem(key)
        if problem:
            await error_response(400, "invalid_idempotency_key", problem)(scope, receive, send)
            return
        body, fits = await _read_body(receive)
        if not fits:
            await self.app(scope, _replaying(body, receive, is_complete=False), send)
            return
        from pipeline import runtime

        rt = runtime.current()
        fingerprint = request_hash("POST", scope["path"], scope.get("query_string", b""), body)
        claim = await call(claim_key, actor, key, fingerprint, now=rt.now(),
                           ttl=timedelta(hours=rt.config.idempotency_hours))
        if claim.outcome == MISMATCH:
            response = error_response(422, "idempotency_key_reused",
                                      "this Idempotency-Key was used with another request; use a new key")
        elif claim.outcome == IN_PROGRESS:
            response = error_response(409, "idempotency_key_in_use",
                                      "a request with this Idempotency-Key is still running; retry shortly",
                                      headers={"Retry-After": "1"})
        elif claim.outcome == REPLAY:
            response = Response(claim.body, status_code=claim.status_code or 200, media_type=claim.content_type,
                                headers={"Cache-Control": "no-store", "Idempotent-Replayed": "true"})
        else:
            await self._run_and_keep(scope, _replaying(body, receive, is_complete=True), send, actor, key)
            return
        await response(scope, receive, send)

    @staticmethod
    def _admin_actor(headers: Headers) -> str | None:
        from pipeline import runtime

        token = bearer_token(headers.get("authorization"))
        if token is None:
            return None
        config = runtime.current().config
        if role_of(token, config.admin_tokens, config.viewer_tokens) != ADMIN:
            return None
        return token_fingerprint(token)

    async def _run_and_keep(self, scope: Scope, receive: Receive, send: Send, actor: str, key: str) -> None:
        """Run the route; its answer is stored before its last byte is sent, so a client that
        retries after receiving it is always replayed, never told the key is still in use."""
        status = 500
        content_type: str | None = None
        chunks: list[bytes] = []
        is_settled = False

        async def settle() -> None:
            nonlocal is_settled
            is_settled = True
            try:
                if is_kept(status):
                    await call(keep_answer, actor, key, status, b"".join(chunks), content_type)
                else:
                    await call(release_key, actor, key)
            except Exception:  # a lost key only means that a retry runs again
                logger.exception("idempotency key %s of %s not recorded", key, actor)

        async def capture(message: Message) -> None:
            nonlocal status, content_type
            if message["type"] == "http.response.start":
                status = message["status"]
                content_type = Headers(raw=message["headers"]).get("content-type")
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    await settle()
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            if not is_settled:  # the route failed before answering
                status = 500
                await settle()
