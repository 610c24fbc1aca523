"""Two schedulers and overlapping sweeps: two `trackcache scheduler` processes, and sweeps run
from several threads at the same moment besides: no shipment is polled twice for one due time
(the sweep claims its rows with FOR UPDATE SKIP LOCKED and a lease)."""
from __future__ import annotations

import threading

import pytest
from deployment import Audit, sleep_past_next_minute, tracking_numbers, wait_for_audit
from scales import SCALES

import models
from models import CourierApiCall


@pytest.mark.parametrize("scale", SCALES)
def test_two_schedulers_and_overlapping_sweeps_poll_each_due_shipment_once(deployment_factory, record, scale):
    from pipeline import service

    deployment = deployment_factory().start(workers=2, scheduler=False)
    numbers = tracking_numbers("TS", scale.shipments * 5)
    deployment.register(numbers, polled=True)
    deployment.start_scheduler()
    deployment.start_scheduler()
    # Meanwhile, sweeps from four threads at once (as if more schedulers ran without the lock).
    barrier = threading.Barrier(4)
    claimed: list[int] = []

    def sweep() -> None:
        barrier.wait()
        claimed.append(service.run_poll_sweep())
        models.database.close()

    threads = [threading.Thread(target=sweep) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    result, recovery = wait_for_audit(deployment, polled_numbers=numbers, timeout=240,
                                      what="every due shipment to be polled")
    sleep_past_next_minute()  # the next sweep comes and goes (and every retry would have run)
    models.database.connect(reuse_if_open=True)
    polled = sum(call.tracking_numbers_count for call in
                 CourierApiCall.select().where(~CourierApiCall.endpoint.endswith("oauth/token")))
    duplicated_polls = polled - len(numbers)
    result = Audit(**{**result.__dict__, "duplicated": result.duplicated + max(0, duplicated_polls)})
    alive_schedulers = len(deployment.alive("scheduler"))
    record(result, scale=scale, load=f"{len(numbers)} due shipments; 2 scheduler processes + 4 sweeps at once",
           recovery_seconds=round(recovery, 1), runs=1, numbers_polled=polled, sweeps_claimed=claimed,
           command="make faults ARGS='-k two_schedulers'")
    assert polled == len(numbers), f"{polled} numbers polled for {len(numbers)} due shipments"
    assert sum(claimed) <= len(numbers)
    assert result.lost == 0 and result.duplicated == 0, result.summary()
    assert alive_schedulers == 2, "the standby scheduler ended"
