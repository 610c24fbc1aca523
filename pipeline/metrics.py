"""Process-local Prometheus metrics the pipeline counts as it works (the web's /metrics adds
figures computed from the database, which hold across processes)."""
from __future__ import annotations

from prometheus_client import Counter, Histogram

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
INBOX_BATCH_SIZE = Histogram(
    "trackcache_inbox_batch_size",
    "Webhooks (inbox rows) one drain persisted as one batch.",
    buckets=(1, 5, 20, 50, 100, 200, 300, 500),
)
