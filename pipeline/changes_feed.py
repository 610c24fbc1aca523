"""The shipment changes feed behind `GET /api/admin/changes?after=<cursor>`: every write that changes
what a shipment looks like (registration, tracking news, a correction, a stop, an erasure) adds one
row per shipment inside its own transaction, and readers page through the rows with a cursor that
never skips a row, however many writers commit concurrently.

Why not simply "rows with id > cursor": on PostgreSQL a sequence value is taken when a row is
inserted, not when its transaction commits. Writer A takes id 10, writer B takes id 11 and commits
first; a reader that sees 11 and moves its cursor past it would never see 10 once A commits. So
each row also carries the id of the transaction that wrote it (`pg_current_xact_id()`, a 64-bit
xid8 stored as bigint), and a reader only returns rows whose transaction id is below the oldest
transaction still in progress in its own snapshot (`pg_snapshot_xip(pg_current_snapshot())`, in
the same statement; transactions pg_stat_activity shows in another database are left out, since
they cannot write this table): every transaction below that bound has finished, so no row can
ever appear there again. Rows are ordered and the cursor is taken by (txid, id); a row that
commits later belongs to a transaction that was still running, whose id is at least that bound
and so above every cursor handed out before. The price is latency, never loss: a feed row is
held back while an older write transaction on this database is still open (normally
milliseconds; an idle-in-transaction session holds the feed until it ends). Transaction ids are allocated in start order, not commit order, so pages are
in transaction order; what a shop relies on, that a cursor taken before a change always sees it,
holds. The alternative, serialising every writer on one lock to number rows at commit, would put
all persists of all workers in a single file.

On SQLite one writer holds the database at a time (BEGIN IMMEDIATE or the reserved lock) from its
first write to its commit, so ids are in commit order; txid is always 0 there.
"""
from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import peewee

import models
from models import ShipmentChange

REGISTERED, TRACKING, CORRECTED, STOPPED, ERASED = "registered", "tracking", "corrected", "stopped", "erased"
CHANGE_KINDS = (REGISTERED, TRACKING, CORRECTED, STOPPED, ERASED)
# A position after every id: the head cursor sits at (oldest running txid - 1, this).
_AFTER_ANY_ID = (1 << 62)


@dataclass(frozen=True, order=True)
class FeedCursor:
    """A position in the feed: after the row (txid, id)."""

    txid: int = 0
    row_id: int = 0

    def encode(self) -> str:
        """The opaque text form handed to clients."""
        return base64.urlsafe_b64encode(f"c1.{self.txid}.{self.row_id}".encode("ascii")).decode("ascii").rstrip("=")


START = FeedCursor(0, 0)


def decode_cursor(text: str) -> FeedCursor:
    """The cursor a client sent back.

    Raises:
        ValueError: not a cursor this server handed out.
    """
    if not text or len(text) > 80:
        raise ValueError("not a changes cursor")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise ValueError("not a changes cursor") from None
    version, _, rest = raw.partition(".")
    txid, _, row_id = rest.partition(".")
    if version != "c1" or not txid.isdigit() or not row_id.isdigit():
        raise ValueError("not a changes cursor")
    return FeedCursor(int(txid), int(row_id))


# --- writing (inside the writer's transaction) --------------------------------------------------

def record_shipment_changes(shipment_ids: Sequence[int], change: str, now: datetime) -> None:
    """Add one feed row per shipment, in one statement, inside the caller's transaction (the
    database fills in the transaction id)."""
    if not shipment_ids:
        return
    if change not in CHANGE_KINDS:
        raise ValueError(f"unknown change kind {change!r}")
    models.insert_rows(ShipmentChange, [{"shipment_id": shipment_id, "change": change, "changed_at": now}
                                        for shipment_id in sorted(set(shipment_ids))])


# --- reading -----------------------------------------------------------------------------------

# The lowest transaction id that may still write rows this reader cannot see yet, computed from
# the reading statement's own snapshot: the snapshot's in-progress transactions, leaving out those
# pg_stat_activity shows running in another database (they cannot write our table, and on a
# shared server they would otherwise hold the feed back); when none is left, the snapshot's xmax.
# An in-progress id that pg_stat_activity no longer shows (committed meanwhile, a prepared
# transaction, or hidden for lack of privilege) is kept: being conservative costs latency only.
SAFE_BOUND_SQL = """(SELECT COALESCE(
    (SELECT min(x::text::bigint) FROM pg_snapshot_xip(pg_current_snapshot()) AS x
     WHERE NOT EXISTS (
       SELECT 1 FROM pg_stat_activity AS a
       WHERE a.backend_xid = (mod(x::text::bigint, 4294967296)::text)::xid
         AND a.datid IS NOT NULL
         AND a.datid <> (SELECT oid FROM pg_database WHERE datname = current_database()))),
    pg_snapshot_xmax(pg_current_snapshot())::text::bigint))"""


def _safe_below() -> Any:
    """SQL for "transaction ids below this have finished writing this database's feed",
    evaluated in the reading statement's own snapshot (PostgreSQL); on SQLite every committed
    row is final."""
    if models.is_postgres():
        return peewee.SQL(SAFE_BOUND_SQL)
    return _AFTER_ANY_ID


def head_cursor() -> FeedCursor:
    """A cursor after every change that can be read now and before every later one (`after=latest`)."""
    if models.is_postgres():
        bound = models.database.execute_sql(f"SELECT {SAFE_BOUND_SQL}").fetchone()[0]
        return FeedCursor(int(bound) - 1, _AFTER_ANY_ID)
    last = ShipmentChange.select(peewee.fn.MAX(ShipmentChange.id)).scalar()
    return FeedCursor(0, int(last or 0))


def read_changes(after: FeedCursor, limit: int) -> tuple[list[dict[str, Any]], FeedCursor]:
    """Up to `limit` feed rows after the cursor, in feed order, and the cursor to continue from
    (the same one when there is nothing new)."""
    query = (ShipmentChange.select()
             .where((peewee.Tuple(ShipmentChange.txid, ShipmentChange.id) > peewee.Tuple(after.txid, after.row_id))
                    & (ShipmentChange.txid < _safe_below()))
             .order_by(ShipmentChange.txid, ShipmentChange.id)
             .limit(limit)
             .dicts())
    rows = cast(list[dict[str, Any]], list(query))
    if not rows:
        return [], after
    last = rows[-1]
    return rows, FeedCursor(int(last["txid"]), int(last["id"]))


def delete_changes_before(cutoff: datetime) -> int:
    """Forget feed rows older than the retention period (a cursor older than that restarts there)."""
    return ShipmentChange.delete().where(ShipmentChange.changed_at < cutoff).execute()

