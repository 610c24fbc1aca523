"""Forwarded client addresses (X-Forwarded-For) are believed only from the proxies listed in
TRACKING_TRUSTED_PROXIES: never by default, never `*`, for `trackcache serve` as for `dev`
(issue 18 point 7, issue 14 point 5). The uvicorn options the commands build are run through
uvicorn's own proxy-headers middleware, so the test sees the client address the app would."""
from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

import cli
import settings


def seen_client(uvicorn_options: dict[str, Any], peer: str, forwarded_for: str) -> str:
    """The client address the app sees for a request from `peer` carrying X-Forwarded-For."""
    import uvicorn

    seen: dict[str, Any] = {}

    async def app(scope, receive, send):
        seen["client"] = scope["client"][0]

    keep = {k: v for k, v in uvicorn_options.items() if k in ("proxy_headers", "forwarded_allow_ips")}
    config = uvicorn.Config(app, **keep)
    config.load()
    scope = {"type": "http", "client": (peer, 50000), "headers": [(b"x-forwarded-for", forwarded_for.encode())],
             "scheme": "http", "path": "/", "method": "GET"}
    # In a thread of its own: an earlier test of the session may leave an event loop running here.
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(lambda: asyncio.run(config.loaded_app(scope, None, None))).result()
    return seen["client"]


@pytest.fixture
def serve_options(monkeypatch):
    """Run `trackcache serve` in process up to starting the server (web.server.serve), and return
    the uvicorn options it was given."""
    from web import server

    captured: dict[str, Any] = {}
    monkeypatch.setattr(server, "serve", lambda **arguments: captured.update(arguments["options"]) or 0)
    monkeypatch.setattr(cli, "require_production", lambda *a, **k: None)
    monkeypatch.setattr(cli, "require_current_schema", lambda *a, **k: None)
    monkeypatch.setattr(cli, "configure_logging", lambda level: None)

    def run(environ: dict[str, str], *args: str) -> tuple[int, dict[str, Any]]:
        captured.clear()
        previous = settings.get()
        settings.use(settings.load(environ, dotenv_path=None))
        try:
            code = cli.main(["serve", *args])
        finally:
            settings.use(previous)
        return code, dict(captured)

    return run


def test_serve_with_proxy_headers_ignores_forwarded_for_from_localhost_unless_listed(serve_options):
    code, options = serve_options({"TRACKING_TRUSTED_PROXIES": "10.0.0.5"}, "--proxy-headers")
    assert code == 0
    assert seen_client(options, "127.0.0.1", "203.0.113.9") == "127.0.0.1"
    assert seen_client(options, "10.0.0.5", "203.0.113.9") == "203.0.113.9"


def test_serve_without_trusted_proxies_never_believes_forwarded_for(serve_options):
    code, options = serve_options({})
    assert code == 0
    assert seen_client(options, "127.0.0.1", "203.0.113.9") == "127.0.0.1"


def test_serve_proxy_headers_without_the_setting_refuses_to_start(serve_options, capsys):
    code, options = serve_options({}, "--proxy-headers")
    assert code == cli.EXIT_CONFIG and options == {}
    assert "TRACKING_TRUSTED_PROXIES" in capsys.readouterr().err


def test_trusted_proxies_accept_networks_and_refuse_a_wildcard():
    config = settings.load({"TRACKING_TRUSTED_PROXIES": "10.0.0.5, 172.16.0.0/12"}, dotenv_path=None)
    assert config.trusted_proxies == ("10.0.0.5/32", "172.16.0.0/12")
    assert settings.load({}, dotenv_path=None).trusted_proxies == ()
    for wildcard in ("*", "10.0.0.5,*", "0.0.0.0/0", "::/0"):
        with pytest.raises(settings.SettingsError, match="TRACKING_TRUSTED_PROXIES"):
            settings.load({"TRACKING_TRUSTED_PROXIES": wildcard}, dotenv_path=None)
