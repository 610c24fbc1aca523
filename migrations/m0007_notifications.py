"""Notifications: webhook endpoints of the shop, the outbox of webhooks and emails to deliver, every
delivery attempt, and customers' contact details (the address encrypted) for status emails."""
from __future__ import annotations

import peewee

description = "notification endpoints, outbox, attempts and order contacts"


def up(db: peewee.Database, dialect) -> None:
    db.execute_sql(dialect.render("""
    CREATE TABLE notification_endpoints (
      id                          {pk},
      url                         VARCHAR(2048) NOT NULL,
      description                 VARCHAR(255) NOT NULL DEFAULT '',
      events                      {json} NOT NULL,
      secret                      VARCHAR(128) NOT NULL,
      previous_secret             VARCHAR(128),
      previous_secret_expires_at  {ts},
      is_enabled                  {bool} NOT NULL DEFAULT TRUE,
      disabled_reason             TEXT,
      failing_since               {ts},
      created_at                  {ts} NOT NULL DEFAULT {now},
      updated_at                  {ts} NOT NULL DEFAULT {now}
    )"""))
    db.execute_sql(dialect.render("""
    CREATE TABLE notification_outbox (
      id                 {bigpk},
      channel            VARCHAR(16) NOT NULL,
      event_type         VARCHAR(64) NOT NULL,
      endpoint_id        INTEGER,
      order_id           VARCHAR(128),
      tracking_cache_id  INTEGER,
      message_id         VARCHAR(64) NOT NULL UNIQUE,
      dedupe_key         VARCHAR(128) NOT NULL UNIQUE,
      payload            {json} NOT NULL,
      status             VARCHAR(16) NOT NULL DEFAULT 'pending',
      attempts           INTEGER NOT NULL DEFAULT 0,
      next_attempt_at    {ts} NOT NULL DEFAULT {now},
      claimed_until      {ts},
      last_error         TEXT,
      last_status_code   INTEGER,
      replay_of          VARCHAR(64),
      created_at         {ts} NOT NULL DEFAULT {now},
      delivered_at       {ts}
    )"""))
    db.execute_sql("CREATE INDEX idx_notification_outbox_due ON notification_outbox (status, next_attempt_at)")
    db.execute_sql("CREATE INDEX idx_notification_outbox_endpoint ON notification_outbox (endpoint_id, created_at)")
    db.execute_sql("CREATE INDEX idx_notification_outbox_order ON notification_outbox (order_id)")
    db.execute_sql(dialect.render("""
    CREATE TABLE notification_attempts (
      id                {bigpk},
      outbox_id         BIGINT NOT NULL REFERENCES notification_outbox (id) ON DELETE CASCADE,
      attempted_at      {ts} NOT NULL DEFAULT {now},
      is_success        {bool} NOT NULL DEFAULT FALSE,
      status_code       INTEGER,
      latency_ms        INTEGER,
      response_excerpt  TEXT,
      error             TEXT
    )"""))
    db.execute_sql("CREATE INDEX idx_notification_attempts_outbox ON notification_attempts (outbox_id)")
    db.execute_sql(dialect.render("""
    CREATE TABLE order_contacts (
      order_id         VARCHAR(128) PRIMARY KEY REFERENCES orders (id) ON DELETE CASCADE,
      email_encrypted  TEXT,
      locale           VARCHAR(8) NOT NULL DEFAULT 'en',
      notify_email     {bool} NOT NULL DEFAULT FALSE,
      unsubscribed_at  {ts},
      bounced_at       {ts},
      created_at       {ts} NOT NULL DEFAULT {now},
      updated_at       {ts} NOT NULL DEFAULT {now}
    )"""))
