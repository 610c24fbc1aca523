"""The daily API budget: scheduled polls stop at the manual reserve, manual refreshes may use
it, and the count is seeded from the database's record of calls."""
from __future__ import annotations

from datetime import date

import pytest

from pipeline.budget import DailyBudget, budget_limits
from pipeline.coordination import LocalCoordination

DAY = date(2026, 11, 25)


@pytest.mark.parametrize(
    ("budget", "buffer", "scheduled"),
    [(1000, 5, 950), (1000, 0, 1000), (4, 25, 3), (10, 5, 9), (1, 100, 0)],
)
def test_scheduled_polls_get_the_budget_minus_the_reserve(budget, buffer, scheduled):
    limits = budget_limits(budget, buffer)
    assert limits.total == budget and limits.scheduled == scheduled


def test_scheduled_spending_stops_at_its_share_and_manual_spending_at_the_total():
    budget = DailyBudget(LocalCoordination(), budget_limits(10, 20), lambda day: 0)
    assert sum(budget.try_spend(DAY, is_manual=False) for _ in range(12)) == 8
    assert budget.remaining(DAY, is_manual=False) == 0
    assert budget.remaining(DAY, is_manual=True) == 2
    assert budget.try_spend(DAY, is_manual=True) and budget.try_spend(DAY, is_manual=True)
    assert not budget.try_spend(DAY, is_manual=True)
    assert budget.used(DAY) == 10


def test_the_count_starts_from_calls_already_recorded_today():
    budget = DailyBudget(LocalCoordination(), budget_limits(10, 0), lambda day: 9 if day == DAY else 0)
    assert budget.try_spend(DAY, is_manual=False)
    assert not budget.try_spend(DAY, is_manual=False)
    assert budget.try_spend(date(2026, 11, 26), is_manual=False), "a new day has a new budget"


def test_a_refund_gives_a_call_back():
    budget = DailyBudget(LocalCoordination(), budget_limits(1, 0), lambda day: 0)
    assert budget.try_spend(DAY, is_manual=False)
    budget.refund(DAY)
    assert budget.try_spend(DAY, is_manual=False)
