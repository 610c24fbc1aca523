"""A web process's memory of hot order documents, in front of the read cache: least recently used
first out, bounded by entries, bytes and age (TRACKING_HOT_DOCUMENTS, _MB, _SECONDS). Persist's
invalidations drop entries (through Redis pub/sub, see web.read_store); the age bound caps what a
lost message could cost. Pure: no I/O, the clock is passed in."""
from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

from web.read_bodies import ReadyDocument
from web.views import CUSTOMER, GUEST

AUDIENCES = (GUEST, CUSTOMER)


@dataclass(frozen=True)
class HotEntry:
    document: ReadyDocument
    expires: float  # monotonic seconds


class HotDocuments:
    """LRU of (audience, order id) -> ReadyDocument. The event loop reads and fills it; a drop
    may come from any thread (an in-process persist), hence the lock."""

    def __init__(self, *, max_entries: int, max_bytes: int, max_age: float) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.max_age = max_age
        self.size = 0
        # Bumped by every invalidation: a fill that started before one is not kept (it may hold
        # the data the invalidation was about).
        self.generation = 0
        self._entries: OrderedDict[tuple[str, str], HotEntry] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, audience: str, order_id: str, now: float) -> ReadyDocument | None:
        key = (audience, order_id)
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if entry.expires <= now:
                self._remove(key)
                return None
            self._entries.move_to_end(key)
            return entry.document

    def put(self, audience: str, order_id: str, document: ReadyDocument, now: float, *,
            generation: int) -> bool:
        """Keep a document read at `generation`; refused when an invalidation came since, or
        when the document alone is larger than the memory bound."""
        key = (audience, order_id)
        with self._lock:
            if generation != self.generation or document.size > self.max_bytes:
                return False
            self._remove(key)
            self._entries[key] = HotEntry(document, now + self.max_age)
            self.size += document.size
            while len(self._entries) > self.max_entries or self.size > self.max_bytes:
                self._remove(next(iter(self._entries)))
            return True

    def drop(self, order_ids: list[str] | tuple[str, ...]) -> None:
        """Forget every audience's document of these orders."""
        with self._lock:
            self.generation += 1
            for order_id in order_ids:
                for audience in AUDIENCES:
                    self._remove((audience, order_id))

    def clear(self) -> None:
        with self._lock:
            self.generation += 1
            self._entries.clear()
            self.size = 0

    def _remove(self, key: tuple[str, str]) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self.size -= entry.document.size
