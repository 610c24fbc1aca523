"""Health and metrics routes: `/healthz` (the process is alive; no I/O), `/readyz` (503 unless the
database answers and is migrated; 200 `degraded` when only Redis is down) and `/metrics`
(Prometheus text)."""
from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from pipeline import runtime
from web import metrics, queries
from web.auth import client_address, is_address_allowed
from web.database import call
from web.errors import ApiError, error_response

NO_STORE = {"Cache-Control": "no-store"}


def readiness() -> dict[str, str]:
    """Each dependency's state: "ok", or what is wrong."""
    import migrations
    import models

    checks: dict[str, str] = {}
    if queries.is_database_reachable():
        try:
            missing = migrations.pending(models.database.obj)
            checks["database"] = "ok" if not missing else f"pending migrations: {', '.join(missing)}"
        except Exception as error:
            checks["database"] = f"schema unreadable: {type(error).__name__}"
    else:
        checks["database"] = "unreachable"
    rt = runtime.current()
    if rt.config.uses_rabbitmq:
        checks["broker"] = "ok" if is_tcp_reachable(rt.config.broker_url) else "unreachable"
        checks["redis"] = "ok" if rt.coordination.ping() else "unreachable"
    elif rt.config.redis_url:
        checks["broker"] = "ok" if rt.coordination.ping() else "unreachable"
    else:
        checks["broker"] = "ok"  # the embedded in-process broker
    return checks


def is_tcp_reachable(url: str, timeout: float = 1.0) -> bool:
    """Whether the host:port of a broker URL accepts a TCP connection (RabbitMQ's readiness)."""
    import socket
    from urllib.parse import urlparse

    parsed = urlparse(url)
    default_port = 5671 if parsed.scheme == "amqps" else 5672
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or default_port), timeout=timeout):
            return True
    except OSError:
        return False


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"}, headers=NO_STORE)


# Without these a node cannot answer: reads, webhooks and the admin API all need the database.
# Redis is not among them: reads fall back to the database, webhooks are stored and re-enqueued
# by maintenance, so a Redis outage degrades every node alike and must not take them all out of
# a load balancer.
REQUIRED_CHECKS = ("database",)


async def readyz(request: Request) -> Response:
    checks = await call(readiness)
    failing = {name: state for name, state in checks.items() if state != "ok"}
    if any(name in REQUIRED_CHECKS for name in failing):
        detail = "; ".join(f"{name}: {state}" for name, state in failing.items())
        return error_response(503, "not_ready", detail, checks=checks)
    return JSONResponse({"status": "degraded" if failing else "ready", "checks": checks}, headers=NO_STORE)


def _render() -> Any:
    return metrics.render()


async def metrics_text(request: Request) -> Response:
    from prometheus_client import CONTENT_TYPE_LATEST

    if not is_address_allowed(client_address(request), runtime.current().config.internal_networks):
        raise ApiError(403, "forbidden_network", "/metrics does not answer this client address")
    return Response(await call(_render), media_type=CONTENT_TYPE_LATEST, headers=NO_STORE)


routes = [
    Route("/healthz", healthz, methods=["GET"], name="healthz"),
    Route("/readyz", readyz, methods=["GET"], name="readyz"),
    Route("/metrics", metrics_text, methods=["GET"], name="metrics"),
]
