"""Shared pieces of the web integration tests: the app on Starlette's TestClient over the pipeline
stack (a real worker, the fake courier), the test tokens, and helpers that register and poll
shipments. Test modules import the fixtures they use from here."""
from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Iterator

import peewee
import pytest
from starlette.testclient import TestClient

import models
from models import TrackingCache
from pipeline import read_cache, runtime, service
from pipeline.canonical import TrackingEvent, TrackingUpdate
from pipeline.couriers.fake import webhook_body
from web.app import create_app
from web.auth import mint_customer_token, sign_webhook
from web.stats import STATS

# The values tests/conftest.py pins in the environment.
ADMIN_TOKEN = "test-admin-token-0123456789"
VIEWER_TOKEN = "test-viewer-token-0123456789"
INTERNAL_KEY = "test-internal-key-0123456789"
WEBHOOK_SECRET = "test-webhook-secret-0123456789"
CUSTOMER_SECRET = "test-customer-secret-0123456789"
GUEST_ADDRESS = ("203.0.113.10", 50000)

T0 = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(days=1)


def scan(hours: float, text: str, status: str | None = "in_transit",
         location: str | None = "Kuala Lumpur Hub, Kuala Lumpur, MY", code: str | None = None) -> TrackingEvent:
    return TrackingEvent(time=T0 + timedelta(hours=hours), raw_text=text, status=status, location=location,
                         raw_code=code)


JOURNEY = [
    scan(0, "Shipment information received", "info_received", None, "7"),
    scan(3, "Parcel has been collected at Penang", "in_transit", "BAYAN BARU, PENANG,, PIN, MY", "3"),
    scan(9, "Arrived at Kuala Lumpur hub", "in_transit", "Kuala Lumpur Hub, Kuala Lumpur, MY", "4"),
    scan(14, "Out for delivery (driver 012-3456789)", "out_for_delivery", "Kuala Lumpur Hub, Kuala Lumpur, MY", "4"),
]


@dataclass
class Api:
    client: TestClient
    stack: Any

    # --- who is asking ---------------------------------------------------------------------

    def admin(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.client.request(method, path, headers={"Authorization": f"Bearer {ADMIN_TOKEN}",
                                                          **kwargs.pop("headers", {})}, **kwargs)

    def viewer(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.client.request(method, path, headers={"Authorization": f"Bearer {VIEWER_TOKEN}",
                                                          **kwargs.pop("headers", {})}, **kwargs)

    def internal(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.client.request(method, path, headers={"X-Internal-Key": INTERNAL_KEY,
                                                          **kwargs.pop("headers", {})}, **kwargs)

    def guest(self, order_id: str, email: str, *, headers: dict[str, str] | None = None, **params: str) -> Any:
        return self.client.get("/api/customer/track-order", params={"order_id": order_id, "email": email, **params},
                               headers=headers or {})

    def customer(self, order_id: str, customer_id: str, *, premium: bool = False,
                 headers: dict[str, str] | None = None, **params: str) -> Any:
        token = mint_customer_token(CUSTOMER_SECRET, customer_id, premium=premium)
        return self.client.get("/api/customer/track-order", params={"order_id": order_id, **params},
                               headers={"Authorization": f"Bearer {token}", **(headers or {})})

    def signed_webhook(self, courier: str, body: bytes, *, timestamp: int | None = None,
                       secret: str = WEBHOOK_SECRET) -> Any:
        stamp = str(timestamp if timestamp is not None else int(time.time()))
        return self.client.post(f"/api/webhooks/{courier}", content=body, headers={
            "X-Trackcache-Timestamp": stamp, "X-Trackcache-Signature": sign_webhook(secret, stamp, body)})

    # --- data ------------------------------------------------------------------------------

    def register(self, order_id: str, number: str, *, email: str = "buyer@example.com",
                 customer_id: str | None = None, courier: str = "fake") -> int:
        body = {"order_id": order_id, "customer_email": email, "tracking_number": number, "courier": courier}
        if customer_id:
            body["customer_id"] = customer_id
        response = self.admin("POST", "/api/admin/shipments", json=body)
        assert response.status_code in (200, 201), response.text
        return int(response.json()["shipment_id"])

    def polled(self, order_id: str, number: str, events: list[TrackingEvent] | None = None, **kwargs: Any) -> int:
        """A registered shipment whose courier knows `events`, polled once through the pipeline."""
        shipment_id = self.register(order_id, number, **kwargs)
        self.stack.courier.script_journey(number, events if events is not None else JOURNEY)
        service.request_refresh([shipment_id])
        self.stack.wait_for(lambda: shipment(shipment_id).api_response_hash, what=f"first poll of {number}")
        self.stack.settle()
        return shipment_id

    def webhook_update(self, number: str, events: list[TrackingEvent], event_id: str) -> Any:
        body = webhook_body([TrackingUpdate(courier="fake", tracking_number=number, events=tuple(events))],
                            event_id=event_id)
        return self.signed_webhook("fake", body)


def shipment(shipment_id: int) -> TrackingCache:
    return TrackingCache.get_by_id(shipment_id)


def make_stale(shipment_id: int, *, hours: float) -> None:
    """Pretend the shipment's data was last confirmed `hours` ago (and drop its cached views)."""
    row = shipment(shipment_id)
    TrackingCache.update(last_api_update=datetime.now(timezone.utc) - timedelta(hours=hours)).where(
        TrackingCache.id == shipment_id).execute()
    read_cache.invalidate(runtime.current().coordination, [row.order_id])


@contextlib.contextmanager
def database_down() -> Iterator[None]:
    """The models point at a database that cannot be reached, for the duration."""
    previous = models.database.obj
    if models.is_postgres(previous):
        unreachable: peewee.Database = models.open_database("postgresql://postgres@127.0.0.1:1/nowhere")
    else:
        unreachable = peewee.SqliteDatabase("/nonexistent-directory/trackcache.db")
    models.database.initialize(unreachable)
    try:
        yield
    finally:
        models.database.initialize(previous)


@contextlib.contextmanager
def configured(**changes: Any) -> Iterator[None]:
    """Change settings of the installed runtime for the duration."""
    import dataclasses

    rt = runtime.current()
    previous = rt.config
    rt.config = dataclasses.replace(previous, **changes)
    try:
        yield
    finally:
        rt.config = previous


def body_of(response: Any) -> dict[str, Any]:
    return json.loads(response.content)


def _client(stack: Any) -> Iterator[Api]:
    STATS.reset()
    app = create_app(stack.config, boot=False)
    with TestClient(app, client=GUEST_ADDRESS) as client:
        yield Api(client, stack)


@pytest.fixture
def api(stack) -> Iterator[Api]:
    """The app over the stack: embedded (SQLite, in-process broker), then PostgreSQL and Redis."""
    yield from _client(stack)


@pytest.fixture
def redis_api(redis_stack) -> Iterator[Api]:
    """The app over PostgreSQL and Redis only."""
    yield from _client(redis_stack)
