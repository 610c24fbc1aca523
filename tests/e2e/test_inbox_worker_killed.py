"""A `trackcache worker` killed with SIGKILL in the middle of an inbox batch loses nothing and
duplicates nothing: its claimed rows go to the next drain once their lease ends, and every event
ends stored exactly once (PostgreSQL, Redis, real worker processes)."""
from __future__ import annotations

import json
import os
import signal
import time
from datetime import datetime, timedelta, timezone

import pytest

import models
import settings
from models import TrackingCache, WebhookInbox
from processes import ROOT, start_cli, stop, wait_until
from services import drop_database, recreate_database
from stacks import clear_namespace

SHIPMENTS = 100
WEBHOOKS = 3000  # 30 new events per shipment, under the 50-event history cap


def easyparcel_webhook(number: str, sequence: int) -> str:
    """An EasyParcel shipment.tracking.update carrying one new scan (webhook_shipment_tracking_update.json)."""
    at = (datetime(2026, 11, 1, tzinfo=timezone.utc) + timedelta(minutes=sequence)).strftime("%Y-%m-%d %H:%M:%S")
    return json.dumps({"topic": "shipment.tracking.update", "uuid": f"kill-{number}-{sequence}", "timestamp": at,
                       "awb_number": number, "status_log": [
                           {"timestamp": at, "shipment_status_code": 3, "tracking_status": f"Scan {sequence}"}]})


@pytest.fixture
def database(postgres_url, redis_url):
    name = f"trackcache_e2e_kill_{os.getpid()}"
    url = recreate_database(name, migrate=True)
    namespace = f"{settings.get().redis_namespace}-kill"
    clear_namespace(redis_url, namespace)
    db = models.connect(url)
    yield url, redis_url, namespace
    db.close()
    clear_namespace(redis_url, namespace)
    drop_database(name)


def claimed_now() -> int:
    now = datetime.now(timezone.utc)
    return WebhookInbox.select().where((WebhookInbox.status == models.INBOX_PENDING)
                                       & (WebhookInbox.claimed_until > now)).count()


def processed() -> int:
    return WebhookInbox.select().where(WebhookInbox.status == models.INBOX_PROCESSED).count()


def test_a_worker_killed_mid_batch_loses_and_duplicates_nothing(database, tmp_path):
    url, redis_url, namespace = database
    env = {**os.environ, "DATABASE_URL": url, "REDIS_URL": redis_url, "TRACKING_REDIS_NAMESPACE": namespace,
           "EASYPARCEL_CLIENT_ID": "demo-client", "EASYPARCEL_CLIENT_SECRET": "demo-secret",
           "EASYPARCEL_BASE_URL": "http://127.0.0.1:9", "TRACKING_ADMIN_TOKENS": "kill-admin-token-0123456789",
           "TRACKING_LOG_LEVEL": "warning", "PYTHONPATH": str(ROOT), "TRACKING_INBOX_LEASE": "5",
           "TRACKING_INBOX_BATCH_SIZE": "200"}
    # given 100 shipments and 3,000 accepted webhooks, each a new scan
    now = datetime.now(timezone.utc)
    numbers = [f"EPKILL{i:04d}" for i in range(SHIPMENTS)]
    models.Order.insert_many([{"id": f"K-{i}", "customer_email_hash": "x", "created_at": now}
                              for i in range(SHIPMENTS)]).execute()
    TrackingCache.insert_many([{"order": f"K-{i}", "courier_tracking_number": number, "courier_service": "easyparcel",
                                "tracking_events": [], "next_update_due": now + timedelta(days=1)}
                               for i, number in enumerate(numbers)]).execute()
    WebhookInbox.insert_many([{"courier": "easyparcel", "external_event_id": f"kill-{i}", "status": "pending",
                               "raw_body": easyparcel_webhook(numbers[i % SHIPMENTS], i // SHIPMENTS),
                               "received_at": now} for i in range(WEBHOOKS)]).execute()
    log = tmp_path / "worker.log"
    worker = start_cli(env, log, "worker", "--processes", "1", "--threads", "4")
    try:
        send_drains(env, 4)
        # when the worker is killed with SIGKILL while it holds claimed rows (a batch in flight)
        wait_until(lambda: processed() > 0 and claimed_now() > 0, timeout=90, interval=0.02,
                   what=f"a batch in flight (log: {log})")
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(timeout=10)
        at_kill = processed()
        assert at_kill < WEBHOOKS, "everything finished before the kill; the test proves nothing"
        # and a new worker starts, and the maintenance sweep finds the stranded rows
        worker = start_cli(env, log, "worker", "--processes", "1", "--threads", "4")
        time.sleep(6)  # the dead worker's lease (5 s) ends
        send_drains(env, 4, sweep=True)
        wait_until(lambda: processed() == WEBHOOKS, timeout=180, what=f"every webhook processed (log: {log})")
    finally:
        stop(worker)
    # then every event is stored exactly once: 30 per shipment, none lost, none twice
    counts = {row.courier_tracking_number: len(row.tracking_events) for row in TrackingCache.select()}
    assert set(counts.values()) == {WEBHOOKS // SHIPMENTS}, counts
    texts = [[e["raw_text"] for e in row.tracking_events] for row in TrackingCache.select()]
    assert all(len(set(t)) == len(t) for t in texts)
    assert WebhookInbox.select().where(WebhookInbox.status != models.INBOX_PROCESSED).count() == 0
    print(f"\nkilled with {WEBHOOKS - at_kill} of {WEBHOOKS} webhooks unprocessed; all {WEBHOOKS} stored once after")


def send_drains(env: dict[str, str], count: int, *, sweep: bool = False) -> None:
    """Send drain messages (or run the maintenance sweep's inbox step) from a short process."""
    code = ("import dataclasses, settings; from pipeline import boot, service, actors;"
            "b = boot.boot(settings.get());"
            + ("from datetime import datetime, timedelta, timezone;"
               "print(service.run_maintenance(now=datetime.now(timezone.utc) + timedelta(minutes=2)));" if sweep else
               f"[actors.enqueue_drain() for _ in range({count})];")
            + "boot.stop(b)")
    import subprocess
    import sys

    subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, check=True, timeout=60)
