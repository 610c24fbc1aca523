"""Process-local Prometheus metrics the pipeline counts as it works (the web's /metrics adds
figures computed from the database, which hold across processes)."""
from __future__ import annotations

from prometheus_client import Counter

UNMAPPED_CODES = Counter(
    "trackcache_unmapped_courier_codes_total",
    "Courier events whose code or text has no canonical status mapping.",
    ["courier", "code"],
)
UPDATES_PERSISTED = Counter(
    "trackcache_updates_persisted_total",
    "Shipment rows written by persist, by trigger.",
    ["trigger"],
)
STATUS_CHANGES = Counter(
    "trackcache_status_changes_total",
    "Shipment status changes persisted.",
    ["status"],
)
