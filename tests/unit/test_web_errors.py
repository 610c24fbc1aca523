"""One error shape for every failure: our rejections, unknown routes and methods, bugs and a
database or broker that went away; never an HTML traceback. Also: building the app does no I/O."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import peewee
import redis.exceptions
from starlette.applications import Starlette
from starlette.routing import Route
from starlette.testclient import TestClient

from web.errors import REJECTIONS, ApiError, error_body, exception_handlers
from web.metrics import RequestMetrics

ROOT = Path(__file__).resolve().parents[2]


async def refuse(request):
    raise ApiError(409, "conflict", "already there", headers={"X-Why": "test"}, fields={"a": "b"})


async def crash(request):
    raise RuntimeError("a bug with a secret in its message")


async def database_gone(request):
    raise peewee.OperationalError("could not connect to server: Connection refused")


async def redis_gone(request):
    raise redis.exceptions.ConnectionError("Error 111 connecting to localhost:6379")


def client() -> TestClient:
    from starlette.middleware import Middleware

    app = Starlette(routes=[Route("/refuse", refuse), Route("/crash", crash), Route("/db", database_gone),
                            Route("/redis", redis_gone, methods=["GET"])],
                    middleware=[Middleware(RequestMetrics)], exception_handlers=exception_handlers())
    return TestClient(app, raise_server_exceptions=False)


def test_the_error_shape_is_code_then_detail_then_extras():
    assert error_body("not_found", "no order O-1") == {"error": "not_found", "detail": "no order O-1"}
    assert list(error_body("validation_failed", "bad", fields={"x": "y"})) == ["error", "detail", "fields"]


def test_an_api_error_answers_in_the_shape_with_its_status_headers_and_extras():
    before = REJECTIONS.labels("conflict")._value.get()
    response = client().get("/refuse")
    assert response.status_code == 409
    assert response.json() == {"error": "conflict", "detail": "already there", "fields": {"a": "b"}}
    assert response.headers["x-why"] == "test" and response.headers["cache-control"] == "no-store"
    assert REJECTIONS.labels("conflict")._value.get() == before + 1


def test_unknown_routes_and_methods_answer_json_404_and_405():
    api = client()
    missing = api.get("/nowhere")
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"
    wrong = api.post("/redis")
    assert wrong.status_code == 405 and wrong.json()["error"] == "method_not_allowed"
    assert "GET" in wrong.headers["allow"]


def test_a_bug_answers_json_500_without_the_traceback():
    response = client().get("/crash")
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/json"
    assert response.json()["error"] == "internal_error"
    assert "secret" not in response.text and "Traceback" not in response.text


def test_a_database_or_broker_outage_answers_503_with_retry_after():
    for path, code in (("/db", "database_unavailable"), ("/redis", "broker_unavailable")):
        response = client().get(path)
        assert response.status_code == 503 and response.json()["error"] == code
        assert int(response.headers["retry-after"]) > 0


def test_importing_the_app_reads_no_settings_and_touches_nothing():
    # An invalid setting and an unreachable database: importing must still succeed (no I/O).
    env = {"PATH": "/usr/bin:/bin", "TRACKING_JOB_BATCH_SIZE": "not-a-number",
           "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none", "REDIS_URL": "redis://127.0.0.1:1/0"}
    code = "import web.app, sys; assert web.app.app is not None; sys.exit(0)"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr


def test_paths_in_logs_and_error_bodies_have_the_webhook_secret_redacted():
    from starlette.requests import Request

    from web.errors import logged_path

    request = Request({"type": "http", "method": "POST", "path": "/api/webhooks/easyparcel/s3cr3t/x",
                       "headers": [], "query_string": b""})
    assert logged_path(request) == "/api/webhooks/easyparcel/{secret}/x"
