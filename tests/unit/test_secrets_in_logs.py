"""Secrets stay out of logs (issue 18 point 4): an outage on the webhook route logs the route
template, never the path with the webhook secret; uvicorn's access log gets the same redaction;
a typo in one admin token names the entry without echoing any token."""
from __future__ import annotations

import logging

import peewee
import pytest
import redis.exceptions
from starlette.applications import Starlette
from starlette.routing import Route
from starlette.testclient import TestClient

import settings
from web.errors import exception_handlers

SECRET = "hook-secret-do-not-log-0123456789"


async def database_gone(request):
    raise peewee.OperationalError("could not connect to server: Connection refused")


async def redis_gone(request):
    raise redis.exceptions.ConnectionError("Error 111 connecting to localhost:6379")


def client() -> TestClient:
    app = Starlette(routes=[Route("/api/webhooks/easyparcel/{secret}", database_gone, methods=["POST"]),
                            Route("/api/webhooks/other/{secret}", redis_gone, methods=["POST"])],
                    exception_handlers=exception_handlers())
    return TestClient(app, raise_server_exceptions=False)


@pytest.mark.parametrize("path", [f"/api/webhooks/easyparcel/{SECRET}", f"/api/webhooks/other/{SECRET}"])
def test_an_outage_on_the_webhook_route_logs_the_route_template_not_the_secret(path, caplog):
    caplog.set_level(logging.INFO)
    response = client().post(path, content=b"{}")
    assert response.status_code == 503
    # (httpx, the test client, logs the URL it calls: that line is the test's, not the server's)
    server_lines = "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith(("httpx", "httpcore")))
    assert SECRET not in server_lines
    assert "/{secret}" in server_lines


def test_the_access_log_shows_the_webhook_route_without_its_secret():
    from web.webhooks import RedactWebhookSecret

    record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
                               ("127.0.0.1:5000", "POST", f"/api/webhooks/easyparcel/{SECRET}?x=1", "1.1", 200),
                               None)
    assert RedactWebhookSecret().filter(record)
    assert SECRET not in record.getMessage()
    assert "/api/webhooks/easyparcel/{secret}" in record.getMessage()


def test_the_app_installs_the_access_log_redaction():
    from web.app import create_app
    from web.webhooks import RedactWebhookSecret

    access = logging.getLogger("uvicorn.access")
    with TestClient(create_app(settings.get(), boot=False)):
        assert any(isinstance(f, RedactWebhookSecret) for f in access.filters)


def test_a_typo_in_one_admin_token_names_the_entry_and_echoes_no_token():
    good, other = "first-admin-token-0123456789", "third-admin-token-0123456789"
    with pytest.raises(settings.SettingsError) as raised:
        settings.load({"TRACKING_ADMIN_TOKENS": f"{good},tiny-tok,{other}"}, dotenv_path=None)
    message = str(raised.value)
    assert "TRACKING_ADMIN_TOKENS" in message and "entry 2" in message
    assert good not in message and other not in message and "tiny-tok" not in message
    with pytest.raises(settings.SettingsError) as viewer:
        settings.load({"TRACKING_VIEWER_TOKENS": f"sha256:{'z' * 64}"}, dotenv_path=None)
    assert "z" * 64 not in str(viewer.value) and "entry 1" in str(viewer.value)
