"""The scheduler survives a real Redis outage (issue 18 point 3). A deployment of `serve`, one
`worker` and two `scheduler` processes runs on a Redis of the test's own; Redis is killed across
a minute boundary while webhooks arrive, then restarted empty. Both schedulers must still be
running, exactly one must hold the lock again and send each minute's sweeps once, and the
webhooks stored during the outage must be re-enqueued by maintenance and processed."""
from __future__ import annotations

import json
import os
import re
import time
from collections import Counter
from datetime import datetime, timezone

import pytest
import requests

import models
import settings
from fixture_files import load_fixture
from models import WebhookInbox
from private_services import PrivateRedis
from processes import ROOT, free_port, start_cli, stop, wait_until
from services import drop_database, recreate_database

SECRETS = {"TRACKING_ADMIN_TOKENS": "outage-admin-token-0123456789", "TRACKING_INTERNAL_API_KEY": "k" * 20,
           "TRACKING_WEBHOOK_SECRET": "outage-webhook-secret-0123", "TRACKING_CUSTOMER_TOKEN_SECRET": "c" * 20,
           "TRACKING_EMAIL_HASH_KEY": "e" * 20}
SENT = re.compile(r"sent (\w+) due at (\S+ \S+)")


@pytest.fixture
def deployment(postgres_url, tmp_path):
    name = f"trackcache_sched_outage_{os.getpid()}"
    database_url = recreate_database(name, migrate=True)
    redis = PrivateRedis().start()
    port = free_port()
    env = {**os.environ, **SECRETS, "PYTHONPATH": str(ROOT), "DATABASE_URL": database_url, "REDIS_URL": redis.url,
           "TRACKING_REDIS_NAMESPACE": "outage", "TRACKING_LOG_LEVEL": "info",
           "TRACKING_MAINTENANCE_CRON": "* * * * *", "EASYPARCEL_BASE_URL": "http://127.0.0.1:9"}
    logs = {name: tmp_path / f"{name}.log" for name in ("serve", "worker", "scheduler-a", "scheduler-b")}
    processes = {
        "serve": start_cli(env, logs["serve"], "serve", "--port", str(port)),
        "worker": start_cli(env, logs["worker"], "worker", "--processes", "1", "--threads", "2"),
        "scheduler-a": start_cli(env, logs["scheduler-a"], "scheduler"),
        "scheduler-b": start_cli(env, logs["scheduler-b"], "scheduler"),
    }
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _ready(base), timeout=60, what=f"the web app (log: {logs['serve']})")
        yield base, redis, processes, logs, database_url
    finally:
        for process in processes.values():
            stop(process)
        redis.stop()
        drop_database(name)


def _ready(base: str) -> bool:
    try:
        return requests.get(f"{base}/readyz", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def _active(logs) -> list[str]:
    return [name for name in ("scheduler-a", "scheduler-b")
            if "this scheduler is the active one" in logs[name].read_text(errors="replace")]


def _sends(logs) -> Counter:
    found: Counter = Counter()
    for name in ("scheduler-a", "scheduler-b"):
        found.update(SENT.findall(logs[name].read_text(errors="replace")))
    return found


def _post_webhook(base: str, index: int) -> requests.Response:
    body = json.loads(load_fixture("easyparcel", "webhook_shipment_awb_update.json"))
    body["uuid"] = f"outage-{index}"
    return requests.post(f"{base}/api/webhooks/easyparcel/{SECRETS['TRACKING_WEBHOOK_SECRET']}",
                         data=json.dumps(body), timeout=10)


def test_the_schedulers_survive_a_redis_outage_and_webhooks_stored_during_it_are_processed(deployment):
    base, redis, processes, logs, database_url = deployment
    # given one active scheduler, one standby, and a minute boundary about 15 s away
    wait_until(lambda: _active(logs), timeout=30, what="a scheduler to take the lock")
    assert len(_active(logs)) == 1
    wait_until(lambda: 40 <= datetime.now(timezone.utc).second < 48, timeout=70, what="second 40 of a minute",
               interval=0.2)
    # when Redis dies, webhooks arrive, and Redis comes back empty 30 s later (after the boundary)
    redis.stop()
    down_at = time.monotonic()
    answers = [_post_webhook(base, index) for index in range(5)]
    assert [a.status_code for a in answers] == [200] * 5, [a.text for a in answers]
    time.sleep(max(0.0, 30 - (time.monotonic() - down_at)))
    assert all(p.poll() is None for p in processes.values()), "a process ended during the outage"
    redis.start()
    # then the stored webhooks are re-enqueued by maintenance and processed
    database = models.open_database(database_url)

    def processed() -> int:
        # (an AWB update carries no tracking data: the pipeline marks it ignored once it has read it)
        with database.bind_ctx([WebhookInbox]):
            return WebhookInbox.select().where(
                WebhookInbox.status.in_([models.INBOX_PROCESSED, models.INBOX_IGNORED])).count()

    wait_until(lambda: processed() == 5, timeout=180, interval=2,
               what=f"the 5 webhooks stored during the outage to be processed (logs: {logs['scheduler-a'].parent})")
    database.close()
    # and both schedulers are still running, exactly one holds the lock, each minute sent once
    assert all(p.poll() is None for p in processes.values())
    import redis as redis_client

    holder = redis_client.Redis.from_url(redis.url).get("outage:scheduler:leader")
    assert holder is not None, "the lock was re-taken after Redis came back empty"
    sends = _sends(logs)
    assert sends and max(sends.values()) == 1, f"a sweep was sent twice for one minute: {sends}"
    for name in ("scheduler-a", "scheduler-b"):
        assert "Traceback" not in logs[name].read_text(errors="replace"), logs[name].read_text()[-3000:]
