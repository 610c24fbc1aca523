"""Fault scenarios: each runs a whole deployment of its own (private PostgreSQL and Redis, the
broker, the simulator, serve, worker and scheduler processes), once per broker. The small scale
runs in `make test` and CI; the full scale (marked `full_scale`) only in `make faults`. Each
scenario's figures are appended to `faults-results.jsonl` (RELIABILITY.md is written from it)."""
from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from deployment import Audit, Deployment
from private_services import RabbitVhost
from scales import Scale
from services import is_ci

RESULTS = Path(os.environ.get("TRACKCACHE_FAULTS_RESULTS", Path(__file__).resolve().parents[2] / "faults-results.jsonl"))
BROKERS = ["redis", "rabbitmq"]

# `make test` (and CI) runs each scenario once at small scale, on the broker named here (both
# brokers are covered across the scenarios); every other combination is left to `make faults`.
CI_BROKER = {
    "test_courier_storm_retries_flags_and_recovers_within_budget": "redis",
    "test_a_spent_courier_quota_is_waited_out_within_budget": "rabbitmq",
    "test_workers_killed_mid_fetch_and_mid_persist_lose_nothing": "rabbitmq",
    "test_redis_lost_and_restarted_empty_loses_no_webhook": "redis",
    "test_postgres_restarted_under_load_loses_nothing": "redis",
    "test_the_daily_budget_holds_under_a_retry_storm": "rabbitmq",
    "test_duplicated_shuffled_webhooks_and_polls_store_each_event_once": "rabbitmq",
    "test_two_schedulers_and_overlapping_sweeps_poll_each_due_shipment_once": "redis",
    "test_a_backlog_outlasting_the_maintenance_attempts_is_still_processed": "redis",
    "test_a_poison_webhook_does_not_sink_its_batch": "rabbitmq",
}


# About how long each scenario takes at full scale (minutes, this machine, from the timers it
# waits on: storm length, outages, claim leases, sweeps on the minute); `make faults` starts the
# longest first, so that four at a time end together (about 30 minutes in all).
FULL_SCALE_MINUTES = {
    "test_courier_storm_retries_flags_and_recovers_within_budget": 15,
    "test_a_backlog_outlasting_the_maintenance_attempts_is_still_processed": 10,
    "test_a_spent_courier_quota_is_waited_out_within_budget": 5,
    "test_postgres_restarted_under_load_loses_nothing": 4,
    "test_workers_killed_mid_fetch_and_mid_persist_lose_nothing": 4,
    "test_redis_lost_and_restarted_empty_loses_no_webhook": 4,
    "test_duplicated_shuffled_webhooks_and_polls_store_each_event_once": 5,
    "test_two_schedulers_and_overlapping_sweeps_poll_each_due_shipment_once": 3,
    "test_the_daily_budget_holds_under_a_retry_storm": 2,
    "test_a_poison_webhook_does_not_sink_its_batch": 1,
}


def _expected_minutes(item) -> float:
    return FULL_SCALE_MINUTES.get(getattr(item, "originalname", ""), 0.5)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    here = Path(__file__).resolve().parent
    for item in items:
        if here not in Path(str(item.fspath)).resolve().parents:
            continue
        item.add_marker(pytest.mark.faults)
        broker = getattr(item, "callspec", None) and item.callspec.params.get("broker_kind")
        if broker and CI_BROKER.get(item.originalname) != broker:
            item.add_marker(pytest.mark.full_scale)
        if item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(1500))


class LongestFirst:
    """Orders the selected tests for `make faults`, after every deselection (-m, -k)."""

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, config, items):
        if "full_scale" in (config.getoption("markexpr") or ""):
            items[:] = longest_first_in_pairs(items, _expected_minutes)


def pytest_configure(config):
    config.pluginmanager.register(LongestFirst(), "faults-longest-first")


def longest_first_in_pairs(items: list, minutes) -> list:
    """Longest, shortest, second longest, second shortest, ...: pytest-xdist hands each worker two
    consecutive tests to start with, so each worker starts one long scenario (the two 15-minute
    storms on different workers) and the short ones fill in around them."""
    ordered = sorted(items, key=lambda item: -minutes(item))
    half = (len(ordered) + 1) // 2
    longest, shortest = ordered[:half], ordered[half:][::-1]
    paired = []
    for index, item in enumerate(longest):
        paired.append(item)
        if index < len(shortest):
            paired.append(shortest[index])
    return paired


def require_tool(name: str) -> None:
    if shutil.which(name) is None:
        reason = f"{name} is not installed"
        if is_ci():
            pytest.fail(f"{reason} (CI=true: fault scenarios must not skip)", pytrace=False)
        pytest.skip(reason)


@pytest.fixture(scope="session", autouse=True)
def no_secret_in_any_log():
    """After the last scenario: grep every log the suite's deployments wrote for every secret."""
    yield
    from deployment import PRODUCED_LOGS
    from test_abuse import secrets_in_logs

    leaks = secrets_in_logs(list(PRODUCED_LOGS))
    assert not leaks, f"secrets in logs: {leaks[:20]}"


@pytest.fixture(autouse=True)
def session_settings_kept():
    """A scenario boots its deployment's settings in this process; the tests after it must get
    the session's own back (or they would talk to a destroyed database and broker)."""
    import settings

    before = settings.get()
    yield
    assert settings.get() is before, "a fault scenario left its deployment's settings installed"


@pytest.fixture(params=BROKERS)
def broker_kind(request) -> str:
    return request.param


@pytest.fixture
def deployment_factory(tmp_path, broker_kind) -> Iterator:
    """Start deployments on demand (each with its own services); all closed after the test."""
    require_tool("redis-server")
    require_tool("runuser" if os.geteuid() == 0 else "pg_ctl")
    made: list[Deployment] = []
    vhosts: list[RabbitVhost] = []

    def make(**kwargs) -> Deployment:
        rabbit_url = None
        if broker_kind == "rabbitmq":
            require_tool("rabbitmqctl")
            from private_services import RABBITMQ_URL
            from services import require_service

            require_service("RabbitMQ", RABBITMQ_URL.replace("amqp://guest:guest@", "amqp://"))
            vhost = RabbitVhost().create()
            vhosts.append(vhost)
            rabbit_url = vhost.url
        deployment = Deployment(tmp_path / f"d{len(made)}", broker_kind, rabbit_url=rabbit_url, **kwargs)
        deployment.workdir.mkdir(parents=True, exist_ok=True)
        made.append(deployment)
        return deployment

    yield make
    for deployment in made:
        deployment.close()
    for vhost in vhosts:
        vhost.delete()


@pytest.fixture
def record(request, broker_kind):
    """`record(audit, load=..., recovery_seconds=..., command=...)` keeps the scenario's figures."""

    def write(result: Audit, *, scale: Scale, load: str, recovery_seconds: float | None, **extra) -> None:
        entry = {"scenario": request.node.originalname, "test": request.node.nodeid, "broker": broker_kind,
                 "scale": scale.name, "load": load, "recovery_seconds": recovery_seconds,
                 "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **result.summary(), **extra}
        with RESULTS.open("a") as out:
            out.write(json.dumps(entry) + "\n")
        print(f"\n{json.dumps(entry)}")

    return write
