"""The customer read cache: each order's tracking answer per view in its final form (see
web.read_bodies), in Redis (or in process in the embedded mode). Writers invalidate an order's
entries after their commit: the keys are deleted and the order ids published on
INVALIDATION_CHANNEL in the same round trip, so every web process drops its in-memory copies
(web.read_store listens), and this process's own copies are dropped at once."""
from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable, Sequence

from pipeline.coordination import Coordination

VIEWS = ("guest", "customer", "admin")
INVALIDATION_CHANNEL = "read-invalidations"

_local_listeners: list[Callable[[Sequence[str]], None]] = []
_listeners_lock = threading.Lock()


def key_for(order_id: str, view: str) -> str:
    return f"read:{view}:{order_id}"


def get(coordination: Coordination, order_id: str, view: str) -> bytes | None:
    return coordination.get(key_for(order_id, view))


def put(coordination: Coordination, order_id: str, view: str, body: bytes, *, ttl_seconds: float) -> None:
    coordination.set(key_for(order_id, view), body, ttl_seconds=ttl_seconds)


def invalidation(order_ids: Sequence[str]) -> tuple[list[str], list[tuple[str, str]]]:
    """The keys to delete and the (channel, message) to publish for these orders (pure)."""
    keys = [key_for(order_id, view) for order_id in order_ids for view in VIEWS]
    return keys, ([(INVALIDATION_CHANNEL, json.dumps(list(order_ids)))] if order_ids else [])


def parse_invalidation(message: str | bytes) -> list[str]:
    """The order ids of an invalidation message (none when it is not one)."""
    try:
        order_ids = json.loads(message)
    except ValueError:
        return []
    return [o for o in order_ids if isinstance(o, str)] if isinstance(order_ids, list) else []


def invalidate(coordination: Coordination, order_ids: Iterable[str]) -> None:
    """Drop every cached view of these orders, here and in every web process."""
    order_ids = list(order_ids)
    if not order_ids:
        return
    keys, messages = invalidation(order_ids)
    try:
        coordination.delete_and_publish(keys, messages)
    finally:  # after the delete: a copy read before it and kept since is dropped too
        forget_in_process(order_ids)


def on_invalidation(listener: Callable[[Sequence[str]], None]) -> None:
    """Call `listener(order_ids)` whenever this process invalidates orders (its hot copies go at
    once, before the publish reaches the other processes)."""
    with _listeners_lock:
        if listener not in _local_listeners:
            _local_listeners.append(listener)


def forget_in_process(order_ids: Sequence[str]) -> None:
    with _listeners_lock:
        listeners = list(_local_listeners)
    for listener in listeners:
        listener(order_ids)
