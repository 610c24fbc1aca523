"""The daily courier API budget, shared by every worker: scheduled polls may spend all but
`TRACKING_RATE_BUFFER` percent of it, manual refreshes the rest too. Days are UTC days."""
from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date
from typing import Callable

from pipeline.coordination import Coordination


@dataclass(frozen=True)
class BudgetLimits:
    total: int
    scheduled: int

    def limit_for(self, *, is_manual: bool) -> int:
        return self.total if is_manual else self.scheduled


def budget_limits(daily_budget: int, buffer_percent: int) -> BudgetLimits:
    """Scheduled polls stop `buffer_percent` short of the budget; the rest is for manual refreshes."""
    reserve = math.ceil(daily_budget * buffer_percent / 100)
    return BudgetLimits(total=daily_budget, scheduled=max(0, daily_budget - reserve))


class DailyBudget:
    """Atomic spend-or-refuse against the day's budget.

    The running count lives in the coordination store (Redis: one INCR per call, so workers on
    several machines share it); on first use each day it is seeded from the database's record
    of calls, so a restart or a flushed Redis does not hand out the budget twice.
    """

    def __init__(self, coordination: Coordination, limits: BudgetLimits,
                 count_calls_on: Callable[[date], int]) -> None:
        self.coordination = coordination
        self.limits = limits
        self.count_calls_on = count_calls_on

    def _key(self, day: date) -> str:
        return f"budget:{day.isoformat()}"

    def _ensure_seeded(self, day: date) -> None:
        key = self._key(day)
        if self.coordination.get(key) is None:
            self.coordination.set(key, str(self.count_calls_on(day)), ttl_seconds=2 * 86400, only_if_absent=True)

    def try_spend(self, day: date, *, is_manual: bool) -> bool:
        """Take one call from the day's budget; False (and nothing taken) when over the limit."""
        self._ensure_seeded(day)
        used = self.coordination.incr(self._key(day), 1, ttl_seconds=2 * 86400)
        if used > self.limits.limit_for(is_manual=is_manual):
            self.coordination.incr(self._key(day), -1)
            return False
        return True

    def refund(self, day: date) -> None:
        """Give back a call that was taken but never made."""
        self.coordination.incr(self._key(day), -1)

    def used(self, day: date) -> int:
        self._ensure_seeded(day)
        raw = self.coordination.get(self._key(day))
        return int(raw) if raw is not None else 0

    def remaining(self, day: date, *, is_manual: bool) -> int:
        return max(0, self.limits.limit_for(is_manual=is_manual) - self.used(day))
