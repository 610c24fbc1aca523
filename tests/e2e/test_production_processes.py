"""The production shape as separate processes: `trackcache serve`, two `trackcache worker`
processes and two `trackcache scheduler` processes (one active, one standby) against PostgreSQL,
Redis and the courier simulator. Shipments registered over HTTP are polled exactly once per due
time: sweeps claim with a lease, so nothing is polled twice."""
from __future__ import annotations

import os
import time

import pytest
import requests

import settings
import models
from models import CourierApiCall, TrackingCache, TrackingUpdateLog
from sim.server import SimulatorConfig, SimulatorServer
from processes import ROOT, free_port, start_cli, stop, wait_until
from services import drop_database, recreate_database
from stacks import clear_namespace

ADMIN = "e2e-admin-token-0123456789"










@pytest.fixture
def deployment(postgres_url, redis_url, tmp_path):
    name = f"trackcache_e2e_processes_{os.getpid()}"
    database_url = recreate_database(name, migrate=True)
    e2e_redis = redis_url
    namespace = f"{settings.get().redis_namespace}-processes"
    clear_namespace(e2e_redis, namespace)
    sim = SimulatorServer(SimulatorConfig(speed=0)).start()
    port = free_port()
    env = {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": e2e_redis, "EASYPARCEL_BASE_URL": sim.url,
           "EASYPARCEL_CLIENT_ID": "demo-client", "EASYPARCEL_CLIENT_SECRET": "demo-secret",
           "TRACKING_ADMIN_TOKENS": ADMIN, "TRACKING_LOG_LEVEL": "warning", "PYTHONPATH": str(ROOT),
           "TRACKING_REDIS_NAMESPACE": namespace}
    log = tmp_path / "processes.log"
    processes = [
        start_cli(env, log, "serve", "--port", str(port)),
        start_cli(env, log, "worker", "--processes", "1", "--threads", "4"),
        start_cli(env, log, "worker", "--processes", "1", "--threads", "4"),
        start_cli(env, log, "scheduler"),
        start_cli(env, log, "scheduler"),
    ]
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _ready(base), timeout=60, what=f"the web app (log: {log})")
        yield base, database_url, sim, log
    finally:
        for process in processes:
            stop(process)
        sim.stop()
        drop_database(name)


def _ready(base: str) -> bool:
    try:
        return requests.get(f"{base}/readyz", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def test_serve_two_workers_and_the_scheduler_poll_each_shipment_once_per_due_time(deployment):
    base, database_url, sim, log = deployment
    headers = {"Authorization": f"Bearer {ADMIN}"}
    # given 30 shipments registered over HTTP (their first poll is due at once), some of which
    # end delivered (never polled again) and some stay pending (next poll in 24 h)
    numbers = [f"EPDEL{i:04d}" for i in range(15)] + [f"EPPND{i:04d}" for i in range(15)]
    for index, number in enumerate(numbers):
        response = requests.post(f"{base}/api/admin/shipments", headers=headers, timeout=10, json={
            "order_id": f"E2E-{index}", "customer_email": f"e2e{index}@example.com",
            "tracking_number": number, "courier": "easyparcel"})
        assert response.status_code == 201, response.text
    # when the active scheduler's every-minute sweep has run at least twice
    db = models.connect(database_url)
    wait_until(lambda: TrackingCache.select().where(TrackingCache.current_status == "delivered").count() == 15,
               timeout=150, what=f"the first sweep's polls (log: {log})")
    first_sweep_calls = CourierApiCall.select().where(CourierApiCall.endpoint.contains("tracking_status")).count()
    time.sleep(65)
    # then every shipment was polled exactly once: one update log each, one courier answer each
    logs = {row.id: TrackingUpdateLog.select().where(TrackingUpdateLog.tracking_cache == row.id).count()
            for row in TrackingCache.select(TrackingCache.id)}
    assert set(logs.values()) == {1}, logs
    tracking_calls = list(CourierApiCall.select().where(CourierApiCall.endpoint.contains("tracking_status")))
    assert sum(call.tracking_numbers_count for call in tracking_calls) == 30
    assert len(tracking_calls) == first_sweep_calls, "a later sweep polled shipments that were not due"
    stats = requests.get(f"{sim.url}/_sim/stats", timeout=5).json()
    print(f"\n{len(tracking_calls)} courier calls for 30 shipments; simulator stats: {stats.get('calls')}")
    db.close()
