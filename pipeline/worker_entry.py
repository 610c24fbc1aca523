"""Entry module for the `dramatiq` processes started by `trackcache worker` (the scheduler boots
itself): importing it boots this process (settings, database, broker, actors).
It is the only module that boots on import, because those command lines import a module."""
from __future__ import annotations

import logging

import settings
from pipeline import boot

# Dramatiq configured this process's logging (INFO, or DEBUG with -v); the settings decide.
logging.getLogger().setLevel(settings.get().effective_log_level.upper())
logging.getLogger(__name__).debug("booting a worker process")
booted = boot.boot(settings.get(), with_prometheus=settings.get().worker_metrics_port > 0)
broker = booted.broker
