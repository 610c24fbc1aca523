"""The shop's integration API: idempotency keys of admin POSTs (kept 24 hours) and the shipment
changes feed (one row per changed shipment, ordered so that a pulling shop never misses one)."""
from __future__ import annotations

import peewee

description = "integration API: idempotency keys and the shipment changes feed"


def up(db: peewee.Database, dialect) -> None:
    db.execute_sql(dialect.render("""
    CREATE TABLE idempotency_keys (
      actor            VARCHAR(12) NOT NULL,
      idempotency_key  VARCHAR(255) NOT NULL,
      request_hash     VARCHAR(64) NOT NULL,
      status_code      INTEGER,
      response_body    TEXT,
      content_type     VARCHAR(128),
      created_at       {ts} NOT NULL DEFAULT {now},
      PRIMARY KEY (actor, idempotency_key)
    )"""))
    db.execute_sql("CREATE INDEX idx_idempotency_keys_created ON idempotency_keys (created_at)")
    # txid: the writing transaction's id on PostgreSQL (xid8 as bigint), which the feed reader
    # compares with its snapshot's xmin; always 0 on SQLite, where writers are serialised.
    txid_default = "(pg_current_xact_id()::text::bigint)" if dialect.is_postgres else "0"
    db.execute_sql(dialect.render(f"""
    CREATE TABLE shipment_changes (
      id               {{bigpk}},
      txid             BIGINT NOT NULL DEFAULT {txid_default},
      shipment_id      INTEGER NOT NULL,
      change           VARCHAR(16) NOT NULL,
      changed_at       {{ts}} NOT NULL DEFAULT {{now}}
    )"""))
    db.execute_sql("CREATE INDEX idx_shipment_changes_cursor ON shipment_changes (txid, id)")
    db.execute_sql("CREATE INDEX idx_shipment_changes_changed_at ON shipment_changes (changed_at)")
