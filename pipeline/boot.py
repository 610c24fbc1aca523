"""Boot code shared by every process (web, worker, scheduler, dev): connect the database, build
the runtime and the broker from settings, and declare the actors. Nothing here runs at import."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import dramatiq

import models
import settings as settings_module
from pipeline import broker as broker_module
from pipeline import runtime

logger = logging.getLogger(__name__)


@dataclass
class Booted:
    config: settings_module.Settings
    runtime: runtime.Runtime
    broker: dramatiq.Broker
    worker: Any = None  # the in-process worker of the embedded mode, if started


def boot(config: settings_module.Settings | None = None, *, migrate: bool = False, max_connections: int = 20,
         with_prometheus: bool = False, **runtime_overrides: Any) -> Booted:
    """Connect everything for these settings (default: the process's settings)."""
    config = config or settings_module.get()
    settings_module.use(config)
    db = models.connect(config.database_url, max_connections=max_connections)
    if migrate:
        import migrations

        applied = migrations.migrate(db)
        if applied:
            logger.info("applied migrations %s", ", ".join(applied))
        db.close()
    rt = runtime.install(runtime.build(config, **runtime_overrides))
    assert rt is not None
    broker = broker_module.install(broker_module.build_broker(config, with_prometheus=with_prometheus))
    import pipeline.actors  # noqa: F401  (declares the actors on the installed broker)

    return Booted(config=config, runtime=rt, broker=broker)


def start_embedded_worker(booted: Booted, *, threads: int = 4) -> Any:
    """Run an in-process Dramatiq worker on the stub broker (embedded mode)."""
    worker = dramatiq.Worker(booted.broker, worker_threads=threads, worker_timeout=100)
    worker.start()
    booted.worker = worker
    return worker


def stop(booted: Booted) -> None:
    """Stop the in-process worker (if any), close the broker and the database."""
    if booted.worker is not None:
        booted.worker.stop(timeout=10_000)
        booted.worker = None
    broker_module.close(booted.broker)
    booted.runtime.close()
    if models.database.obj is not None:
        models.database.close()
        close_all = getattr(models.database.obj, "close_all", None)
        if close_all:
            close_all()


