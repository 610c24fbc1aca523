"""The customer read cache: serialized tracking responses per order and view, in Redis (or in
process in the embedded mode). Persist invalidates an order's entries after its commit."""
from __future__ import annotations

from typing import Iterable

from pipeline.coordination import Coordination

VIEWS = ("guest", "customer", "admin")


def key_for(order_id: str, view: str) -> str:
    return f"read:{view}:{order_id}"


def get(coordination: Coordination, order_id: str, view: str) -> bytes | None:
    return coordination.get(key_for(order_id, view))


def put(coordination: Coordination, order_id: str, view: str, body: bytes, *, ttl_seconds: float) -> None:
    coordination.set(key_for(order_id, view), body, ttl_seconds=ttl_seconds)


def invalidate(coordination: Coordination, order_ids: Iterable[str]) -> None:
    """Drop every cached view of these orders."""
    keys = [key_for(order_id, view) for order_id in order_ids for view in VIEWS]
    if keys:
        coordination.delete(*keys)
