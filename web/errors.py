"""The one JSON error shape of the HTTP API, `{"error": "<code>", "detail": "<what is wrong>"}`, the
exception handlers that turn every failure (ours, Starlette's 404/405, the database going away,
bugs) into it, and the counter of rejections by code."""
from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import peewee
from prometheus_client import Counter
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

logger = logging.getLogger(__name__)

REJECTIONS = Counter(
    "trackcache_http_rejections_total",
    "Requests answered with an error, by error code.",
    ["code"],
)

# Seconds a client should wait before retrying when a backing service is down.
UNAVAILABLE_RETRY_AFTER = 5

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_failed",
    429: "rate_limited",
    500: "internal_error",
    503: "service_unavailable",
}


class ApiError(Exception):
    """A request the API refuses: raised anywhere below an endpoint, answered in the error shape."""

    def __init__(self, status: int, code: str, detail: str, *, headers: Mapping[str, str] | None = None,
                 **extra: Any) -> None:
        super().__init__(f"{status} {code}: {detail}")
        self.status = status
        self.code = code
        self.detail = detail
        self.headers = dict(headers or {})
        self.extra = extra


def error_body(code: str, detail: str, **extra: Any) -> dict[str, Any]:
    """The error shape: code and detail first, then any extra fields (e.g. per-field errors)."""
    return {"error": code, "detail": detail, **extra}


def code_for_status(status: int) -> str:
    """The error code used when only an HTTP status is known."""
    return _HTTP_CODES.get(status, f"http_{status}")


def error_response(status: int, code: str, detail: str, *, headers: Mapping[str, str] | None = None,
                   **extra: Any) -> JSONResponse:
    """An error answer in the one shape; counts the rejection."""
    REJECTIONS.labels(code).inc()
    merged = {"Cache-Control": "no-store", **(headers or {})}
    return JSONResponse(error_body(code, detail, **extra), status_code=status, headers=merged)


def from_api_error(error: ApiError) -> JSONResponse:
    return error_response(error.status, error.code, error.detail, headers=error.headers, **error.extra)


# --- malformed requests --------------------------------------------------------------------------

def nul_character_problem(path: str, query_string: bytes) -> str | None:
    """Why a request's path or query must be refused (None when fine): a NUL character, which no
    identifier holds and PostgreSQL text cannot store."""
    from urllib.parse import unquote_to_bytes

    if "\x00" in path:
        return "the path contains a NUL character"
    if b"\x00" in unquote_to_bytes(query_string.replace(b"+", b" ")):
        return "the query string contains a NUL character"
    return None


class RefuseNulCharacters:
    """ASGI middleware: a NUL in the path or the query string is answered `400 malformed_request`
    before any route runs (issue 18: it used to reach PostgreSQL and come back as a 500)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            problem = nul_character_problem(scope.get("path", ""), scope.get("query_string", b""))
            if problem is not None:
                await error_response(400, "malformed_request", problem)(scope, receive, send)
                return
        await self.app(scope, receive, send)


# --- exception handlers -------------------------------------------------------------------------

async def handle_api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return from_api_error(exc)


async def handle_http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        detail = f"no route matches {request.method} {logged_path(request)}"
    elif exc.status_code == 405:
        allowed = (exc.headers or {}).get("Allow", "")
        detail = f"{request.method} is not allowed here; allowed: {allowed}" if allowed else \
            f"{request.method} is not allowed here"
    else:
        detail = str(exc.detail)
    if exc.status_code in (204, 304):
        return Response(status_code=exc.status_code, headers=exc.headers)
    return error_response(exc.status_code, code_for_status(exc.status_code), detail, headers=exc.headers)


def logged_path(request: Request) -> str:
    """The request path as it may appear in logs and error bodies (the webhook secret redacted)."""
    from web.webhooks import redact_webhook_secret

    return redact_webhook_secret(request.url.path)


def _route_of(request: Request) -> str:
    # The route's template, never the path: the webhook path carries the webhook secret.
    from web.metrics import route_template

    return route_template(request.scope)


async def handle_database_error(request: Request, exc: Exception) -> Response:
    logger.error("database unavailable during %s %s: %s", request.method, _route_of(request),
                 str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
    return error_response(503, "database_unavailable", "the database cannot be reached; try again shortly",
                          headers={"Retry-After": str(UNAVAILABLE_RETRY_AFTER)})


async def handle_coordination_error(request: Request, exc: Exception) -> Response:
    logger.error("Redis unavailable during %s %s: %s", request.method, _route_of(request), exc)
    return error_response(503, "broker_unavailable", "the broker cannot be reached; try again shortly",
                          headers={"Retry-After": str(UNAVAILABLE_RETRY_AFTER)})


async def handle_server_error(request: Request, exc: Exception) -> Response:
    # The traceback goes to the log (Starlette re-raises it to the server after this answer).
    return error_response(500, "internal_error", "the server failed to answer this request; it has been logged")


def exception_handlers() -> dict[Any, Any]:
    """The handlers `create_app` installs: every failure ends in the error shape."""
    import redis.exceptions
    from playhouse.pool import MaxConnectionsExceeded

    return {
        ApiError: handle_api_error,
        HTTPException: handle_http_exception,
        peewee.OperationalError: handle_database_error,
        peewee.InterfaceError: handle_database_error,
        MaxConnectionsExceeded: handle_database_error,
        redis.exceptions.ConnectionError: handle_coordination_error,
        redis.exceptions.TimeoutError: handle_coordination_error,
        Exception: handle_server_error,
    }


async def error_answer(handlers: Mapping[Any, Any], scope: Any, receive: Any, error: Exception) -> tuple[Response, bool]:
    """The app's answer to an error raised outside Starlette's layers (the fast paths), by the
    handlers `exception_handlers` gives, and whether it is a bug (only the catch-all handles it)."""
    if isinstance(error, ApiError):
        return from_api_error(error), False
    for kind in type(error).__mro__:
        handler = handlers.get(kind)
        if handler is not None:
            response: Response = await handler(Request(scope, receive), error)
            return response, kind is Exception
    return error_response(500, "internal_error", "the server failed to answer this request; it has been logged"), True
