"""The alert rules over live figures, table-driven: each rule fires just past its threshold and
not at it, small samples say nothing, and critical alerts come first."""
from __future__ import annotations

from dataclasses import replace

import pytest

from web.alerts import CRITICAL, WARNING, Figures, Thresholds, evaluate, thresholds_from

LIMITS = Thresholds()
CALM = Figures(database_ok=True, pending_jobs=3, oldest_pending_age_seconds=30, courier_calls_last_hour=200,
               courier_failures_last_hour=2, read_p95_seconds=0.02, budget_used=100, budget_total=1000,
               server_errors_5m=0, rate_limited_5m=3, failed_inbox_last_hour=0, cache_hits=90, cache_misses=10)


def fired(figures: Figures) -> dict[str, str]:
    return {alert.name: alert.severity for alert in evaluate(figures, LIMITS)}


def test_calm_figures_fire_nothing():
    assert evaluate(CALM, LIMITS) == []


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"database_ok": False}, {"database_unreachable": CRITICAL}),
        ({"pending_jobs": 100}, {}),
        ({"pending_jobs": 101}, {"job_backlog": CRITICAL}),
        ({"courier_failures_last_hour": 20}, {}),
        ({"courier_failures_last_hour": 21}, {"courier_failure_rate": CRITICAL}),
        # too few calls to judge a rate
        ({"courier_calls_last_hour": 9, "courier_failures_last_hour": 9}, {}),
        ({"read_p95_seconds": 1.0}, {}),
        ({"read_p95_seconds": 1.2}, {"slow_customer_reads": CRITICAL}),
        ({"read_p95_seconds": None}, {}),
        ({"budget_used": 899}, {}),
        ({"budget_used": 900}, {"budget_nearly_spent": WARNING}),
        ({"oldest_pending_age_seconds": 15 * 60}, {}),
        ({"oldest_pending_age_seconds": 15 * 60 + 1}, {"job_delay": WARNING}),
        ({"server_errors_5m": 30, "rate_limited_5m": 20}, {}),
        ({"server_errors_5m": 30, "rate_limited_5m": 21}, {"error_spike": WARNING}),
        ({"failed_inbox_last_hour": 11}, {"failed_webhooks": WARNING}),
        ({"cache_hits": 50, "cache_misses": 50}, {}),
        ({"cache_hits": 49, "cache_misses": 51}, {"read_cache_misses": WARNING}),
        # too few lookups to judge a miss rate (a fresh process)
        ({"cache_hits": 0, "cache_misses": 19}, {}),
        ({"delayed_shipments": 25}, {}),
        ({"delayed_shipments": 26}, {"delayed_shipments": WARNING}),
        ({"delayed_shipments": None}, {}),
    ],
)
def test_each_rule_fires_past_its_threshold(changes, expected):
    assert fired(replace(CALM, **changes)) == expected


def test_unknown_figures_while_the_database_is_down_fire_only_the_database_alert():
    down = Figures(database_ok=False, pending_jobs=None, oldest_pending_age_seconds=None, courier_calls_last_hour=None,
                   courier_failures_last_hour=None, budget_used=None, budget_total=None, failed_inbox_last_hour=None,
                   delayed_shipments=None)
    assert fired(down) == {"database_unreachable": CRITICAL}


def test_critical_alerts_come_before_warnings():
    alerts = evaluate(replace(CALM, budget_used=950, pending_jobs=500), LIMITS)
    assert [a.severity for a in alerts] == [CRITICAL, WARNING]
    assert alerts[0].value == 500 and alerts[0].threshold == 100


def test_thresholds_come_from_settings():
    import settings

    config = replace(settings.get(), alert_pending_jobs=7, alert_read_p95_ms=250)
    limits = thresholds_from(config)
    assert (limits.pending_jobs, limits.read_p95_ms, limits.failure_rate_percent) == (7, 250, 10)


def test_the_prometheus_rules_file_states_the_same_rules_with_the_same_severities():
    from pathlib import Path

    import yaml

    everything = Figures(database_ok=False, pending_jobs=10_000, oldest_pending_age_seconds=10**6,
                         courier_calls_last_hour=100, courier_failures_last_hour=100, read_p95_seconds=10.0,
                         budget_used=1000, budget_total=1000, server_errors_5m=1000, rate_limited_5m=0,
                         failed_inbox_last_hour=1000, cache_hits=0, cache_misses=1000, delayed_shipments=1000)
    ours = {alert.name: alert.severity for alert in evaluate(everything, LIMITS)}
    path = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "alerts.yml"
    rules = [rule for group in yaml.safe_load(path.read_text())["groups"] for rule in group["rules"]]
    assert {rule["labels"]["rule"]: rule["labels"]["severity"] for rule in rules} == ours
