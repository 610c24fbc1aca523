"""Which columns a batch of shipment writes sends (models.changed_write_columns): only those some
row changed since it was loaded."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import models
from models import TrackingCache

T0 = datetime(2026, 12, 2, tzinfo=timezone.utc)


def loaded_row(**values) -> TrackingCache:
    """A shipment as the drain's locking select loads it (values remembered)."""
    row = TrackingCache.__new__(TrackingCache)
    row.__data__ = {"id": 1, "current_status": "in_transit", "tracking_events": [{"time": "x"}],
                    "next_update_due": T0, "last_api_response": {"big": "answer"}, "attention_reason": None, **values}
    row._dirty = set()
    row.__rel__ = {}
    row._loaded_values = dict(row.__data__)
    return row


def names(rows) -> list[str]:
    return [name for name, _ in models.changed_write_columns(rows)]


def test_only_the_columns_some_row_changed_are_written():
    first, second = loaded_row(), loaded_row(id=2)
    assert names([first, second]) == [name for name, _ in models._SHIPMENT_WRITE_COLUMNS
                                      if name not in first.__data__]  # never loaded: always written
    full = {name: None for name, _ in models._SHIPMENT_WRITE_COLUMNS}
    first, second = loaded_row(**{**full, "current_status": "in_transit", "next_update_due": T0}), loaded_row(**full)
    assert names([first, second]) == []
    first.tracking_events = [{"time": "y"}, {"time": "x"}]
    second.next_update_due = T0 + timedelta(hours=2)
    first.current_status = "in_transit"  # assigned its own value again: not a change
    assert names([first, second]) == ["tracking_events", "next_update_due"]


def test_a_row_loaded_without_its_values_remembered_writes_every_column():
    row = TrackingCache(id=3, current_status="delivered")
    assert names([row]) == [name for name, _ in models._SHIPMENT_WRITE_COLUMNS]
