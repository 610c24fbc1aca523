"""The audit log of admin actions and admin reads of shipments, naming each token only by a short
fingerprint."""
from __future__ import annotations

import peewee

description = "audit log of admin actions"


def up(db: peewee.Database, dialect) -> None:
    db.execute_sql(dialect.render("""
    CREATE TABLE audit_log (
      id              {bigpk},
      at              {ts} NOT NULL DEFAULT {now},
      actor           VARCHAR(12) NOT NULL,
      role            VARCHAR(16) NOT NULL,
      action          VARCHAR(64) NOT NULL,
      target          VARCHAR(255),
      detail          {json},
      client_address  VARCHAR(64)
    )"""))
    db.execute_sql("CREATE INDEX idx_audit_log_at ON audit_log (at)")
    db.execute_sql("CREATE INDEX idx_audit_log_target ON audit_log (target)")
