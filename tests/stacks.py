"""The pipeline stack for tests: a database, a broker, a real Dramatiq worker and the fake courier
(or the real client), in the two shapes the service runs in: embedded (SQLite, in-process broker)
and production (PostgreSQL, Redis)."""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any, Callable

import migrations
import models
import settings
from pipeline import broker as broker_module
from pipeline import runtime
from pipeline.couriers.fake import FakeCourierClient


@dataclass
class Stack:
    kind: str
    config: settings.Settings
    broker: Any
    worker: Any
    courier: FakeCourierClient
    runtime: runtime.Runtime

    def wait_for(self, condition: Callable[[], Any], *, timeout: float = 30.0, what: str = "condition") -> Any:
        """Poll until `condition()` is truthy (the worker runs in the background)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = condition()
            if value:
                return value
            if self.kind == "embedded":
                drain(self.broker, self.worker, timeout=0.5)
            else:
                time.sleep(0.1)
        raise AssertionError(f"timed out after {timeout}s waiting for {what}")

    def settle(self) -> None:
        """Run until every queue is empty (embedded) or briefly wait (Redis)."""
        if self.kind == "embedded":
            drain(self.broker, self.worker, timeout=20)


def drain(broker: Any, worker: Any, *, timeout: float) -> None:
    """Join every queue of an in-process broker until nothing is left or `timeout` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pending = sum(q.qsize() for q in broker.queues.values()) + sum(q.unfinished_tasks for q in broker.queues.values())
        if pending == 0:
            worker.join()
            if sum(q.unfinished_tasks for q in broker.queues.values()) == 0:
                return
        time.sleep(0.02)


def clear_namespace(redis_url: str, namespace: str) -> None:
    """Delete this test session's Redis keys (never the whole database: other sessions use it)."""
    from pipeline.coordination import RedisCoordination

    store = RedisCoordination(redis_url, prefix=f"{namespace}:")
    store.delete_namespace()
    store.close()


def build_stack(kind: str, database_url: str, redis_url: str, *, real_courier: bool = False, **overrides: Any):
    import dramatiq

    config = dataclasses.replace(
        settings.get(), database_url=database_url, redis_url=redis_url if kind == "redis" else "",
        retry_delays=(1, 1, 1), jitter_percent=0, **overrides)
    previous = settings.get()
    settings.use(config)
    db = models.connect(database_url)
    db.connect(reuse_if_open=True)
    migrations.migrate(db)
    tables = [m._meta.table_name for m in models.ALL_MODELS]
    if models.is_postgres(db):
        db.execute_sql(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE")
    else:
        for table in reversed(tables):
            db.execute_sql(f"DELETE FROM {table}")
    db.close()
    if kind == "redis":
        clear_namespace(redis_url, config.redis_namespace)
    courier = FakeCourierClient()
    factory = None if real_courier else (lambda name, cfg: courier)
    rt = runtime.install(runtime.build(config, client_factory=factory))
    broker = broker_module.install(broker_module.build_broker(config))
    worker = dramatiq.Worker(broker, worker_threads=4, worker_timeout=50)
    worker.start()
    stack = Stack(kind=kind, config=config, broker=broker, worker=worker, courier=courier, runtime=rt)

    def stop() -> None:
        worker.stop(timeout=10_000)
        broker_module.close(broker)
        rt.close()
        runtime.install(None)
        settings.use(previous)
        broker_module.install(broker_module.build_broker(previous))
        models.database.close()
        if hasattr(models.database.obj, "close_all"):
            models.database.obj.close_all()

    return stack, stop
