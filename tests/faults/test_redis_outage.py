"""Redis stopped (SIGKILL) and restarted empty, as a Redis without persistence restarts, while
webhooks keep arriving and customers keep reading: the receiver keeps answering 200 (the inbox
is in PostgreSQL), reads keep working from PostgreSQL, workers and the scheduler reconnect by
themselves, and after Redis returns every inbox row is processed within a stated time."""
from __future__ import annotations

import threading
import time
from collections import Counter

import pytest
import requests
from deployment import WebhookLoad, tracking_numbers, wait_for_audit
from scales import SCALES

# Stated in RELIABILITY.md: after Redis returns, every inbox row is processed within this time
# (the inbox grace of 60 s plus a maintenance sweep a minute, plus the pipeline).
RECOVERY_LIMIT_SECONDS = 240


class Readers(threading.Thread):
    """Guests reading their orders every 0.2 s; the status codes they got."""

    def __init__(self, base_url: str, numbers: list[str]) -> None:
        super().__init__(name="readers", daemon=True)
        self.base_url, self.numbers = base_url, numbers
        self.statuses: Counter[str] = Counter()
        self.stopping = threading.Event()

    def run(self) -> None:
        session = requests.Session()
        index = 0
        while not self.stopping.wait(0.2):
            number = self.numbers[index % len(self.numbers)]
            index += 1
            try:
                response = session.get(f"{self.base_url}/api/customer/track-order",
                                       params={"order_id": f"ORD-{number}", "email": f"{number.lower()}@example.com"},
                                       timeout=10)
                self.statuses[str(response.status_code)] += 1
            except requests.RequestException as error:
                self.statuses[type(error).__name__] += 1
        session.close()


@pytest.mark.parametrize("scale", SCALES)
def test_redis_lost_and_restarted_empty_loses_no_webhook(deployment_factory, record, scale):
    deployment = deployment_factory().start(workers=1)
    webhook_numbers = tracking_numbers("RW", scale.shipments)
    deployment.register(webhook_numbers, polled=False)
    payloads = deployment.webhooks_for(webhook_numbers)
    # The webhooks arrive over about three outages' length: before, during and after it.
    rate = max(2.0, len(payloads) / (scale.outage_seconds * 3))
    load = WebhookLoad(deployment.webhook_url, payloads, rate=rate)
    readers = Readers(deployment.base_url, webhook_numbers)
    readers.start()
    load.start()
    # Watch the scheduler: were it to end itself with Redis (issue 18 point 3), it would be
    # restarted as a supervisor would, so the rest of the recovery is still measured, and the
    # scenario fails below.
    stop_supervising = deployment.supervise("scheduler")
    time.sleep(scale.outage_seconds)
    before = Counter(load.statuses)
    deployment.redis.stop()
    reads_before = Counter(readers.statuses)
    time.sleep(scale.outage_seconds)
    during = Counter(load.statuses) - before
    reads_during = Counter(readers.statuses) - reads_before
    deployment.redis.start()
    back_at = time.monotonic()
    load.join(timeout=600)
    result, _ = wait_for_audit(deployment, webhook_numbers=webhook_numbers, load=load,
                               timeout=RECOVERY_LIMIT_SECONDS + 60,
                               what="every inbox row to be processed after Redis returned")
    recovery = time.monotonic() - back_at
    scheduler_died = stop_supervising() > 0
    readers.stopping.set()
    readers.join()
    record(result, scale=scale, load=f"{len(payloads)} webhooks at {rate:.0f}/s, guest reads at 5/s; Redis down "
                                     f"{scale.outage_seconds:.0f} s, back empty", recovery_seconds=round(recovery, 1),
           runs=1, webhook_answers_during_outage=dict(during), reads_during_outage=dict(reads_during),
           command="make faults ARGS='-k redis_lost'",
           note="the scheduler ended itself and was restarted as by a supervisor" if scheduler_died else "")
    assert set(during) <= {"200"}, f"the receiver did not answer 200 during the outage: {dict(during)}"
    assert sum(during.values()) > 0, "no webhook arrived during the outage"
    assert set(reads_during) <= {"200"}, f"reads failed during the outage: {dict(reads_during)}"
    assert result.lost == 0 and result.duplicated == 0 and result.regressions == 0, result.summary()
    assert recovery <= RECOVERY_LIMIT_SECONDS
    alive = {kind: len(deployment.alive(kind)) for kind in ("serve", "worker", "scheduler")}
    assert alive == {"serve": 1, "worker": 1, "scheduler": 1}, f"a process died with Redis: {alive}"
    assert not scheduler_died, ("issue 18 point 3: `trackcache scheduler` ended itself when Redis went away "
                                "and had to be restarted")
