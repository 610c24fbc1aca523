"""Process-wide resources the actors and endpoints share, built once from settings by boot code:
the schedule policy, courier clients, the daily budget, concurrency limiters, the read cache and
the coordination store (Redis or in-process)."""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any, Callable

import settings as settings_module
from pipeline.budget import DailyBudget, budget_limits
from pipeline.coordination import Coordination, LocalCoordination, RedisCoordination
from pipeline.schedule import SchedulePolicy

logger = logging.getLogger(__name__)


def schedule_policy(config: settings_module.Settings) -> SchedulePolicy:
    """The polling policy built from settings."""
    return SchedulePolicy(
        pre_shipment_minutes=config.pre_shipment_freq,
        in_transit_minutes=config.in_transit_freq,
        out_for_delivery_minutes=config.out_for_delivery_freq,
        exception_minutes=config.exception_freq,
        delivery_day_max_minutes=config.delivery_day_max_freq,
        weekend_factor=config.weekend_factor,
        holidays=config.holidays,
        jitter_percent=config.jitter_percent,
        expire_after_days=config.expire_after_days,
        max_failures=config.max_failures,
        timezone=config.shop_timezone,
    )


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class Runtime:
    config: settings_module.Settings
    coordination: Coordination
    clock: Callable[[], datetime] = utcnow
    client_factory: Callable[[str, settings_module.Settings], Any] | None = None
    _clients: dict[str, Any] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def policy(self) -> SchedulePolicy:
        return schedule_policy(self.config)

    def now(self) -> datetime:
        return self.clock()

    def client(self, courier: str) -> Any:
        """The (cached, thread-safe) HTTP client for a courier."""
        with self._lock:
            if courier not in self._clients:
                factory = self.client_factory
                if factory is None:
                    from pipeline.couriers import build_client

                    factory = build_client
                self._clients[courier] = factory(courier, self.config)
            return self._clients[courier]

    def budget(self) -> DailyBudget:
        import pipeline.store as store

        return DailyBudget(self.coordination, budget_limits(self.config.daily_budget, self.config.rate_buffer_percent),
                           store.count_tracking_calls_on)

    def concurrency_limiter(self, courier: str) -> Any:
        from dramatiq.rate_limits import ConcurrentRateLimiter

        # The slot outlives a hung call by a margin, then frees itself.
        ttl_ms = int(self.config.api_timeout_ms * 3 + 30_000)
        return ConcurrentRateLimiter(self.coordination.rate_limiter_backend(), f"{self.config.redis_namespace}:courier:{courier}",
                                     limit=self.config.max_concurrent, ttl=ttl_ms)

    def cooldown_remaining(self, courier: str) -> float:
        """Seconds left of a courier's 429 cooldown (0 when none)."""
        return self.coordination.ttl(f"cooldown:{courier}") or 0.0

    def start_cooldown(self, courier: str, seconds: float) -> None:
        self.coordination.set(f"cooldown:{courier}", "1", ttl_seconds=max(1.0, seconds))

    def today(self) -> date:
        return self.now().date()

    def lease(self) -> timedelta:
        return timedelta(seconds=self.config.claim_lease_seconds)

    def close(self) -> None:
        """Release the coordination store's connections and the courier clients' sessions."""
        self.coordination.close()
        with self._lock:
            for client in self._clients.values():
                close = getattr(client, "close", None)
                if close:
                    close()
            self._clients.clear()


_current: Runtime | None = None
_current_lock = threading.Lock()


def build(config: settings_module.Settings, **overrides: Any) -> Runtime:
    coordination: Coordination = (RedisCoordination(config.redis_url, prefix=f"{config.redis_namespace}:")
                                  if config.redis_url else LocalCoordination())
    return Runtime(config=config, coordination=coordination, **overrides)


def install(runtime: Runtime | None) -> Runtime | None:
    """Make `runtime` the process's runtime (boot code and tests)."""
    global _current
    with _current_lock:
        _current = runtime
    return runtime


def current() -> Runtime:
    """The process's runtime, built from settings on first use."""
    global _current
    with _current_lock:
        if _current is None:
            _current = build(settings_module.get())
        return _current
