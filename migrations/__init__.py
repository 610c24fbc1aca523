"""Versioned, forward-only schema migrations for SQLite and PostgreSQL.

Each migration is a module `mNNNN_name.py` in this package with a `description` string and an
`up(db, dialect)` function. `migrate(db)` applies the missing ones in order, each in its own
transaction, and records them in `schema_migrations`; a second run is a no-op. Concurrent runs
(several processes starting at once) are serialised by a lock.
"""
from __future__ import annotations

import importlib
import logging
import pkgutil
from dataclasses import dataclass
from datetime import datetime, timezone
from types import ModuleType

import peewee

logger = logging.getLogger(__name__)

# PostgreSQL advisory lock key shared by every `migrate` run ("trackcache" in ASCII, folded).
_ADVISORY_LOCK_KEY = 0x747261636B


@dataclass(frozen=True)
class Dialect:
    """The few column spellings that differ between SQLite and PostgreSQL."""

    name: str
    pk: str
    bigpk: str
    json: str
    timestamp: str
    boolean: str
    now: str
    empty_json_list: str

    @property
    def is_postgres(self) -> bool:
        return self.name == "postgresql"

    def render(self, sql: str) -> str:
        return sql.format(
            pk=self.pk, bigpk=self.bigpk, json=self.json, ts=self.timestamp, bool=self.boolean,
            now=self.now, empty_json_list=self.empty_json_list,
        )


POSTGRESQL = Dialect(
    name="postgresql", pk="SERIAL PRIMARY KEY", bigpk="BIGSERIAL PRIMARY KEY", json="JSONB",
    timestamp="TIMESTAMP", boolean="BOOLEAN", now="(now() AT TIME ZONE 'utc')",
    empty_json_list="'[]'::jsonb",
)
SQLITE = Dialect(
    name="sqlite", pk="INTEGER PRIMARY KEY AUTOINCREMENT", bigpk="INTEGER PRIMARY KEY AUTOINCREMENT",
    json="TEXT", timestamp="DATETIME", boolean="BOOLEAN", now="(strftime('%Y-%m-%d %H:%M:%f', 'now'))",
    empty_json_list="'[]'",
)


def dialect_of(db: peewee.Database) -> Dialect:
    return POSTGRESQL if isinstance(db, peewee.PostgresqlDatabase) else SQLITE


def available() -> list[tuple[str, ModuleType]]:
    """All migrations of this package as (version, module), in order."""
    found = []
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("m") and info.name[1:5].isdigit():
            found.append((info.name[1:5], importlib.import_module(f"{__name__}.{info.name}")))
    return sorted(found, key=lambda pair: pair[0])


def applied(db: peewee.Database) -> set[str]:
    """Versions already recorded in the database."""
    if not db.table_exists("schema_migrations"):
        return set()
    return {row[0] for row in db.execute_sql("SELECT version FROM schema_migrations")}


def migrate(db: peewee.Database) -> list[str]:
    """Apply every missing migration; returns the versions applied by this call."""
    dialect = dialect_of(db)
    db.execute_sql(dialect.render(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version VARCHAR(16) PRIMARY KEY, description TEXT NOT NULL, applied_at {ts} NOT NULL)"
    ))
    done: list[str] = []
    for version, module in available():
        lock = db.atomic() if dialect.is_postgres else db.atomic(lock_type="IMMEDIATE")
        with lock:
            if dialect.is_postgres:
                db.execute_sql("SELECT pg_advisory_xact_lock(%s)", (_ADVISORY_LOCK_KEY,))
            if version in applied(db):
                continue
            logger.info("applying migration %s: %s", version, module.description)
            module.up(db, dialect)
            stamp = datetime.now(timezone.utc).replace(tzinfo=None).isoformat(sep=" ")
            db.execute_sql(
                "INSERT INTO schema_migrations (version, description, applied_at) VALUES (%s, %s, %s)"
                .replace("%s", db.param),
                (version, module.description, stamp),
            )
            done.append(version)
    return done


def pending(db: peewee.Database) -> list[str]:
    """Versions not yet applied."""
    done = applied(db)
    return [version for version, _ in available() if version not in done]
