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
