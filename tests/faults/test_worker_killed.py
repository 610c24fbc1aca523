"""kill -9 a worker in the middle of fetching, of persisting, and while it holds the sweep's claims,
under steady webhook and polling load: every accepted webhook and every due poll ends persisted
once, with no manual step (the broker gives the dead worker's messages to the next worker; the
inbox and the claims cover what a broker drops)."""
from __future__ import annotations

import time

import pytest
from deployment import WebhookLoad, tracking_numbers, wait_for_audit
from processes import wait_until
from scales import SCALES

import models
from models import TrackingJob


@pytest.mark.parametrize("scale", SCALES)
def test_workers_killed_mid_fetch_and_mid_persist_lose_nothing(deployment_factory, record, scale):
    from sim.faults import FaultSettings

    # Slow courier calls (0.3-0.6 s) keep batches in fetch when the kill comes.
    deployment = deployment_factory(sim_faults=FaultSettings(latency_min=0.3, latency_max=0.6)).start(workers=2)
    webhook_numbers = tracking_numbers("KW", scale.shipments)
    polled_numbers = tracking_numbers("KP", scale.shipments * 3)
    deployment.register(webhook_numbers, polled=False)
    deployment.register(polled_numbers, polled=True)
    load = WebhookLoad(deployment.webhook_url, deployment.webhooks_for(webhook_numbers), rate=40)
    load.start()
    # Kill a worker as soon as polls are running (mid-fetch: claims held, calls in flight) ...
    wait_until(lambda: TrackingJob.select().where(TrackingJob.status == models.JOB_RUNNING).count() > 0,
               timeout=120, what="polls to be running")
    deployment.kill("worker", 0)
    deployment.start_worker()
    # ... and again a little later, while webhooks are being persisted.
    time.sleep(1.5)
    deployment.kill("worker", 0)
    killed_at = time.monotonic()
    deployment.start_worker()
    load.join(timeout=300)
    result, _ = wait_for_audit(deployment, webhook_numbers=webhook_numbers, polled_numbers=polled_numbers,
                               load=load, timeout=240, what="every accepted webhook and due poll to be persisted")
    recovery = time.monotonic() - killed_at
    record(result, scale=scale, load=f"{len(load.payloads)} webhooks at 40/s + {len(polled_numbers)} due polls; "
                                     "2 workers, one killed twice", recovery_seconds=round(recovery, 1),
           runs=1, command="make faults ARGS='-k workers_killed'")
    assert result.lost == 0 and result.duplicated == 0 and result.regressions == 0, result.summary()
    assert result.accepted == result.sent, f"the receiver refused webhooks: {load.statuses}"
