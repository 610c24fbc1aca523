"""Internal routes for schedulers and operators' scripts (`X-Internal-Key`, and only from
TRACKING_INTERNAL_NETWORKS when that is set): run a polling sweep now, read queue and ledger
figures, run the cleanup."""
from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from web.auth import require_internal
from web.database import call

NO_STORE = {"Cache-Control": "no-store"}


def poll_sweep() -> dict[str, Any]:
    from pipeline import service

    return {"enqueued": service.run_poll_sweep()}


def queue_figures() -> dict[str, Any]:
    from pipeline import service

    return {"queues": service.queue_depths(), "ledger": service.ledger_counts()}


def cleanup() -> dict[str, Any]:
    from pipeline import service

    return service.run_cleanup()


async def process_jobs(request: Request) -> Response:
    require_internal(request)
    return JSONResponse(await call(poll_sweep), headers=NO_STORE)


async def queue_stats(request: Request) -> Response:
    require_internal(request)
    return JSONResponse(await call(queue_figures), headers=NO_STORE)


async def run_cleanup(request: Request) -> Response:
    require_internal(request)
    return JSONResponse(await call(cleanup), headers=NO_STORE)


routes = [
    Route("/api/internal/tracking/process-jobs", process_jobs, methods=["POST"], name="process_jobs"),
    Route("/api/internal/tracking/queue-stats", queue_stats, methods=["GET"], name="queue_stats"),
    Route("/api/internal/tracking/cleanup", run_cleanup, methods=["POST"], name="cleanup"),
]
