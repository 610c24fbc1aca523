"""Webhook receivers: EasyParcel's (`POST /api/webhooks/easyparcel/{secret}`: it signs nothing, so
the URL carries the secret) and a signed form for any registered courier and the simulator
(`POST /api/webhooks/{courier}` with X-Trackcache-Timestamp and X-Trackcache-Signature). Each
verifies and answers once the raw body is committed to the inbox: requests arriving within a few
milliseconds share one transaction (group commit), every one of them is answered after that
commit, 503 to all of them if it fails. Duplicates (same event id, in one group or across groups)
are acknowledged and stored once. After its commits a web process nudges the pipeline's drain."""
from __future__ import annotations

import logging
import re
import time
from collections.abc import Sequence

import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from pipeline import inbox, runtime
from pipeline.coordination import OutageLog
from pipeline.inbox import ACCEPTED, DUPLICATE, REJECTED, InboxEntry, Received, inbox_entry  # noqa: F401  (tests import them here)
from web.auth import is_same_secret, webhook_signature_problem
from web.database import release_connection
from web.caching import weak_etag
from web.errors import UNAVAILABLE_RETRY_AFTER, ApiError, error_answer, exception_handlers
from web.group_commit import GroupCommit, for_this_loop
from web.metrics import record_request

logger = logging.getLogger(__name__)

EASYPARCEL = "easyparcel"


def commit_group(items: list[tuple[str, InboxEntry]]) -> Sequence[Received]:
    """Store one group of webhooks in one transaction (on the committer's thread, which keeps its
    database connection between groups and drops it after a failure)."""
    try:
        return inbox.store_webhooks(items, now=runtime.current().now())
    except Exception:
        release_connection()
        raise


ENQUEUE_OUTAGE = OutageLog(logger, "the broker (webhook drain nudge)",
                           "webhooks are still stored and answered 200; the pipeline drains them once it is back")


def nudge_drain() -> None:
    """Tell the pipeline that inbox rows are waiting (one drain message). While the broker is
    down this logs one line for the outage and one when it is back, not one per group."""
    from pipeline import actors

    try:
        actors.enqueue_drain()
    except Exception as error:
        ENQUEUE_OUTAGE.failed(error)
    else:
        ENQUEUE_OUTAGE.recovered()


def _committer() -> GroupCommit:
    config = runtime.current().config
    return for_this_loop("webhook-inbox", lambda: GroupCommit(
        commit_group, window=config.webhook_group_window_ms / 1000, max_size=config.webhook_group_max,
        after_commit=nudge_drain, after_interval=config.inbox_nudge_ms / 1000, name="webhook-inbox"))


async def receive_webhook(courier: str, raw: bytes, *, id_fields: Sequence[str]) -> Received:
    """Store a webhook in the inbox with its group (before anyone answers the courier); a
    duplicate event id is acknowledged and not stored or processed again.

    Raises:
        ApiError: 503 when the group's commit failed (nothing of the group is stored)."""
    entry = inbox_entry(raw, id_fields=id_fields)
    try:
        return await _committer().submit((courier, entry))
    except Exception as error:
        logger.warning("webhook of %s not stored (its group commit failed): %s", courier,
                       str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__)
        raise ApiError(503, "database_unavailable", "the webhook could not be stored; send it again shortly",
                       headers={"Retry-After": str(UNAVAILABLE_RETRY_AFTER)}) from error


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The request body, refused with 413 as soon as it exceeds `max_bytes` (declared or read).
    Read from the ASGI messages directly (Starlette's `stream()` adds an async generator per
    request); a client that disconnects first raises `ClientDisconnect`, as `stream()` would."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise _too_large(max_bytes)
    chunks = []
    size = 0
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > max_bytes:
            raise _too_large(max_bytes)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _too_large(max_bytes: int) -> ApiError:
    return ApiError(413, "payload_too_large", f"the body exceeds {max_bytes} bytes")


_DUPLICATE_BODY = orjson.dumps({"status": DUPLICATE})


def _answer(received: Received) -> Response:
    """The 200 answer (JSON, with its weak ETag) for a stored or duplicate webhook."""
    if received.outcome == REJECTED:
        raise ApiError(400, "malformed_body", received.reason or "the body cannot be read")
    if received.outcome == DUPLICATE:
        body = _DUPLICATE_BODY
    else:
        body = orjson.dumps({"status": ACCEPTED, "inbox_id": received.inbox_id})
    return Response(body, media_type="application/json", headers={"ETag": weak_etag(body)})


async def easyparcel_webhook(request: Request) -> Response:
    config = runtime.current().config
    if not is_same_secret(request.path_params["secret"], config.webhook_secret.reveal()):
        raise ApiError(401, "invalid_webhook_secret", "the webhook URL's secret is not valid")
    raw = await read_body(request, config.webhook_max_bytes)
    return _answer(await receive_webhook(EASYPARCEL, raw, id_fields=("uuid",)))


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
    return _answer(await receive_webhook(courier, raw, id_fields=("uuid", "event_id")))


_SECRET_PATH = re.compile(r"(/api/webhooks/easyparcel/)[^/?#\s\"]*")


def redact_webhook_secret(text: str) -> str:
    """The text with the secret segment of any EasyParcel webhook URL replaced by `{secret}` (pure)."""
    return _SECRET_PATH.sub(r"\1{secret}", text)


class RedactWebhookSecret(logging.Filter):
    """Keeps the webhook URL's secret out of log lines (uvicorn's access log writes request paths)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and record.args:
            record.args = tuple(redact_webhook_secret(arg) if isinstance(arg, str) else arg for arg in record.args)
        if isinstance(record.msg, str) and "/api/webhooks/easyparcel/" in record.msg:
            record.msg = redact_webhook_secret(record.msg)
        return True


def install_log_redaction() -> None:
    """Put the filter on uvicorn's access and error loggers and on every handler of the root and
    uvicorn loggers (a logger's filter does not see records its children pass up), once."""
    targets: list[logging.Filterer] = []
    for name in ("", "uvicorn", "uvicorn.access", "uvicorn.error"):
        target = logging.getLogger(name)
        targets.extend(target.handlers)
        if name.startswith("uvicorn."):
            targets.append(target)
    for target in targets:
        if not any(isinstance(f, RedactWebhookSecret) for f in target.filters):
            target.addFilter(RedactWebhookSecret())


routes = [
    Route("/api/webhooks/easyparcel/{secret}", easyparcel_webhook, methods=["POST"], name="easyparcel_webhook"),
    Route("/api/webhooks/{courier}", signed_webhook, methods=["POST"], name="signed_webhook"),
]


class WebhookFastPath:
    """ASGI wrapper around the whole app (outside Starlette and the read fast path): webhook POSTs,
    the one request a server takes thousands of times a second, are answered here, past Starlette's
    server-error middleware, the other middleware and the router (py-spy: those layers held about a
    quarter of the web process's GIL time per webhook). What they give these routes is done here
    too: the request metric by route template, the ETag of a 200 (set by `_answer`), the app's
    exception handlers and error shape, and for a bug a 500 answered and then raised to the server
    to be logged. Every other request passes through untouched."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._handlers = exception_handlers()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or not scope["path"].startswith("/api/webhooks/"):
            await self.app(scope, receive, send)
            return
        for route in routes:
            match, child = route.matches(scope)
            if match is Match.FULL:
                break
        else:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        scope = {**scope, **child, "route": route}
        status = 500
        try:
            try:
                response = await route.endpoint(Request(scope, receive))
            except Exception as error:
                response, is_bug = await error_answer(self._handlers, scope, receive, error)
                status = response.status_code
                await response(scope, receive, send)
                if is_bug:  # as Starlette does: the answer is sent, the traceback goes to the server's log
                    raise
                return
            status = response.status_code
            await send({"type": "http.response.start", "status": status, "headers": response.raw_headers})
            await send({"type": "http.response.body", "body": response.body})
        finally:
            record_request("POST", route.path, status, time.perf_counter() - started)
