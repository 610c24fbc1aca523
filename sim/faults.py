"""Fault injection for the courier simulator: the fault settings, a pure choice of what (if
anything) goes wrong with one call, and a small injector that holds the seeded random generator,
the "next N calls" counters and the daily quota so that faults are reproducible."""
from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sim.journeys import seeded_rng

# A hang stays bounded whatever is configured, so a test or a demo never waits forever.
MAX_HANG_SECONDS = 120.0
MAX_LATENCY_SECONDS = 60.0

NONE = "none"
ERROR = "error"
TIMEOUT = "timeout"
RATE_LIMITED = "rate_limited"
QUOTA_EXCEEDED = "quota_exceeded"
FAULT_KINDS = (ERROR, TIMEOUT, RATE_LIMITED, QUOTA_EXCEEDED)


@dataclass(frozen=True)
class FaultSettings:
    """Which faults the tracking endpoints inject. Rates are probabilities per call; the `*_next`
    counts make the next N calls fail that way, before any random draw."""

    latency_min: float = 0.0
    latency_max: float = 0.0
    error_rate: float = 0.0
    error_status: int = 500
    timeout_rate: float = 0.0
    timeout_seconds: float = 35.0
    rate_limit_rate: float = 0.0
    retry_after_seconds: int = 5
    daily_quota: int | None = None
    # The quota's window: a UTC day by default; shorter windows (aligned on the Unix epoch) let a
    # test see a quota run out and come back, at the time its Retry-After announced.
    quota_period_seconds: int = 86400
    # Whether a spent quota's 429 says when the quota comes back (EasyParcel documents a bare 429).
    quota_retry_after: bool = True
    fail_next: int = 0
    timeout_next: int = 0
    rate_limit_next: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class FaultDecision:
    """What happens to one call: the latency added before answering, and the fault (if any)."""

    kind: str = NONE
    latency: float = 0.0
    status: int = 200
    retry_after: int | None = None
    hang_seconds: float = 0.0


def parse_latency(text: str) -> tuple[float, float]:
    """`"2-5"` -> (2.0, 5.0); `"1.5"` -> (1.5, 1.5).

    Raises:
        ValueError: not a number or a range of two numbers, negative, reversed or too large.
    """
    parts = text.strip().split("-")
    try:
        if len(parts) == 1:
            low = high = float(parts[0])
        elif len(parts) == 2:
            low, high = float(parts[0]), float(parts[1])
        else:
            raise ValueError
    except ValueError:
        raise ValueError(f"latency must be SECONDS or MIN-MAX seconds (e.g. 2-5), got {text!r}") from None
    if low < 0 or high < low or high > MAX_LATENCY_SECONDS:
        raise ValueError(f"latency must be 0 <= MIN <= MAX <= {MAX_LATENCY_SECONDS:g} seconds, got {text!r}")
    return low, high


def validate_faults(settings: FaultSettings) -> FaultSettings:
    """The settings if every value is in range.

    Raises:
        ValueError: the first bad value, named.
    """
    for name in ("error_rate", "timeout_rate", "rate_limit_rate"):
        value = getattr(settings, name)
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} must be between 0 and 1, got {value!r}")
    if settings.error_rate + settings.timeout_rate + settings.rate_limit_rate > 1.0:
        raise ValueError("error_rate + timeout_rate + rate_limit_rate must not exceed 1")
    if not 0 <= settings.latency_min <= settings.latency_max <= MAX_LATENCY_SECONDS:
        raise ValueError(f"latency must be 0 <= min <= max <= {MAX_LATENCY_SECONDS:g} seconds")
    if not 500 <= settings.error_status <= 599:
        raise ValueError(f"error_status must be a 5xx status, got {settings.error_status!r}")
    if not 0 < settings.timeout_seconds <= MAX_HANG_SECONDS:
        raise ValueError(f"timeout_seconds must be in (0, {MAX_HANG_SECONDS:g}], got {settings.timeout_seconds!r}")
    if settings.retry_after_seconds < 0:
        raise ValueError(f"retry_after_seconds must be >= 0, got {settings.retry_after_seconds!r}")
    if settings.daily_quota is not None and settings.daily_quota < 0:
        raise ValueError(f"daily_quota must be >= 0, got {settings.daily_quota!r}")
    if not 1 <= settings.quota_period_seconds <= 86400 or 86400 % settings.quota_period_seconds:
        raise ValueError("quota_period_seconds must divide a day (1 to 86400 seconds), "
                         f"got {settings.quota_period_seconds!r}")
    for name in ("fail_next", "timeout_next", "rate_limit_next"):
        if getattr(settings, name) < 0:
            raise ValueError(f"{name} must be >= 0, got {getattr(settings, name)!r}")
    return settings


_FLOAT_FIELDS = {"latency_min", "latency_max", "error_rate", "timeout_rate", "timeout_seconds", "rate_limit_rate"}
_INT_FIELDS = {"error_status", "retry_after_seconds", "fail_next", "timeout_next", "rate_limit_next",
               "quota_period_seconds"}


def updated_faults(current: FaultSettings, changes: Mapping[str, Any]) -> FaultSettings:
    """`current` with the given fields changed (the control API's JSON). `latency` may be given as
    "2-5", a number or [min, max]; `daily_quota` null removes the quota.

    Raises:
        ValueError: an unknown field or a bad value.
    """
    known = {f.name for f in fields(FaultSettings)}
    values: dict[str, Any] = {}
    for name, value in changes.items():
        if name == "latency":
            if isinstance(value, (list, tuple)) and len(value) == 2:
                values["latency_min"], values["latency_max"] = parse_latency(f"{value[0]}-{value[1]}")
            elif isinstance(value, (int, float, str)) and not isinstance(value, bool):
                values["latency_min"], values["latency_max"] = parse_latency(str(value))
            else:
                raise ValueError(f"latency must be 'MIN-MAX', a number or [min, max], got {value!r}")
        elif name not in known:
            raise ValueError(f"unknown fault setting {name!r} (known: latency, {', '.join(sorted(known))})")
        elif name == "daily_quota":
            values[name] = None if value is None else _number(name, value, int)
        elif name == "quota_retry_after":
            if not isinstance(value, bool):
                raise ValueError(f"quota_retry_after must be true or false, got {value!r}")
            values[name] = value
        elif name in _INT_FIELDS:
            values[name] = _number(name, value, int)
        elif name in _FLOAT_FIELDS:
            values[name] = _number(name, value, float)
    return validate_faults(replace(current, **values))


def _number(name: str, value: Any, kind: type) -> Any:
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not is_number or (kind is int and value != int(value)):
        raise ValueError(f"{name} must be {'a whole number' if kind is int else 'a number'}, got {value!r}")
    return kind(value)


def choose_fault(settings: FaultSettings, draw: float) -> str:
    """The fault for a call given one uniform draw in [0, 1): 5xx, then hang, then 429, by rate."""
    if draw < settings.error_rate:
        return ERROR
    if draw < settings.error_rate + settings.timeout_rate:
        return TIMEOUT
    if draw < settings.error_rate + settings.timeout_rate + settings.rate_limit_rate:
        return RATE_LIMITED
    return NONE


def seconds_until_next_day(now: datetime) -> int:
    """Whole seconds from `now` to the next UTC midnight (at least 1): the daily quota's Retry-After."""
    utc = now.astimezone(UTC)
    midnight = (utc + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return max(1, int((midnight - utc).total_seconds() + 0.999))


def quota_window(now: datetime, period_seconds: int) -> int:
    """The number of the quota window `now` falls in (windows of `period_seconds` from the Unix
    epoch, so a day's window starts at UTC midnight)."""
    return int(now.timestamp() // period_seconds)


def seconds_until_next_window(now: datetime, period_seconds: int) -> int:
    """Whole seconds from `now` to the next quota window (at least 1): a spent quota's Retry-After."""
    if period_seconds == 86400:
        return seconds_until_next_day(now)
    end = (quota_window(now, period_seconds) + 1) * period_seconds
    return max(1, int(end - now.timestamp() + 0.999))


class FaultInjector:
    """Decides the fault of each tracking call. Reproducible: the same seed and the same sequence
    of calls give the same decisions. Not thread-safe; the app calls it from its event loop."""

    def __init__(self, settings: FaultSettings, seed: str) -> None:
        self.seed = seed
        self.settings = validate_faults(settings)
        self.rng: random.Random = seeded_rng("faults", seed)
        self.quota_window: int | None = None
        self.quota_used = 0

    def update(self, changes: Mapping[str, Any]) -> FaultSettings:
        """Apply control-API changes.

        Raises:
            ValueError: an unknown field or a bad value (nothing is changed).
        """
        self.settings = updated_faults(self.settings, changes)
        return self.settings

    def reset(self, settings: FaultSettings) -> None:
        self.settings = validate_faults(settings)
        self.rng = seeded_rng("faults", self.seed)
        self.quota_window = None
        self.quota_used = 0

    def quota_used_today(self, now: datetime) -> int:
        """Tracking calls counted against the quota in `now`'s window (its UTC day by default)."""
        return self.quota_used if self.quota_window == quota_window(now, self.settings.quota_period_seconds) else 0

    def quota_remaining(self, now: datetime) -> int | None:
        if self.settings.daily_quota is None:
            return None
        return max(0, self.settings.daily_quota - self.quota_used_today(now))

    def decide(self, now: datetime) -> FaultDecision:
        """The decision for one call at wall time `now`; consumes quota and "next N" counters."""
        settings = self.settings
        # Two draws on every call, whatever is configured, so that changing one fault's rate does
        # not shift the sequence of the others.
        draw = self.rng.random()
        latency = settings.latency_min + self.rng.random() * (settings.latency_max - settings.latency_min)

        window = quota_window(now, settings.quota_period_seconds)
        if self.quota_window != window:
            self.quota_window, self.quota_used = window, 0
        if settings.daily_quota is not None:
            if self.quota_used >= settings.daily_quota:
                retry_after = seconds_until_next_window(now, settings.quota_period_seconds)
                return FaultDecision(QUOTA_EXCEEDED, latency, 429, retry_after if settings.quota_retry_after else None)
            self.quota_used += 1

        if settings.rate_limit_next > 0:
            self.settings = replace(settings, rate_limit_next=settings.rate_limit_next - 1)
            kind = RATE_LIMITED
        elif settings.fail_next > 0:
            self.settings = replace(settings, fail_next=settings.fail_next - 1)
            kind = ERROR
        elif settings.timeout_next > 0:
            self.settings = replace(settings, timeout_next=settings.timeout_next - 1)
            kind = TIMEOUT
        else:
            kind = choose_fault(settings, draw)

        if kind == ERROR:
            return FaultDecision(ERROR, latency, settings.error_status)
        if kind == TIMEOUT:
            return FaultDecision(TIMEOUT, latency, 504, hang_seconds=min(settings.timeout_seconds, MAX_HANG_SECONDS))
        if kind == RATE_LIMITED:
            return FaultDecision(RATE_LIMITED, latency, 429, settings.retry_after_seconds)
        return FaultDecision(NONE, latency)
