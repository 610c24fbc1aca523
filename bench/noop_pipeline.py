"""The baseline of `bench.webhooks`: a no-op Dramatiq pipeline of three stages (the length of the
old per-webhook path parse -> diff -> persist) on Redis, run by `python -m dramatiq
bench.noop_pipeline` with the same processes and threads as the real workers. What it drains per
second is what Dramatiq itself costs on this machine at this moment."""
from __future__ import annotations

import os

import dramatiq
from dramatiq.brokers.redis import RedisBroker

NAMESPACE = os.environ.get("BENCH_NOOP_NAMESPACE", "trackcache-bench-noop")
broker = RedisBroker(url=os.environ.get("BENCH_NOOP_REDIS_URL", "redis://127.0.0.1:6379/12"), namespace=NAMESPACE)
dramatiq.set_broker(broker)
DONE_KEY = f"{NAMESPACE}:done"


@dramatiq.actor(queue_name="noop", max_retries=0)
def noop_parse(value: int) -> int:
    return value


@dramatiq.actor(queue_name="noop", max_retries=0)
def noop_diff(value: int) -> int:
    return value


@dramatiq.actor(queue_name="noop", max_retries=0)
def noop_persist(value: int) -> None:
    broker.client.incr(DONE_KEY)


def enqueue(count: int) -> None:
    """`count` pipelines of the three no-op stages."""
    for index in range(count):
        dramatiq.pipeline([noop_parse.message(index), noop_diff.message(), noop_persist.message()]).run()
