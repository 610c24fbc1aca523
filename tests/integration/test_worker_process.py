"""Real worker processes (`trackcache worker`) against PostgreSQL, Redis and the courier
simulator: a worker killed with SIGKILL mid-batch loses nothing, because a restarted worker gets
its unacknowledged messages back from Redis and the merge is idempotent."""
from __future__ import annotations

import os
import signal

import pytest

import migrations
import models
import settings
from models import TrackingCache, TrackingJob
from sim.faults import FaultSettings
from sim.server import SimulatorConfig, SimulatorServer
from processes import ROOT, start_cli, stop, wait_until
from stacks import clear_namespace



def process_env(database_url: str, redis_url: str, sim_url: str, **extra: str) -> dict[str, str]:
    env = {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": redis_url, "EASYPARCEL_BASE_URL": sim_url,
           "EASYPARCEL_CLIENT_ID": "demo-client", "EASYPARCEL_CLIENT_SECRET": "demo-secret",
           "TRACKING_JOB_BATCH_SIZE": "5", "TRACKING_MAX_CONCURRENT": "3", "TRACKING_LOG_LEVEL": "warning",
           "PYTHONPATH": str(ROOT), "dramatiq_restart_delay": "1000"}
    env.update(extra)
    return env








@pytest.fixture
def production(postgres_url, redis_url):
    """A clean database and Redis, the simulator (0.4-0.8 s per call), and booted models."""
    import dataclasses

    from pipeline import boot

    db = models.connect(postgres_url)
    migrations.migrate(db)
    tables = [m._meta.table_name for m in models.ALL_MODELS]
    db.execute_sql(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE")
    clear_namespace(redis_url, settings.get().redis_namespace)
    sim = SimulatorServer(SimulatorConfig(speed=0, faults=FaultSettings(latency_min=0.4, latency_max=0.8))).start()
    previous = settings.get()
    config = dataclasses.replace(previous, database_url=postgres_url, redis_url=redis_url,
                                 easyparcel_base_url=sim.url, easyparcel_client_id="demo-client",
                                 easyparcel_client_secret=settings.Secret("demo-secret"), job_batch_size=5)
    booted = boot.boot(config)
    yield config, sim
    boot.stop(booted)
    sim.stop()
    settings.use(previous)
    from pipeline import broker as broker_module

    broker_module.install(broker_module.build_broker(previous))


def test_a_worker_killed_mid_batch_loses_nothing(production, tmp_path):
    from pipeline import service
    from pipeline.registration import ShipmentRegistration

    config, sim = production
    # given 60 registered shipments, polled in 12 batches of 5
    service.register_many([(ShipmentRegistration(f"KILL-{i}", "k@example.com", f"EPDEL{i:05d}", "easyparcel"), None)
                           for i in range(60)])
    assert service.run_poll_sweep() == 60
    env = process_env(config.database_url, config.redis_url, sim.url)
    # when a worker is killed with SIGKILL while batches are in flight
    log = tmp_path / "workers.log"
    first = start_cli(env, log, "worker", "--processes", "1", "--threads", "4")
    try:
        wait_until(lambda: TrackingJob.select().where(TrackingJob.status == models.JOB_COMPLETED).count() >= 5,
                   timeout=60, what="the first worker to finish some batches")
        running = TrackingJob.select().where(TrackingJob.status == models.JOB_RUNNING).count()
    finally:
        stop(first, signal.SIGKILL)
    done_at_kill = TrackingJob.select().where(TrackingJob.status == models.JOB_COMPLETED).count()
    assert done_at_kill < 60, "the worker finished everything before it was killed"
    # then a restarted worker finishes every batch: every shipment polled, no job left behind
    second = start_cli(env, log, "worker", "--processes", "1", "--threads", "4")
    try:
        wait_until(lambda: TrackingCache.select().where(TrackingCache.current_status == "delivered").count() == 60,
                   timeout=150, what=f"every shipment to be delivered after the restart (log: {log})")
        wait_until(lambda: TrackingJob.select().where(TrackingJob.status == models.JOB_COMPLETED).count() == 60,
                   timeout=30, what="every ledger job to complete")
    finally:
        stop(second)
    assert TrackingCache.select().where(TrackingCache.claimed_until.is_null(False)).count() == 0
    print(f"\nkilled with {running} jobs running and {done_at_kill}/60 done; the restarted worker finished the rest")


def test_worker_metrics_are_reachable_on_the_configured_port_and_count_the_pipeline(production, tmp_path):
    import re
    import urllib.request

    from pipeline import service
    from pipeline.registration import ShipmentRegistration
    from processes import free_port

    config, sim = production
    # given a worker with TRACKING_WORKER_METRICS_PORT set and shipments to poll
    service.register_many([(ShipmentRegistration(f"MET-{i}", "m@example.com", f"EPDEL{i:05d}", "easyparcel"), None)
                           for i in range(5)])
    port = free_port()
    env = process_env(config.database_url, config.redis_url, sim.url, TRACKING_WORKER_METRICS_PORT=str(port),
                      TRACKING_JOB_BATCH_SIZE="5")
    log = tmp_path / "metrics-worker.log"
    worker = start_cli(env, log, "worker", "--processes", "2", "--threads", "2")
    try:
        # when the sweep polls them through the worker
        assert service.run_poll_sweep() == 5
        wait_until(lambda: TrackingCache.select().where(TrackingCache.current_status == "delivered").count() == 5,
                   timeout=60, what=f"the polls (log: {log})")

        def scrape() -> str:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
                return answer.read().decode()

        # then the worker's exporter answers with Dramatiq's figures and the pipeline's counters
        text = wait_until(lambda: (t := scrape()) and "trackcache_updates_persisted_total{" in t and t,
                          timeout=30, what=f"the pipeline counters on the worker exporter (log: {log})")
    finally:
        stop(worker)
    persisted = re.search(r'^trackcache_updates_persisted_total\{trigger="scheduled"\} (\S+)$', text, re.MULTILINE)
    assert persisted and float(persisted.group(1)) == 5.0, text
    assert re.search(r'^dramatiq_messages_total\{actor_name="persist_scheduled"', text, re.MULTILINE), text
