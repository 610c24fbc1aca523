"""Daily courier API usage summaries, computed by the usage-report sweep and kept for the
admin's history chart after the per-call rows are cleaned up."""
from __future__ import annotations

import peewee

description = "daily courier API usage summary"


def up(db: peewee.Database, dialect) -> None:
    db.execute_sql(dialect.render("""
    CREATE TABLE api_usage_daily (
      id                  {pk},
      day                 DATE NOT NULL,
      courier             VARCHAR(32) NOT NULL,
      calls               INTEGER NOT NULL DEFAULT 0,
      successes           INTEGER NOT NULL DEFAULT 0,
      failures            INTEGER NOT NULL DEFAULT 0,
      tracking_numbers    INTEGER NOT NULL DEFAULT 0,
      p50_latency_ms      INTEGER,
      p95_latency_ms      INTEGER,
      computed_at         {ts} NOT NULL,
      UNIQUE (day, courier)
    )"""))
