"""The Starlette application: the `routes` list, the `middleware` list and the lifespan.

`create_app(config)` builds an app; its lifespan boots the process (database, runtime, broker and
actors) through `pipeline.boot`, or, with `boot=False`, uses what the caller already booted
(`trackcache dev`, tests). In the embedded mode (no REDIS_URL) the lifespan starts no worker:
`trackcache dev` runs one in process. `app` is the module-level app uvicorn serves
(`web.app:app`); importing this module does no I/O.
"""
from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp

import settings as settings_module
from web import (
    admin,
    admin_shipments,
    analytics_routes,
    customer,
    fast_reads,
    health,
    internal,
    notification_pages,
    notifications,
    openapi,
    pages,
    read_store,
    webhooks,
)
from web.caching import ETags
from web.errors import RefuseNulCharacters, exception_handlers
from web.idempotency import IdempotencyKeys
from web.metrics import RequestMetrics
from web.sessions import PageSessions

logger = logging.getLogger(__name__)


async def openapi_document(request: Request) -> Response:
    return JSONResponse(openapi.document())


routes: list[BaseRoute] = [
    *fast_reads.routes,
    *customer.routes,
    *webhooks.routes,
    *admin.routes,
    *admin_shipments.routes,
    *analytics_routes.routes,  # courier analytics (issue 16)
    *internal.routes,
    *health.routes,
    *notifications.routes,
    *notification_pages.routes,
    *pages.routes,
    Route("/openapi.json", openapi_document, methods=["GET"], name="openapi"),
]

middleware = [
    Middleware(RequestMetrics),
    Middleware(RefuseNulCharacters),
    Middleware(ETags),
    Middleware(PageSessions),
    Middleware(IdempotencyKeys),
]


@contextlib.asynccontextmanager
async def read_path() -> AsyncIterator[None]:
    """The read path's part of this event loop: its Redis pool and invalidation listener start
    before the first request and close at shutdown."""
    path = read_store.current()
    path.part()
    try:
        yield
    finally:
        await path.close_loop()


def create_app(config: settings_module.Settings | None = None, *, boot: bool = True) -> ASGIApp:
    """The web app for these settings (default: the process's, read when it starts serving).

    With `boot=True` the lifespan boots the process and shuts it down afterwards; with
    `boot=False` the caller has booted it (runtime installed, database connected).
    """

    webhooks.install_log_redaction()  # the webhook URL carries a secret; request logs must not

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if not boot:
            async with read_path():
                yield
            return
        from pipeline import boot as boot_module

        booted = await run_in_threadpool(boot_module.boot, config)
        if booted.config.is_embedded:
            logger.warning("embedded mode (no REDIS_URL): this server runs no worker, so refreshes and webhooks "
                           "wait in its in-process queue; use `trackcache dev` to run everything in one process")
        try:
            async with read_path():
                yield
        finally:
            await run_in_threadpool(boot_module.stop, booted)

    # Webhook POSTs are answered by WebhookFastPath, GET tracking reads and /healthz by ReadFastPath,
    # around the app: before Starlette's own layers (its server-error middleware wraps every send)
    # and the router.
    return webhooks.WebhookFastPath(fast_reads.ReadFastPath(Starlette(
        routes=routes, middleware=middleware, exception_handlers=exception_handlers(), lifespan=lifespan)))


app = create_app()
