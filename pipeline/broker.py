"""Builds the Dramatiq broker from settings (Redis in production, or RabbitMQ when
TRACKING_BROKER_URL is an amqp:// URL; the in-process stub broker in the embedded mode) with the middleware the pipeline relies on. Imported before any actor: at
import it installs a broker for the current settings, and `install()` swaps it later (boot code,
tests), re-binding every actor of the pipeline."""
from __future__ import annotations

import logging
from typing import Any

import dramatiq
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import CurrentMessage, Middleware
from periodiq import PeriodiqMiddleware

import settings
from pipeline.lanes import LANES, WEBHOOK

logger = logging.getLogger(__name__)

# How long a dead worker's messages wait before another worker requeues them (Redis broker).
HEARTBEAT_TIMEOUT_MS = 20_000
# Out of a million Redis commands, how many also run queue maintenance (requeue of dead workers'
# messages); higher than Dramatiq's default so a killed worker's batch comes back sooner.
MAINTENANCE_CHANCE = 20_000

_actors: list[dramatiq.Actor] = []


class EndPipelineOnNone(Middleware):
    """A stage that returns None has nothing to pass on: the rest of its pipeline is dropped.

    Dramatiq's Pipelines middleware always sends the next stage; this middleware runs before it
    (after-hooks run in reverse order of registration) and removes the pipe target."""

    def after_process_message(self, broker: dramatiq.Broker, message: Any, *, result: Any = None,
                              exception: BaseException | None = None) -> None:
        if exception is None and result is None:
            message.options.pop("pipe_target", None)


class DatabaseConnections(Middleware):
    """Give each message a database connection and hand it back (to the pool) afterwards."""

    def after_process_message(self, broker: dramatiq.Broker, message: Any, *, result: Any = None,
                              exception: BaseException | None = None) -> None:
        self._release()

    def after_skip_message(self, broker: dramatiq.Broker, message: Any) -> None:
        self._release()

    @staticmethod
    def _release() -> None:
        import models

        if models.database.obj is not None and not models.database.is_closed():
            if models.database.in_transaction():  # an actor must never leave one open
                models.database.rollback()
            models.database.close()


def build_broker(config: settings.Settings, *, with_prometheus: bool = False) -> dramatiq.Broker:
    """A broker for these settings, every lane's queue declared."""
    broker: dramatiq.Broker
    if config.uses_rabbitmq:
        # Durable queues, persistent messages, publisher confirms: a queued message survives a
        # broker restart, and a dead worker's unacknowledged messages return at once.
        from dramatiq.brokers.rabbitmq import RabbitmqBroker

        logging.getLogger("pika").setLevel(logging.WARNING)  # its INFO lines narrate every connection
        broker = RabbitmqBroker(url=config.broker_url, confirm_delivery=True)
    elif config.broker_url or config.redis_url:
        from dramatiq.brokers.redis import RedisBroker

        broker = RedisBroker(url=config.broker_url or config.redis_url, namespace=config.redis_namespace,
                             heartbeat_timeout=HEARTBEAT_TIMEOUT_MS, maintenance_chance=MAINTENANCE_CHANCE)
    else:
        broker = StubBroker()
        broker.emit_after("process_boot")
    broker.add_middleware(CurrentMessage())
    broker.add_middleware(PeriodiqMiddleware(skip_delay=120))
    broker.add_middleware(DatabaseConnections())
    broker.add_middleware(EndPipelineOnNone())
    if with_prometheus:
        from dramatiq.middleware.prometheus import Prometheus

        broker.add_middleware(Prometheus())
    for lane in LANES.values():
        broker.declare_queue(lane.queue_name)
    if not isinstance(broker, StubBroker):
        cap_prefetch(broker, {WEBHOOK.queue_name: config.inbox_drains_per_process})
    return broker


def cap_prefetch(broker: dramatiq.Broker, caps: dict[str, int]) -> None:
    """Let a worker process hold at most `caps[queue]` unacknowledged messages of those queues
    (Dramatiq gives every queue twice the worker's threads). For the webhook queue, whose messages
    are inbox drains, that is how many drains a process runs at once; the rest stay in the broker
    for the other processes. Measured at 2,000 webhooks/s on 2 cores (`make bench-webhooks`): with
    eight drains at once (2 processes x 4 threads) the drains, their database sessions, the
    receivers and PostgreSQL fought over the cores, and the receivers' answers waited seconds
    (POST p99 33 s in a whole run); with one drain per process it was 0.5 s (BENCHMARKS.md)."""
    consume = broker.consume

    def capped_consume(queue_name: str, prefetch: int = 1, timeout: int = 5000) -> Any:
        return consume(queue_name, min(prefetch, caps.get(queue_name, prefetch)), timeout)

    broker.consume = capped_consume  # type: ignore[method-assign]


def register(actor: dramatiq.Actor) -> dramatiq.Actor:
    """Remember a pipeline actor so that `install` can re-bind it to a new broker."""
    _actors.append(actor)
    return actor


def install(broker: dramatiq.Broker) -> dramatiq.Broker:
    """Make `broker` the global broker and re-declare every registered actor on it."""
    dramatiq.set_broker(broker)
    for actor in _actors:
        actor.broker = broker
        broker.declare_actor(actor)
    return broker


def close(broker: dramatiq.Broker) -> None:
    """Close a broker and its Redis connections (Dramatiq's RedisBroker leaves its pool open)."""
    broker.close()
    client = getattr(broker, "client", None)
    if client is not None:
        client.connection_pool.disconnect()


def current() -> dramatiq.Broker:
    return dramatiq.get_broker()


def is_embedded(broker: dramatiq.Broker | None = None) -> bool:
    return isinstance(broker or current(), StubBroker)


def queue_depth(broker: dramatiq.Broker, queue_name: str) -> int:
    """Messages waiting in a queue, delayed ones included (not the dead-lettered)."""
    if isinstance(broker, StubBroker):
        return sum(broker.queues[name].qsize() for name in (queue_name, f"{queue_name}.DQ") if name in broker.queues)
    counts = getattr(broker, "get_queue_message_counts", None)
    if counts is not None:  # RabbitMQ: (ready, delayed, dead-lettered)
        ready, delayed, _dead = counts(queue_name)
        return int(ready) + int(delayed)
    client, namespace = getattr(broker, "client"), getattr(broker, "namespace")
    return int(client.llen(f"{namespace}:{queue_name}")) + int(client.llen(f"{namespace}:{queue_name}.DQ"))


# Actors bind to the global broker when they are declared, so one must exist first.
install(build_broker(settings.get()))
