"""Lanes: one Dramatiq queue and priority per kind of work, so a manual refresh never waits
behind a backlog of scheduled polls (seed priorities: manual 50, retry 75, scheduled 100,
cleanup 200; lower runs first; webhooks 60 and admin bulk refreshes 80 sit between)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Lane:
    name: str
    priority: int
    # The ledger's job_type for work in this lane (None: no ledger rows, e.g. webhooks).
    job_type: str | None

    @property
    def queue_name(self) -> str:
        return f"tracking.{self.name}"


MANUAL = Lane("manual", 50, "manual")
WEBHOOK = Lane("webhook", 60, None)
RETRY = Lane("retry", 75, "retry")
# Admin bulk refreshes: admin-triggered like manual ones, but behind them and within the
# scheduled share of the budget, so one "refresh everything" cannot starve a single refresh.
BULK = Lane("bulk", 80, "manual")
SCHEDULED = Lane("scheduled", 100, "update")
CLEANUP = Lane("cleanup", 200, "cleanup")
# The estimates job (statistics rebuild, every active shipment re-estimated, delays flagged).
ESTIMATES = Lane("estimates", 150, None)

LANES: dict[str, Lane] = {lane.name: lane for lane in (MANUAL, WEBHOOK, RETRY, BULK, SCHEDULED, CLEANUP, ESTIMATES)}
# Lanes that carry courier polls (fetch -> parse -> diff -> persist).
POLL_LANES = (MANUAL, RETRY, BULK, SCHEDULED)
# Lanes whose updates flow through parse -> diff -> persist.
UPDATE_LANES = (MANUAL, WEBHOOK, RETRY, BULK, SCHEDULED)
