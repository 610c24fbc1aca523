"""The simulator's fault decisions and webhook delivery planning: pure, seeded, reproducible."""
from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from sim import faults as F
from sim.webhooks import plan_deliveries

NOON = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(("text", "expected"), [("2-5", (2.0, 5.0)), ("1.5", (1.5, 1.5)), (" 0 ", (0.0, 0.0))])
def test_latency_accepts_a_number_or_a_range(text, expected):
    assert F.parse_latency(text) == expected


@pytest.mark.parametrize("text", ["5-2", "-1", "a-b", "1-2-3", "", "0-61"])
def test_bad_latency_is_refused_with_a_message(text):
    with pytest.raises(ValueError, match="latency"):
        F.parse_latency(text)


@pytest.mark.parametrize(("draw", "expected"), [
    (0.05, F.ERROR), (0.15, F.TIMEOUT), (0.25, F.RATE_LIMITED), (0.35, F.NONE),
])
def test_one_draw_picks_the_fault_by_rate(draw, expected):
    settings = F.FaultSettings(error_rate=0.1, timeout_rate=0.1, rate_limit_rate=0.1)
    assert F.choose_fault(settings, draw) == expected


@pytest.mark.parametrize("changes", [
    {"error_rate": 1.5}, {"error_rate": "high"}, {"error_rate": 0.6, "timeout_rate": 0.6},
    {"error_status": 404}, {"timeout_seconds": 0}, {"timeout_seconds": 1000}, {"daily_quota": -1},
    {"fail_next": 1.5}, {"fail_next": True}, {"latency": "x"}, {"latency": [1]}, {"colour": "red"},
])
def test_bad_fault_changes_are_refused(changes):
    with pytest.raises(ValueError):
        F.updated_faults(F.FaultSettings(), changes)


def test_fault_changes_keep_what_they_do_not_mention():
    settings = F.updated_faults(F.FaultSettings(error_rate=0.2), {"latency": "2-5", "daily_quota": 10})
    assert (settings.error_rate, settings.latency_min, settings.latency_max, settings.daily_quota) == (0.2, 2, 5, 10)
    assert F.updated_faults(settings, {"daily_quota": None, "latency": [0, 1]}).daily_quota is None


def test_the_same_seed_gives_the_same_faults():
    settings = F.FaultSettings(latency_min=1, latency_max=3, error_rate=0.2, timeout_rate=0.1, rate_limit_rate=0.2)
    runs = []
    for _ in range(2):
        injector = F.FaultInjector(settings, "s")
        runs.append([injector.decide(NOON) for _ in range(200)])
    assert runs[0] == runs[1]
    kinds = [d.kind for d in runs[0]]
    assert {F.ERROR, F.TIMEOUT, F.RATE_LIMITED, F.NONE} == set(kinds)
    assert all(1 <= d.latency <= 3 for d in runs[0])
    other = F.FaultInjector(settings, "other seed")
    assert [other.decide(NOON) for _ in range(200)] != runs[0]


def test_next_n_controls_come_first_and_run_out():
    injector = F.FaultInjector(F.FaultSettings(rate_limit_next=1, fail_next=2, timeout_next=1,
                                               retry_after_seconds=7, error_status=503, timeout_seconds=2), "s")
    decisions = [injector.decide(NOON) for _ in range(5)]
    assert [d.kind for d in decisions] == [F.RATE_LIMITED, F.ERROR, F.ERROR, F.TIMEOUT, F.NONE]
    assert decisions[0].status == 429 and decisions[0].retry_after == 7
    assert decisions[1].status == 503
    assert decisions[3].status == 504 and decisions[3].hang_seconds == 2
    assert injector.settings.fail_next == 0


def test_the_daily_quota_answers_429_until_next_utc_midnight():
    injector = F.FaultInjector(F.FaultSettings(daily_quota=2), "s")
    assert [injector.decide(NOON).kind for _ in range(2)] == [F.NONE, F.NONE]
    refused = injector.decide(NOON)
    assert (refused.kind, refused.status, refused.retry_after) == (F.QUOTA_EXCEEDED, 429, 12 * 3600)
    assert injector.quota_remaining(NOON) == 0
    assert injector.decide(NOON + timedelta(hours=12)).kind == F.NONE  # a new day


def test_a_shorter_quota_window_comes_back_when_its_retry_after_said():
    injector = F.FaultInjector(F.FaultSettings(daily_quota=1, quota_period_seconds=60), "s")
    start = datetime(2026, 3, 1, 12, 0, 15, tzinfo=UTC)
    assert injector.decide(start).kind == F.NONE
    refused = injector.decide(start)
    assert (refused.kind, refused.status, refused.retry_after) == (F.QUOTA_EXCEEDED, 429, 45)
    assert injector.decide(start + timedelta(seconds=44)).kind == F.QUOTA_EXCEEDED  # never lifted early
    assert injector.decide(start + timedelta(seconds=45)).kind == F.NONE  # the next window
    assert injector.quota_remaining(start + timedelta(seconds=45)) == 0


def test_a_spent_quota_can_answer_a_bare_429():
    injector = F.FaultInjector(F.FaultSettings(daily_quota=0, quota_retry_after=False), "s")
    refused = injector.decide(NOON)
    assert (refused.kind, refused.status, refused.retry_after) == (F.QUOTA_EXCEEDED, 429, None)


@pytest.mark.parametrize("changes", [{"quota_period_seconds": 0}, {"quota_period_seconds": 7},
                                     {"quota_period_seconds": 172800}, {"quota_retry_after": "no"}])
def test_bad_quota_windows_are_refused_by_name(changes):
    with pytest.raises(ValueError, match=next(iter(changes))):
        F.updated_faults(F.FaultSettings(), changes)


def test_seconds_until_next_day_is_at_least_one():
    assert F.seconds_until_next_day(datetime(2026, 3, 1, 23, 59, 59, 999999, tzinfo=UTC)) == 1
    assert F.seconds_until_next_day(datetime(2026, 3, 1, tzinfo=UTC)) == 86400


def test_reset_restores_the_settings_and_the_sequence():
    settings = F.FaultSettings(error_rate=0.5)
    injector = F.FaultInjector(settings, "s")
    first = [injector.decide(NOON).kind for _ in range(20)]
    injector.update({"error_rate": 0})
    injector.reset(settings)
    assert [injector.decide(NOON).kind for _ in range(20)] == first


def payloads(count: int) -> list[dict]:
    return [{"uuid": str(i)} for i in range(count)]


def test_deliveries_go_out_in_order_without_options():
    assert plan_deliveries(payloads(5), random.Random(1), duplicate_rate=0, is_shuffled=False) == payloads(5)


def test_duplicates_repeat_the_same_webhook():
    planned = plan_deliveries(payloads(50), random.Random(1), duplicate_rate=0.5, is_shuffled=False)
    assert 50 < len(planned) < 100
    assert sorted({p["uuid"] for p in planned}) == sorted(p["uuid"] for p in payloads(50))
    assert plan_deliveries(payloads(5), random.Random(1), duplicate_rate=1.0, is_shuffled=False) == [
        p for p in payloads(5) for _ in range(2)]


@pytest.mark.parametrize("seed", range(20))
def test_a_shuffled_batch_is_never_in_order(seed):
    planned = plan_deliveries(payloads(2), random.Random(seed), duplicate_rate=0, is_shuffled=True)
    assert planned == payloads(2)[::-1]
    assert plan_deliveries(payloads(1), random.Random(seed), duplicate_rate=0, is_shuffled=True) == payloads(1)
