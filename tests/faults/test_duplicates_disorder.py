"""Duplicates and disorder: every webhook body sent one to three times, all shuffled, mixed with
polls of the same shipments: each event stored exactly once, no status going backwards, and the
final status the simulator's ground truth says."""
from __future__ import annotations

import time

import pytest
from deployment import WebhookLoad, shuffled_with_duplicates, tracking_numbers, wait_for_audit
from scales import SCALES
from test_courier_storm import FAST_SCHEDULE


@pytest.mark.parametrize("scale", SCALES)
def test_duplicated_shuffled_webhooks_and_polls_store_each_event_once(deployment_factory, record, scale):
    # Full scale: about 10,000 distinct webhook bodies (each shipment has about 7.5 visible events).
    shipments = 20 if scale.name == "small" else 1340
    deployment = deployment_factory(extra_env=FAST_SCHEDULE).start(workers=2)
    numbers = tracking_numbers("DD", shipments)
    deployment.register(numbers, polled=True)
    payloads = deployment.webhooks_for(numbers)
    sent = shuffled_with_duplicates(payloads, seed=11)
    load = WebhookLoad(deployment.webhook_url, sent, rate=200)
    started = time.monotonic()
    load.start()
    load.join(timeout=1800)
    sent_for = time.monotonic() - started
    result, _ = wait_for_audit(deployment, webhook_numbers=numbers, polled_numbers=numbers, load=load,
                               timeout=300, what="every event stored once with the right final status")
    record(result, scale=scale, load=f"{len(payloads)} distinct webhooks sent {len(sent)} times, shuffled, in "
                                     f"{sent_for:.0f} s; {shipments} shipments polled every minute meanwhile",
           recovery_seconds=round(time.monotonic() - started - sent_for, 1), runs=1,
           command="make faults ARGS='-k duplicated_shuffled'")
    assert result.duplicated == 0 and result.regressions == 0 and result.wrong_final == 0, result.summary()
    assert result.lost == 0 and result.accepted == result.sent, result.summary()
