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
    """After a batch's commit: drop the read cache of its orders and publish its status changes,
    in one round trip to the coordination store."""
    from pipeline import read_cache

    keys = [read_cache.key_for(order_id, view) for order_id in order_ids for view in read_cache.VIEWS]
    coordination.delete_and_publish(keys, CHANNEL, [json.dumps(dict(change), sort_keys=True) for change in changes])

