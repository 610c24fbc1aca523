"""Which broker the settings give: Redis by default, RabbitMQ for an amqp:// TRACKING_BROKER_URL
(with Redis still required for caches, rate limits and coordination), the stub when embedded;
every lane's queue declared either way."""
from __future__ import annotations

import pytest
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker

import settings
from pipeline import broker as broker_module
from pipeline.lanes import LANES


def config(**env: str) -> settings.Settings:
    return settings.load(env, dotenv_path=None)


@pytest.mark.parametrize(("env", "kind"), [
    ({}, StubBroker),
    ({"REDIS_URL": "redis://127.0.0.1:6379/0"}, RedisBroker),
    ({"REDIS_URL": "redis://127.0.0.1:6379/0", "TRACKING_BROKER_URL": "amqp://guest:guest@127.0.0.1:5672/%2F"},
     RabbitmqBroker),
    ({"REDIS_URL": "redis://127.0.0.1:6379/0", "TRACKING_BROKER_URL": "redis://127.0.0.1:6379/3"}, RedisBroker),
])
def test_the_broker_follows_the_settings_with_every_lane_declared(env, kind):
    built = broker_module.build_broker(config(**env))
    try:
        assert isinstance(built, kind)
        assert {lane.queue_name for lane in LANES.values()} <= set(built.get_declared_queues())
    finally:
        broker_module.close(built)


def test_a_broker_url_must_be_amqp_or_redis():
    with pytest.raises(settings.SettingsError, match="TRACKING_BROKER_URL"):
        config(TRACKING_BROKER_URL="http://rabbit:5672")
    assert config(TRACKING_BROKER_URL="amqps://u:p@rabbit/vh").uses_rabbitmq
    assert not config(TRACKING_BROKER_URL="redis://r:6379/1").uses_rabbitmq


def test_rabbitmq_without_redis_is_not_a_production_setup():
    problems = config(TRACKING_BROKER_URL="amqp://guest:guest@127.0.0.1:5672/%2F").production_problems()
    assert any("TRACKING_BROKER_URL needs REDIS_URL" in problem for problem in problems)


@pytest.mark.parametrize("drains", [1, 3])
def test_a_worker_process_holds_at_most_the_configured_drain_messages_and_other_lanes_keep_theirs(drains):
    built = broker_module.build_broker(config(REDIS_URL="redis://127.0.0.1:6379/0",
                                              TRACKING_INBOX_DRAINS_PER_PROCESS=str(drains)))
    try:
        # as dramatiq.Worker asks for each queue's consumer: twice its threads (here 4 threads)
        webhook = built.consume(queue_name=LANES["webhook"].queue_name, prefetch=8, timeout=1000)
        manual = built.consume(queue_name=LANES["manual"].queue_name, prefetch=8, timeout=1000)
        assert (webhook.prefetch, manual.prefetch) == (drains, 8)
    finally:
        broker_module.close(built)
