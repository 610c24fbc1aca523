"""kill -9 a worker in the middle of fetching, of persisting, and while it holds the sweep's claims,
under steady webhook and polling load: every accepted webhook and every due poll ends persisted
once, with no manual step (the broker gives the dead worker's messages to the next worker; the
inbox's and the sweep's leases cover what a broker never had). A kill is SIGKILL to the whole
`trackcache worker` tree: its supervisor and the Dramatiq processes under it."""
from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
from deployment import WebhookLoad, tracking_numbers, wait_for_audit
from peewee import fn
from processes import wait_until
from scales import SCALES

import models
from models import TrackingCache, TrackingJob

CLAIM_LEASE_SECONDS = 30


def send_poll_sweep() -> None:
    """The scheduler's poll-sweep message, sent now rather than on the next minute (a worker runs it)."""
    from pipeline import actors

    actors.sweep_poll.send()


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


def jobs_of(numbers: list[str]):
    return TrackingJob.select().join(TrackingCache).where(TrackingCache.courier_tracking_number.in_(numbers))


@pytest.mark.parametrize("scale", SCALES)
def test_workers_killed_mid_fetch_and_mid_persist_lose_nothing(deployment_factory, record, scale):
    import psycopg2

    from sim.faults import FaultSettings

    # Slow courier calls (0.3-0.6 s) keep batches in fetch when the kill comes; a short claim lease
    # so that the claims of a killed sweep run out within the scenario.
    deployment = deployment_factory(sim_faults=FaultSettings(latency_min=0.3, latency_max=0.6),
                                    extra_env={"TRACKING_CLAIM_LEASE": str(CLAIM_LEASE_SECONDS)}).start(workers=2)
    webhook_numbers = tracking_numbers("KW", scale.shipments)
    fetched_numbers = tracking_numbers("KP", scale.shipments * 2)  # polls killed mid-fetch / mid-persist
    claimed_numbers = tracking_numbers("KC", scale.shipments)  # claimed by a sweep that is killed
    polled_numbers = fetched_numbers + claimed_numbers
    deployment.register(webhook_numbers, polled=False)
    deployment.register(fetched_numbers, polled=True)
    payloads = deployment.webhooks_for(webhook_numbers)
    loads = [WebhookLoad(deployment.webhook_url, payloads[: len(payloads) // 2], rate=40),
             WebhookLoad(deployment.webhook_url, payloads[len(payloads) // 2:], rate=40)]
    # 1. Kill a worker as soon as polls are running (mid-fetch: claims held, calls in flight) ...
    loads[0].start()
    send_poll_sweep()
    wait_until(lambda: TrackingJob.select().where(TrackingJob.status == models.JOB_RUNNING).count() > 0,
               timeout=120, what="polls to be running")
    deployment.kill("worker", 0)
    deployment.start_worker()
    # ... and again a little later, while webhooks are being persisted.
    time.sleep(1.5)
    deployment.kill("worker", 0)
    deployment.start_worker()
    # 2. While holding the sweep's claims: hold the ledger table, register more due shipments, and
    # let a sweep claim them and block before any poll exists; kill every worker (the sweep's among
    # them) under webhook load, then let go and start new workers. Only the claims' lease (and
    # the scheduler's next sweep) can bring these shipments back.
    models.database.connect(reuse_if_open=True)
    holder = psycopg2.connect(deployment.database_url)  # its own connection: registration must commit
    try:
        holder.cursor().execute(f"LOCK TABLE {TrackingJob._meta.table_name} IN SHARE MODE")
        deployment.register(claimed_numbers, polled=True)
        loads[1].start()
        send_poll_sweep()
        claimed = wait_until(lambda: sweep_blocked_holding_claims(claimed_numbers), timeout=120,
                             what="a sweep to claim the due shipments")
        claims_end = max(row.claimed_until for row in TrackingCache.select(TrackingCache.claimed_until)
                         .where(TrackingCache.courier_tracking_number.in_(claimed_numbers)
                                & TrackingCache.claimed_until.is_null(False)))
        while deployment.processes["worker"]:
            deployment.kill("worker", 0)
        killed_at = time.monotonic()
        killed_at_wall = datetime.now(UTC)
    finally:
        holder.rollback()
        holder.close()
    assert jobs_of(claimed_numbers).count() == 0, "the killed sweep enqueued polls"
    deployment.start_worker()
    deployment.start_worker()
    for load in loads:
        load.join(timeout=300)
    load = WebhookLoad(deployment.webhook_url, payloads)  # both halves' answers, for the audit
    load.accepted = loads[0].accepted | loads[1].accepted
    load.statuses = loads[0].statuses + loads[1].statuses
    result, _ = wait_for_audit(deployment, webhook_numbers=webhook_numbers, polled_numbers=polled_numbers,
                               load=load, timeout=300, what="every accepted webhook and due poll to be persisted")
    recovery = time.monotonic() - killed_at
    models.database.connect(reuse_if_open=True)
    first_job = jobs_of(claimed_numbers).select(fn.MIN(TrackingJob.created_at)).scalar()
    reclaimed_after = (first_job - killed_at_wall).total_seconds()
    record(result, scale=scale, load=f"{len(payloads)} webhooks at 40/s + {len(polled_numbers)} due polls; "
                                     "2 workers, one killed mid-fetch and again mid-persist, then all killed while "
                                     f"a sweep held {claimed} claims (lease {CLAIM_LEASE_SECONDS} s)",
           recovery_seconds=round(recovery, 1), runs=1, claims_held_by_killed_sweep=claimed,
           reclaimed_after_seconds=round(reclaimed_after, 1), command="make faults ARGS='-k workers_killed'")
    assert result.lost == 0 and result.duplicated == 0 and result.regressions == 0, result.summary()
    assert result.accepted == result.sent, f"the receiver refused webhooks: {load.statuses}"
    assert claimed == len(claimed_numbers)
    assert first_job >= claims_end, f"polled at {first_job} while the killed sweep's claims held to {claims_end}"
    # Polled once the lease ran out, at the scheduler's next sweep (every minute), with some slack.
    assert reclaimed_after < CLAIM_LEASE_SECONDS + 60 + 30, f"claims held {reclaimed_after:.0f} s after the kill"
