"""A shop's webhook receiver for the tests: a small HTTP server on a free port that verifies every
request with the `standardwebhooks` package (as a shop would), answers with scripted status codes
(200 once the script is spent), can hold requests (a slow or hung shop), and records what came."""
from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError


@dataclass(frozen=True)
class Received:
    webhook_id: str
    headers: dict[str, str]
    body: bytes
    payload: Any
    is_verified: bool
    answered: int


class WebhookReceiver:
    """`with WebhookReceiver() as receiver:` at `receiver.url`; set `receiver.secret` to verify."""

    def __init__(self) -> None:
        self.secret: str | None = None
        self.script: list[int] = []  # status codes to answer, in order, before 200s
        self.hold_seconds = 0.0  # hold each request this long before answering
        self.hold_first_seconds = 0.0  # hold only the first request this long (a hung shop, once)
        self.arrived = threading.Event()  # set when a request arrives
        self.requests: list[Received] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {key.lower(): value for key, value in self.headers.items()}
                with receiver.lock:
                    code = receiver.script.pop(0) if receiver.script else 200
                    secret, hold = receiver.secret, receiver.hold_seconds
                    if receiver.hold_first_seconds:
                        hold, receiver.hold_first_seconds = receiver.hold_first_seconds, 0.0
                receiver.arrived.set()
                verified, payload = False, None
                if secret:
                    try:
                        payload = Webhook(secret).verify(body, headers)
                        verified = True
                    except WebhookVerificationError:
                        payload = None
                if hold:
                    threading.Event().wait(hold)
                with receiver.lock:
                    receiver.requests.append(Received(headers.get("webhook-id", ""), headers, body,
                                                      payload if verified else json.loads(body or b"null"),
                                                      verified, code))
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(json.dumps({"received": code == 200}).encode())

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks"

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def received(self) -> list[Received]:
        with self.lock:
            return list(self.requests)

    def delivered(self) -> dict[str, Received]:
        """Verified requests answered 2xx, by webhook-id (what a deduplicating shop keeps)."""
        return {r.webhook_id: r for r in self.received() if r.is_verified and 200 <= r.answered < 300}
