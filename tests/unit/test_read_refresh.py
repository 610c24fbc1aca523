"""The pure parts of a read's refresh decision: the `refresh` object's four states, the stale rule
over a document's shipments, and the slots that let one read per interval ask for a refresh."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from pipeline.coordination import LocalCoordination
from web import reads

NOW = datetime(2026, 12, 1, 9, 0, 2, tzinfo=timezone.utc)


def test_only_a_read_that_created_jobs_says_requested():
    assert reads.refresh_answer(reads.REQUESTED, "stale", job_ids=[7, 9], since="2026-12-01T09:00:02Z") == {
        "requested": True, "state": "requested", "reason": "stale", "job_ids": [7, 9],
        "since": "2026-12-01T09:00:02Z"}
    assert reads.refresh_answer(reads.UNDER_WAY, "customer", since="2026-12-01T08:59:00Z") == {
        "requested": False, "state": "under_way", "reason": "customer", "since": "2026-12-01T08:59:00Z"}
    assert reads.refresh_answer(reads.NOT_NEEDED, "final") == {"requested": False, "state": "not_needed",
                                                               "reason": "final"}


def test_stale_shipments_are_the_pollable_ones_older_than_the_ttl():
    shipments = [{"id": 1, "last_updated": "2026-11-29T09:00:00Z", "is_pollable": True},
                 {"id": 2, "last_updated": "2026-11-29T09:00:00Z", "is_pollable": False},
                 {"id": 3, "last_updated": "2026-12-01T08:00:00Z", "is_pollable": True},
                 {"id": 4, "last_updated": None, "is_pollable": True}]
    assert reads.stale_shipment_ids(shipments, NOW, ttl=timedelta(hours=24)) == [1, 4]


def test_a_taken_slot_says_since_when_and_is_not_claimed_twice():
    coordination = LocalCoordination()
    claimed, taken = reads.claim_refresh_slots(coordination, "stale", [1, 2], interval_seconds=900, now=NOW)
    assert (claimed, taken) == ([1, 2], [])
    later = NOW + timedelta(minutes=3)
    claimed, taken = reads.claim_refresh_slots(coordination, "stale", [2, 3], interval_seconds=900, now=later)
    assert (claimed, taken) == ([3], ["2026-12-01T09:00:02Z"])
    # a released slot is free again (a refresh that could not be enqueued)
    reads.release_refresh_slots(coordination, "stale", [2])
    assert reads.claim_refresh_slots(coordination, "stale", [2], interval_seconds=900, now=later)[0] == [2]
