"""Status-change notifications: persist publishes one message per changed shipment after its
commit; live pages and any other listener subscribe to the channel."""
from __future__ import annotations

import json
import threading
from typing import Any, Iterator, Mapping, Sequence

from pipeline.coordination import Coordination

CHANNEL = "status-changes"


def publish_status_changes(coordination: Coordination, changes: Sequence[Mapping[str, Any]]) -> None:
    for change in changes:
        coordination.publish(CHANNEL, json.dumps(dict(change), sort_keys=True))


def listen(coordination: Coordination, stop: threading.Event) -> Iterator[dict[str, Any]]:
    """Status changes as they are published, until `stop` is set."""
    for message in coordination.subscribe(CHANNEL, stop):
        try:
            yield json.loads(message)
        except ValueError:
            continue


def announce_persisted(coordination: Coordination, order_ids: Sequence[str],
                       changes: Sequence[Mapping[str, Any]]) -> None:
    """After a batch's commit: drop the read cache of its orders (and tell every web process to
    drop its hot copies) and publish its status changes, in one round trip to the coordination store."""
    from pipeline import read_cache

    keys, invalidation = read_cache.invalidation(order_ids)
    messages = [(CHANNEL, json.dumps(dict(change), sort_keys=True)) for change in changes]
    try:
        coordination.delete_and_publish(keys, [*invalidation, *messages])
    finally:
        read_cache.forget_in_process(order_ids)

