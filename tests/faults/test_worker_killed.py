"""kill -9 a worker in the middle of fetching, of persisting, and while it holds the sweep's claims,
under steady webhook and polling load: every accepted webhook and every due poll ends persisted
once, with no manual step (the broker gives the dead worker's messages to the next worker; the
inbox and the claims' leases cover what a broker never had)."""
from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
from deployment import WebhookLoad, tracking_numbers, wait_for_audit
from processes import wait_until
from scales import SCALES

import models
from models import CourierApiCall, TrackingCache, TrackingJob

CLAIM_LEASE_SECONDS = 30


def sweep_blocked_holding_claims(numbers: list[str]) -> int:
    """How many of `numbers` a sweep has claimed while it waits to write their ledger rows (0 while
    no sweep is there yet): the test holds the ledger table, so the sweep has claimed and can
    neither write a job nor enqueue a poll."""
    waiting = models.database.execute_sql(
        "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
        "WHERE c.relname = %s AND NOT l.granted", (TrackingJob._meta.table_name,)).fetchone()[0]
    if not waiting:
        return 0
    return TrackingCache.select().where(TrackingCache.courier_tracking_number.in_(numbers)
                                        & (TrackingCache.claimed_until > datetime.now(UTC))).count()


@pytest.mark.parametrize("scale", SCALES)
def test_workers_killed_mid_fetch_and_mid_persist_lose_nothing(deployment_factory, record, scale):
    from sim.faults import FaultSettings

    # Slow courier calls (0.3-0.6 s) keep batches in fetch when the kill comes; a short claim lease
    # so that the claims of a killed sweep run out within the scenario.
    deployment = deployment_factory(sim_faults=FaultSettings(latency_min=0.3, latency_max=0.6),
                                    extra_env={"TRACKING_CLAIM_LEASE": str(CLAIM_LEASE_SECONDS)}).start(workers=2)
    webhook_numbers = tracking_numbers("KW", scale.shipments)
    polled_numbers = tracking_numbers("KP", scale.shipments * 3)
    deployment.register(webhook_numbers, polled=False)
    payloads = deployment.webhooks_for(webhook_numbers)
    first_half, second_half = payloads[: len(payloads) // 2], payloads[len(payloads) // 2:]
    loads = [WebhookLoad(deployment.webhook_url, first_half, rate=40)]
    # 1. While holding the sweep's claims: hold the ledger table, register the due shipments, and
    # let the scheduler's next sweep claim them and block before any poll exists; kill -9 every
    # worker (the sweep's among them) under webhook load, then let go and start new workers.
    import psycopg2

    models.database.connect(reuse_if_open=True)
    holder = psycopg2.connect(deployment.database_url)  # its own connection: registration must commit
    try:
        holder.cursor().execute(f"LOCK TABLE {TrackingJob._meta.table_name} IN SHARE MODE")
        deployment.register(polled_numbers, polled=True)
        loads[0].start()
        claimed = wait_until(lambda: sweep_blocked_holding_claims(polled_numbers), timeout=150,
                             what="the scheduler's sweep to claim the due shipments")
        claims_end = max(row.claimed_until for row in TrackingCache.select(TrackingCache.claimed_until)
                         .where(TrackingCache.courier_tracking_number.in_(polled_numbers)
                                & TrackingCache.claimed_until.is_null(False)))
        while deployment.processes["worker"]:
            deployment.kill("worker", 0)
    finally:
        holder.rollback()
        holder.close()
    claims_killed_at = time.monotonic()
    assert TrackingJob.select().count() == 0, "the sweep enqueued polls before it was killed"
    deployment.start_worker()
    deployment.start_worker()
    # 2. Once the claims run out, the next sweep polls them: kill a worker as soon as polls are
    # running (mid-fetch: claims held, calls in flight) ...
    loads.append(WebhookLoad(deployment.webhook_url, second_half, rate=40))
    wait_until(lambda: TrackingJob.select().where(TrackingJob.status == models.JOB_RUNNING).count() > 0,
               timeout=CLAIM_LEASE_SECONDS + 150, what="polls to be running once the killed sweep's claims ran out")
    polled_after_claims = time.monotonic() - claims_killed_at
    loads[1].start()
    deployment.kill("worker", 0)
    deployment.start_worker()
    # ... and again a little later, while webhooks are being persisted.
    time.sleep(1.5)
    deployment.kill("worker", 0)
    killed_at = time.monotonic()
    deployment.start_worker()
    for load in loads:
        load.join(timeout=300)
    load = WebhookLoad(deployment.webhook_url, payloads)  # the two halves' answers, for the audit
    load.accepted = loads[0].accepted | loads[1].accepted
    load.statuses = loads[0].statuses + loads[1].statuses
    result, _ = wait_for_audit(deployment, webhook_numbers=webhook_numbers, polled_numbers=polled_numbers,
                               load=load, timeout=240, what="every accepted webhook and due poll to be persisted")
    recovery = time.monotonic() - killed_at
    first_poll = min(call.called_at for call in CourierApiCall.select(CourierApiCall.called_at)
                     .where(CourierApiCall.endpoint.contains("tracking")))
    stuck = TrackingCache.select().where(TrackingCache.courier_tracking_number.in_(polled_numbers)
                                         & (TrackingCache.claimed_until < datetime.now(UTC))
                                         & (TrackingCache.tracking_events == [])).count()
    record(result, scale=scale, load=f"{len(payloads)} webhooks at 40/s + {len(polled_numbers)} due polls; "
                                     "2 workers killed holding the sweep's claims, then one killed mid-fetch "
                                     "and again mid-persist", recovery_seconds=round(recovery, 1), runs=1,
           claims_held_by_killed_sweep=claimed, polled_after_claims_seconds=round(polled_after_claims, 1),
           command="make faults ARGS='-k workers_killed'")
    assert result.lost == 0 and result.duplicated == 0 and result.regressions == 0, result.summary()
    assert result.accepted == result.sent, f"the receiver refused webhooks: {load.statuses}"
    assert claimed == len(polled_numbers)
    assert first_poll >= claims_end, f"polled at {first_poll} while the killed sweep's claims held to {claims_end}"
    assert stuck == 0, f"{stuck} shipments still unpolled past their claim's lease"
    # Polled within the lease plus one sweep period (and a little slack) after the kill.
    assert polled_after_claims < CLAIM_LEASE_SECONDS + 60 + 30, f"claims held {polled_after_claims:.0f} s"
