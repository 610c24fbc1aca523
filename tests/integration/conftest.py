"""Fixtures for the integration tests: the pipeline stack of tests/stacks.py."""
from __future__ import annotations

from collections.abc import Iterator

import pytest
from private_services import PrivateRedis
from stacks import build_stack
from web_client import Api, _client, api, redis_api  # noqa: F401  (fixtures for the web tests)


@pytest.fixture(params=["embedded", "redis"])
def stack(request, tmp_path):
    """The pipeline on SQLite + in-process broker, then on PostgreSQL + Redis."""
    if request.param == "embedded":
        made, stop = build_stack("embedded", f"sqlite:///{tmp_path / 'pipeline.db'}", "")
    else:
        made, stop = build_stack("redis", request.getfixturevalue("postgres_url"),
                                 request.getfixturevalue("redis_url"))
    yield made
    stop()


@pytest.fixture
def redis_stack(request, postgres_url, redis_url):
    """The production shape only: PostgreSQL, Redis and a real worker."""
    made, stop = build_stack("redis", postgres_url, redis_url)
    yield made
    stop()


@pytest.fixture(params=["redis", "rabbitmq"])
def broker_stack(request, postgres_url, redis_url):
    """The production shape on each broker: PostgreSQL, Redis (read cache, coordination) and a real
    worker, with Redis as the broker, then RabbitMQ (a virtual host of the test's own)."""
    if request.param == "redis":
        made, stop = build_stack("redis", postgres_url, redis_url)
        yield made
        stop()
        return
    from private_services import RABBITMQ_URL, RabbitVhost
    from services import require_service

    require_service("RabbitMQ", RABBITMQ_URL.replace("amqp://guest:guest@", "amqp://"))
    with RabbitVhost() as vhost:
        made, stop = build_stack("redis", postgres_url, redis_url, broker_url=vhost.url)
        assert made.config.uses_rabbitmq
        yield made
        stop()


@pytest.fixture
def outage(postgres_url) -> Iterator[tuple[Api, PrivateRedis]]:
    """The production shape on a Redis of its own, which the test may stop and start."""
    redis = PrivateRedis().start()
    made, stop = build_stack("redis", postgres_url, redis.url)
    try:
        for client in _client(made):
            yield client, redis
    finally:
        if redis.process is None:
            redis.start()  # let the worker and the broker close cleanly
        stop()
        redis.stop()
