"""Issue 18 points 1 and 2, as fault scenarios: a webhook backlog that outlasts the maintenance
sweep's attempts must still be processed (never given up while its rows wait in a queue), and a
poison webhook must not sink the good webhooks that travel in its batch."""
from __future__ import annotations

import copy
import time

import pytest
from deployment import WebhookLoad, tracking_numbers, wait_for_audit
from scales import SCALES


def _backlog_reason() -> str:
    return ("issue 18 point 1: rows that only wait in a backlog must never be given up (failed) by the "
            "maintenance sweep")


@pytest.mark.parametrize("scale", SCALES)
def test_a_backlog_outlasting_the_maintenance_attempts_is_still_processed(deployment_factory, record, scale):
    from datetime import timedelta

    from pipeline import runtime, service

    # No worker: every webhook waits in the queue (a backlog).
    deployment = deployment_factory().start(workers=0, scheduler=scale.name == "full")
    numbers = tracking_numbers("IB", scale.shipments)
    deployment.register(numbers, polled=False)
    load = WebhookLoad(deployment.webhook_url, deployment.webhooks_for(numbers), rate=50)
    load.start()
    load.join(timeout=300)
    if scale.name == "full":
        time.sleep(7 * 60)  # the scheduler's maintenance passes every minute, past the 5 attempts
    else:  # the same passes, with the sweep's clock moved on two minutes each time
        now = runtime.current().now()
        for step in range(1, 8):
            service.run_maintenance(now=now + timedelta(minutes=2 * step))
    import models
    from models import WebhookInbox

    given_up = WebhookInbox.select().where(WebhookInbox.status == models.INBOX_FAILED).count()
    assert given_up == 0, f"{_backlog_reason()}: {given_up} of {len(load.accepted)} rows given up"
    started = time.monotonic()
    deployment.start_worker()
    if scale.name == "small":
        deployment.start_scheduler()
    result, _ = wait_for_audit(deployment, webhook_numbers=numbers, load=load, timeout=240,
                                      what="the backlog to be processed once workers run")
    record(result, scale=scale, load=f"{len(load.payloads)} webhooks queued with no worker for 7 maintenance "
                                     "passes", recovery_seconds=round(time.monotonic() - started, 1), runs=1,
           command="make faults ARGS='-k backlog_outlasting'")
    assert result.lost == 0 and result.duplicated == 0


def test_a_poison_webhook_does_not_sink_its_batch(deployment_factory, record):
    from datetime import timedelta

    from scales import SMALL

    from pipeline import runtime, service

    deployment = deployment_factory().start(workers=0, scheduler=False)
    numbers = tracking_numbers("PB", 6)
    deployment.register(numbers, polled=False)
    payloads = deployment.webhooks_for(numbers)
    # A body that is a well-formed webhook but whose text holds a NUL character (JSON "\u0000"),
    # which PostgreSQL cannot store in text or jsonb.
    poison = copy.deepcopy(payloads[0])
    poison["uuid"] = "poison-0000"
    poison["status_log"][0]["tracking_status"] = "Parcel scanned\u0000 at hub"
    poison["latest_tracking_status"] = poison["status_log"][0]["tracking_status"]
    load = WebhookLoad(deployment.webhook_url, [poison, *payloads], rate=50)
    load.start()
    load.join(timeout=120)
    # The good webhooks and the poison now travel together: maintenance re-enqueues them as one batch.
    service.run_maintenance(now=runtime.current().now() + timedelta(minutes=2))
    started = time.monotonic()
    deployment.start_worker()
    good = WebhookLoad(deployment.webhook_url, payloads)
    good.accepted = set(load.accepted) - {"poison-0000"}
    result, _ = wait_for_audit(deployment, webhook_numbers=numbers, load=good, timeout=90,
                               what="the good webhooks of the poison's batch to be processed")
    record(result, scale=SMALL, load=f"{len(payloads)} good webhooks and 1 poison in one batch",
           recovery_seconds=round(time.monotonic() - started, 1), runs=1,
           command="make faults ARGS='-k poison_webhook'")
    assert result.lost == 0
