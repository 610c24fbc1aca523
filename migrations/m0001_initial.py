"""The initial schema: the seed plan's three tables (columns, defaults, unique constraint,
indexes and its partial "Indexes Strategy" indexes), plus orders, the webhook inbox and the
courier API call record."""
from __future__ import annotations

import peewee

description = "seed tables, orders, webhook inbox, courier api calls"

TABLES = [
    """
    CREATE TABLE orders (
      id                     VARCHAR(128) PRIMARY KEY,
      customer_id            VARCHAR(128),
      customer_email_hash    VARCHAR(64) NOT NULL,
      created_at             {ts} NOT NULL DEFAULT {now}
    )""",
    """
    CREATE TABLE tracking_cache (
      id                        {pk},
      order_id                  VARCHAR(128) NOT NULL REFERENCES orders(id) ON DELETE CASCADE,
      courier_tracking_number   VARCHAR(64) NOT NULL,
      courier_service           VARCHAR(32) NOT NULL,
      current_status            VARCHAR(32) NOT NULL,
      last_status_update        {ts} NOT NULL,
      tracking_events           {json} NOT NULL DEFAULT {empty_json_list},
      estimated_delivery        {ts},
      actual_delivery           {ts},
      delivery_location         VARCHAR(255),
      last_api_update           {ts} NOT NULL,
      next_update_due           {ts} NOT NULL,
      update_frequency_minutes  INTEGER NOT NULL DEFAULT 120,
      consecutive_failures      INTEGER DEFAULT 0,
      is_delivered              {bool} DEFAULT FALSE,
      is_failed                 {bool} DEFAULT FALSE,
      is_active                 {bool} DEFAULT TRUE,
      requires_attention        {bool} DEFAULT FALSE,
      last_api_response         {json},
      api_response_hash         VARCHAR(64),
      created_at                {ts} DEFAULT {now},
      updated_at                {ts} DEFAULT {now},
      claimed_until             {ts},
      last_event_at             {ts},
      has_unmapped_events       {bool} DEFAULT FALSE,
      attention_reason          TEXT,
      refresh_requested_at      {ts},
      UNIQUE (order_id, courier_tracking_number)
    )""",
    """
    CREATE TABLE tracking_update_logs (
      id                    {bigpk},
      tracking_cache_id     INTEGER REFERENCES tracking_cache(id) ON DELETE CASCADE,
      update_type           VARCHAR(16) NOT NULL,
      triggered_by          VARCHAR(128),
      api_call_success      {bool} NOT NULL,
      api_response_time_ms  INTEGER,
      api_status_code       INTEGER,
      api_error_message     TEXT,
      status_changed        {bool} DEFAULT FALSE,
      previous_status       VARCHAR(32),
      new_status            VARCHAR(32),
      events_added          INTEGER DEFAULT 0,
      started_at            {ts} NOT NULL,
      completed_at          {ts}
    )""",
    """
    CREATE TABLE tracking_job_queue (
      id                 {bigpk},
      tracking_cache_id  INTEGER REFERENCES tracking_cache(id) ON DELETE CASCADE,
      job_type           VARCHAR(16) NOT NULL,
      priority           INTEGER DEFAULT 100,
      scheduled_for      {ts} NOT NULL,
      attempts           INTEGER DEFAULT 0,
      max_attempts       INTEGER DEFAULT 3,
      last_attempt_at    {ts},
      last_error         TEXT,
      status             VARCHAR(16) DEFAULT 'pending',
      created_at         {ts} DEFAULT {now},
      updated_at         {ts} DEFAULT {now},
      batch_id           VARCHAR(64),
      completed_at       {ts}
    )""",
    """
    CREATE TABLE webhook_inbox (
      id                 {bigpk},
      courier            VARCHAR(32) NOT NULL,
      topic              VARCHAR(64),
      external_event_id  VARCHAR(128),
      raw_body           TEXT NOT NULL,
      received_at        {ts} NOT NULL DEFAULT {now},
      processed_at       {ts},
      status             VARCHAR(16) NOT NULL DEFAULT 'pending',
      error              TEXT,
      attempts           INTEGER NOT NULL DEFAULT 0
    )""",
    """
    CREATE TABLE courier_api_calls (
      id                      {bigpk},
      courier                 VARCHAR(32) NOT NULL,
      called_at               {ts} NOT NULL DEFAULT {now},
      endpoint                VARCHAR(255) NOT NULL,
      trigger                 VARCHAR(16) NOT NULL DEFAULT 'scheduled',
      tracking_numbers_count  INTEGER NOT NULL DEFAULT 0,
      http_status             INTEGER,
      latency_ms              INTEGER,
      is_success              {bool} NOT NULL DEFAULT FALSE,
      error                   TEXT
    )""",
]

INDEXES = [
    # tracking_cache, from the seed's table definition
    "CREATE INDEX idx_tracking_cache_order_id ON tracking_cache (order_id)",
    "CREATE INDEX idx_tracking_cache_tracking_number ON tracking_cache (courier_tracking_number)",
    "CREATE INDEX idx_tracking_cache_next_update ON tracking_cache (next_update_due)",
    "CREATE INDEX idx_tracking_cache_active ON tracking_cache (is_active, is_delivered)",
    # tracking_cache, the seed's "Indexes Strategy"
    "CREATE INDEX idx_tracking_active_updates ON tracking_cache (is_active, next_update_due) WHERE is_active = TRUE",
    # tracking_update_logs
    "CREATE INDEX idx_tracking_logs_cache_id ON tracking_update_logs (tracking_cache_id)",
    "CREATE INDEX idx_tracking_logs_timestamp ON tracking_update_logs (started_at)",
    "CREATE INDEX idx_tracking_logs_success ON tracking_update_logs (api_call_success)",
    # tracking_job_queue
    "CREATE INDEX idx_job_queue_scheduled ON tracking_job_queue (scheduled_for, status)",
    "CREATE INDEX idx_job_queue_cache_id ON tracking_job_queue (tracking_cache_id)",
    "CREATE INDEX idx_job_queue_processing ON tracking_job_queue (status, scheduled_for)"
    " WHERE status IN ('pending', 'running')",
    "CREATE INDEX idx_job_queue_batch ON tracking_job_queue (batch_id) WHERE batch_id IS NOT NULL",
    # orders
    "CREATE INDEX idx_orders_customer_id ON orders (customer_id) WHERE customer_id IS NOT NULL",
    # webhook_inbox: dedup by the courier's event id; the sweep looks for unfinished rows
    "CREATE UNIQUE INDEX idx_inbox_event ON webhook_inbox (courier, external_event_id)",
    "CREATE INDEX idx_inbox_pending ON webhook_inbox (received_at) WHERE status = 'pending'",
    "CREATE INDEX idx_inbox_received ON webhook_inbox (received_at)",
    # courier_api_calls: budget and usage by day
    "CREATE INDEX idx_api_calls_called_at ON courier_api_calls (called_at)",
]


def covering_indexes(is_postgres: bool) -> list[str]:
    """The seed's INCLUDE indexes; SQLite has no INCLUDE, so there they are plain composites."""
    if is_postgres:
        return [
            "CREATE INDEX idx_tracking_order_lookup ON tracking_cache (order_id)"
            " INCLUDE (current_status, last_status_update)",
            "CREATE INDEX idx_tracking_number_lookup ON tracking_cache (courier_tracking_number)"
            " INCLUDE (current_status)",
        ]
    return [
        "CREATE INDEX idx_tracking_order_lookup ON tracking_cache"
        " (order_id, current_status, last_status_update)",
        "CREATE INDEX idx_tracking_number_lookup ON tracking_cache (courier_tracking_number, current_status)",
    ]


def up(db: peewee.Database, dialect) -> None:
    for statement in TABLES + INDEXES + covering_indexes(dialect.is_postgres):
        db.execute_sql(dialect.render(statement) if "{" in statement else statement)
