"""Delivery estimates and delays: the estimate's range, source and first value, the courier's own
estimate beside ours, the delay flag on shipments, and the facts of finished journeys."""
from __future__ import annotations

import peewee

description = "delivery estimates, delay flag and journey facts"

_SHIPMENT_COLUMNS = (
    "courier_estimated_delivery {ts}",
    "estimated_delivery_earliest {ts}",
    "estimated_delivery_latest {ts}",
    "estimate_source VARCHAR(16)",
    "estimate_basis VARCHAR(64)",
    "first_estimated_delivery {ts}",
    "is_delayed {bool} NOT NULL DEFAULT FALSE",
    "delay_reason TEXT",
    "delayed_since {ts}",
)


def up(db: peewee.Database, dialect) -> None:
    for column in _SHIPMENT_COLUMNS:
        db.execute_sql(dialect.render(f"ALTER TABLE tracking_cache ADD COLUMN {column}"))
    db.execute_sql(dialect.render("""
    CREATE TABLE journey_facts (
      id                   {bigpk},
      tracking_cache_id    INTEGER UNIQUE REFERENCES tracking_cache(id) ON DELETE SET NULL,
      courier              VARCHAR(64) NOT NULL,
      service              VARCHAR(32) NOT NULL,
      origin_state         VARCHAR(64),
      origin_country       VARCHAR(2),
      destination_state    VARCHAR(64),
      destination_country  VARCHAR(2),
      milestones           {json} NOT NULL,
      outcome              VARCHAR(32) NOT NULL,
      handed_over_at       {ts},
      delivered_at         {ts},
      finished_at          {ts} NOT NULL,
      failed_attempts      INTEGER NOT NULL DEFAULT 0,
      business_days        INTEGER,
      first_estimated_delivery {ts},
      had_exception        {bool} NOT NULL DEFAULT FALSE,
      recorded_at          {ts} NOT NULL DEFAULT {now}
    )"""))
    db.execute_sql("CREATE INDEX idx_journey_facts_finished ON journey_facts (finished_at)")
    db.execute_sql("CREATE INDEX idx_journey_facts_courier ON journey_facts (courier, finished_at)")
    db.execute_sql("CREATE INDEX idx_tracking_cache_delayed ON tracking_cache (is_delayed) WHERE is_delayed")
