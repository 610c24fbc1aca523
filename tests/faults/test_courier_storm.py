"""Courier storms from the simulator: every call a 5xx, then timeouts and 429s with Retry-After:
polls retry on the configured delays, failed shipments join the attention
list after TRACKING_MAX_FAILURES failed polls, the daily budget is never exceeded (counted in
courier_api_calls), and everything recovers by itself when the courier does."""
from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
import requests
from deployment import ADMIN_TOKEN, sleep_past_next_minute, tracking_numbers, wait_for_audit
from processes import wait_until
from scales import SCALES

import models
from models import CourierApiCall, TrackingCache

FAST_SCHEDULE = {"TRACKING_PRE_SHIPMENT_FREQ": "1", "TRACKING_IN_TRANSIT_FREQ": "1",
                 "TRACKING_OUT_FOR_DELIVERY_FREQ": "1", "TRACKING_EXCEPTION_FREQ": "1",
                 "TRACKING_DELIVERY_DAY_FREQ": "1", "TRACKING_WEEKEND_FACTOR": "1", "TRACKING_API_TIMEOUT": "1000"}


def tracking_calls_today() -> int:
    from pipeline import store

    models.database.connect(reuse_if_open=True)
    return store.count_tracking_calls_on(datetime.now(UTC).date())


def set_faults(deployment, **faults) -> None:
    response = requests.post(f"{deployment.sim.url}/_sim/faults", json=faults, timeout=5)
    assert response.status_code == 200, response.text


def attention_count(deployment) -> int:
    response = requests.get(f"{deployment.base_url}/api/admin/tracking/attention",
                            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=10)
    assert response.status_code == 200, response.text
    body = response.json()
    return len(body.get("shipments", body if isinstance(body, list) else []))


@pytest.mark.parametrize("scale", SCALES)
def test_courier_storm_retries_flags_and_recovers_within_budget(deployment_factory, record, scale):
    max_failures = 1 if scale.name == "small" else 3
    budget = 400 if scale.name == "small" else 4000
    deployment = deployment_factory(extra_env={**FAST_SCHEDULE, "TRACKING_MAX_FAILURES": str(max_failures),
                                               "TRACKING_DAILY_BUDGET": str(budget)})
    deployment.sim_faults = __import__("sim.faults", fromlist=["FaultSettings"]).FaultSettings(error_rate=1.0)
    deployment.start(workers=1)
    numbers = tracking_numbers("CS", scale.shipments * 2)
    deployment.register(numbers, polled=True)
    # 100% 5xx: every batch is tried once and retried on each configured delay, then fails.
    wait_until(lambda: attention_count(deployment) == len(numbers), timeout=scale.storm_seconds + 240,
               what=f"all {len(numbers)} shipments on the attention list after {max_failures} failed polls")
    storm_started = time.monotonic()
    models.database.connect(reuse_if_open=True)
    calls = list(CourierApiCall.select().where(CourierApiCall.endpoint.contains("tracking")))
    batches = -(-len(numbers) // 10)
    assert all(not call.is_success for call in calls)
    assert len(calls) >= batches * 4 * max_failures, "fewer calls than one try plus three retries per batch"
    remaining = scale.storm_seconds - (time.monotonic() - storm_started)
    time.sleep(max(0.0, remaining / 2))
    # Then timeouts, 429 with Retry-After and an exhausted quota, mixed.
    # (No exhausted quota here: its Retry-After runs to the quota's reset, hours away, and the
    # product rightly waits that long; a quota lifted early by the simulator is not a courier.)
    set_faults(deployment, error_rate=0.0, timeout_rate=0.3, timeout_seconds=3, rate_limit_rate=0.3,
               retry_after_seconds=2)
    # An admin's bulk refresh puts every shipment through that weather at once.
    calls_before = tracking_calls_today()
    response = requests.post(f"{deployment.base_url}/api/admin/tracking/bulk-refresh", json={"all_active": True},
                             headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=10)
    assert response.status_code == 202, response.text
    wait_until(lambda: tracking_calls_today() >= calls_before + batches, timeout=120,
               what="the bulk refresh's calls in the timeout/429 storm")
    time.sleep(max(10.0, remaining / 2))
    assert tracking_calls_today() <= budget
    # The courier recovers: everything is polled again and persisted, no manual step.
    set_faults(deployment, timeout_rate=0.0, rate_limit_rate=0.0)
    recovered_at = time.monotonic()
    result, _ = wait_for_audit(deployment, polled_numbers=numbers, timeout=600,
                               what="every shipment to be polled successfully after the storm")
    recovery = time.monotonic() - recovered_at
    wait_until(lambda: attention_count(deployment) == 0, timeout=120, what="the attention list to empty")
    used = tracking_calls_today()
    record(result, scale=scale, load=f"{len(numbers)} polled shipments; 5xx storm then timeouts/429 "
                                     f"for {scale.storm_seconds:.0f} s; budget {budget}/day",
           recovery_seconds=round(recovery, 1), runs=1, courier_calls=used, budget=budget,
           command="make faults ARGS='-k courier_storm'")
    assert used <= budget
    assert result.lost == 0 and result.duplicated == 0 and result.regressions == 0, result.summary()


def test_the_daily_budget_holds_under_a_retry_storm(deployment_factory, record):
    from scales import SMALL

    from sim.faults import FaultSettings

    budget = 8
    deployment = deployment_factory(extra_env={**FAST_SCHEDULE, "TRACKING_DAILY_BUDGET": str(budget),
                                               "TRACKING_RATE_BUFFER": "0"},
                                    sim_faults=FaultSettings(error_rate=1.0))
    deployment.start(workers=1)
    numbers = tracking_numbers("BG", 60)
    deployment.register(numbers, polled=True)
    # 6 batches due, each wanting 1 call and 3 retries: 24 calls wanted, 8 allowed.
    wait_until(lambda: tracking_calls_today() >= budget, timeout=180, what="the budget to be spent")
    set_faults(deployment, error_rate=0.0)
    sleep_past_next_minute()  # the next sweep comes and goes (and every retry would have run)
    used = tracking_calls_today()
    deferred = TrackingCache.select().where(TrackingCache.courier_tracking_number.in_(numbers)
                                            & (TrackingCache.tracking_events == [])).count()
    from deployment import Audit

    record(Audit(), scale=SMALL,
           load=f"{len(numbers)} due shipments, every call 5xx, budget {budget} calls/day ({deferred} deferred "
                "to the next day, none lost)",
           recovery_seconds=None, runs=1, courier_calls=used, budget=budget,
           command="make faults ARGS='-k daily_budget_holds'")
    assert used <= budget, f"{used} courier calls against a budget of {budget}"
    assert deferred > 0, "every shipment was polled: the budget did not bind"
