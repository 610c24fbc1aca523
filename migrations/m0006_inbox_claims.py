"""Inbox claims (webhook ingestion): a drain claims pending inbox rows for a lease, so a row
waiting in a backlog is never counted as an attempt, and a worker killed mid-batch leaves its rows
to the next drain once the lease ends."""
from __future__ import annotations

import peewee

description = "webhook inbox claim lease for batch drains"


def up(db: peewee.Database, dialect) -> None:
    db.execute_sql(dialect.render("ALTER TABLE webhook_inbox ADD COLUMN claimed_until {ts}"))
    # `attempts` now counts claims, not sweeps: rows still pending start again from zero
    db.execute_sql("UPDATE webhook_inbox SET attempts = 0 WHERE status = 'pending'")
    # the drain claims the oldest pending rows by id
    db.execute_sql("CREATE INDEX idx_inbox_pending_id ON webhook_inbox (id) WHERE status = 'pending'")
