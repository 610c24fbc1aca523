"""Two shipment indexes duplicated others: idx_tracking_cache_order_id (order_id) is the leading
column of idx_tracking_order_lookup and of the (order_id, courier_tracking_number) unique key, and
idx_tracking_cache_tracking_number (courier_tracking_number) that of idx_tracking_number_lookup.
Every query they served is served by those; every shipment update had to maintain them too (the
webhook drain rewrites each updated shipment's index entries, since it changes indexed columns)."""
from __future__ import annotations

import peewee

description = "drop the two shipment indexes that duplicate the lookup indexes"


def up(db: peewee.Database, dialect) -> None:
    db.execute_sql("DROP INDEX IF EXISTS idx_tracking_cache_order_id")
    db.execute_sql("DROP INDEX IF EXISTS idx_tracking_cache_tracking_number")
