"""PostgreSQL restarted under load (webhooks, due polls, customer reads): the receiver answers
503 while the database is away (so the courier retries; nothing is acknowledged that was not
stored), reads answer from the read cache or with a JSON 503 (never a 500), every process
reconnects by itself (no restart), and nothing half-written remains."""
from __future__ import annotations

import time
from collections import Counter

import pytest
from deployment import WebhookLoad, tracking_numbers, wait_for_audit
from scales import SCALES
from test_redis_outage import Readers

import models
from models import TrackingCache, TrackingJob

RECOVERY_LIMIT_SECONDS = 240


@pytest.mark.parametrize("mode", ["fast", pytest.param("immediate", marks=pytest.mark.full_scale)])
@pytest.mark.parametrize("scale", SCALES)
def test_postgres_restarted_under_load_loses_nothing(deployment_factory, record, scale, mode):
    deployment = deployment_factory().start(workers=1)
    webhook_numbers = tracking_numbers("PW", scale.shipments)
    polled_numbers = tracking_numbers("PP", scale.shipments * 2)
    deployment.register(webhook_numbers, polled=False)
    deployment.register(polled_numbers, polled=True)
    payloads = deployment.webhooks_for(webhook_numbers)
    rate = max(2.0, len(payloads) / (scale.outage_seconds * 3))
    load = WebhookLoad(deployment.webhook_url, payloads, rate=rate)
    readers = Readers(deployment.base_url, webhook_numbers)
    readers.start()
    load.start()
    time.sleep(scale.outage_seconds)
    models.database.close()
    before, reads_before = Counter(load.statuses), Counter(readers.statuses)
    deployment.pg.stop(mode)
    time.sleep(scale.outage_seconds)
    during, reads_during = Counter(load.statuses) - before, Counter(readers.statuses) - reads_before
    deployment.pg.start()
    back_at = time.monotonic()
    load.join(timeout=600)
    result, _ = wait_for_audit(deployment, webhook_numbers=webhook_numbers, polled_numbers=polled_numbers,
                               load=load, timeout=RECOVERY_LIMIT_SECONDS + 60,
                               what="every webhook and poll to be persisted after PostgreSQL returned")
    recovery = time.monotonic() - back_at
    readers.stopping.set()
    readers.join()
    # Nothing half-written: no ledger job left running, no claim held, every shipment readable.
    models.database.connect(reuse_if_open=True)
    wait_for_quiet = time.monotonic() + 120
    while time.monotonic() < wait_for_quiet and TrackingJob.select().where(
            TrackingJob.status.in_([models.JOB_PENDING, models.JOB_RUNNING])).count():
        time.sleep(2)
    open_jobs = TrackingJob.select().where(TrackingJob.status.in_([models.JOB_PENDING, models.JOB_RUNNING])).count()
    record(result, scale=scale, load=f"{len(payloads)} webhooks at {rate:.0f}/s + {len(polled_numbers)} due polls, "
                                     f"guest reads at 5/s; PostgreSQL stopped ({mode}) {scale.outage_seconds:.0f} s",
           recovery_seconds=round(recovery, 1), runs=1, webhook_answers_during_outage=dict(during),
           reads_during_outage=dict(reads_during), command=f"make faults ARGS='-k postgres_restarted and {mode}'")
    assert set(during) <= {"503", "200"}, f"the receiver answered other than 503 in the outage: {dict(during)}"
    assert during.get("503", 0) > 0, f"no webhook was refused with 503 in the outage: {dict(during)}"
    assert set(reads_during) <= {"200", "503"}, f"reads failed badly in the outage: {dict(reads_during)}"
    assert result.lost == 0 and result.duplicated == 0 and result.regressions == 0, result.summary()
    assert recovery <= RECOVERY_LIMIT_SECONDS
    assert open_jobs == 0, f"{open_jobs} ledger jobs left pending or running"
    assert TrackingCache.select().where(TrackingCache.courier_tracking_number.in_(polled_numbers)
                                        & TrackingCache.claimed_until.is_null(False)
                                        & (TrackingCache.claimed_until > models.utcnow())).count() == 0
    alive = {kind: len(deployment.alive(kind)) for kind in ("serve", "worker", "scheduler")}
    assert alive == {"serve": 1, "worker": 1, "scheduler": 1}, f"a process died with PostgreSQL: {alive}"
