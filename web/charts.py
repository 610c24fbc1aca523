"""Server-side SVG charts for the dashboard: stacked daily bars (courier calls, with the budget
line), horizontal bars (shipments by status) and a meter (budget used). Pure: plain values in,
an SVG string out, every text escaped. Each chart is an `img` with a title and description for
screen readers; colours come from CSS classes (`chart-*`) so the pages need no inline styles."""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape


@dataclass(frozen=True)
class DayBar:
    label: str  # shown under the bar (every few days), e.g. "3 Mar"
    ok: int
    failed: int

    @property
    def total(self) -> int:
        return self.ok + self.failed


@dataclass(frozen=True)
class Bar:
    label: str
    value: int
    tone: str = "neutral"  # ok | warn | bad | neutral: the bar's CSS class


def nice_ceiling(value: float) -> int:
    """The smallest 1, 2 or 5 times a power of ten that is at least `value` (at least 1)."""
    if value <= 1:
        return 1
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if step * power >= value:
            return int(step * power)
    return int(10 * power)  # pragma: no cover - the loop always returns


def shows_budget(peak: int, budget: int | None) -> bool:
    """Whether the daily chart draws the budget line: only when the busiest day reaches a quarter
    of it (a far-away line would flatten every bar)."""
    return budget is not None and budget > 0 and peak >= budget * 0.25


def _fmt(number: float) -> str:
    """Coordinates with at most one decimal, no trailing zeros."""
    text = f"{number:.1f}"
    return text.removesuffix(".0")


def _rect(css_class: str, x: float, y: float, width: float, height: float, *, rounded: float = 0) -> str:
    corner = f' rx="{_fmt(rounded)}"' if rounded else ""
    return (f'<rect class="{escape(css_class)}" x="{_fmt(x)}" y="{_fmt(y)}" width="{_fmt(width)}" '
            f'height="{_fmt(height)}"{corner}/>')


def _hline(css_class: str, x1: float, x2: float, y: float) -> str:
    return f'<line class="{css_class}" x1="{_fmt(x1)}" y1="{_fmt(y)}" x2="{_fmt(x2)}" y2="{_fmt(y)}"/>'


def _open(width: int, height: int, chart_id: str, title: str, description: str, css_class: str) -> list[str]:
    return [
        (f'<svg xmlns="http://www.w3.org/2000/svg" class="chart {css_class}" viewBox="0 0 {width} {height}" '
         f'role="img" aria-labelledby="{chart_id}-title {chart_id}-desc" preserveAspectRatio="xMinYMin meet">'),
        f'<title id="{chart_id}-title">{escape(title)}</title>',
        f'<desc id="{chart_id}-desc">{escape(description)}</desc>',
    ]


def daily_bars(days: Sequence[DayBar], *, chart_id: str, title: str, budget: int | None = None,
               width: int = 560, height: int = 240, label_every: int = 5) -> str:
    """Stacked bars per day (successful calls, failed calls on top), a y axis with three ticks, a
    day label under the last bar and every `label_every` days before it, and a dashed budget line
    when the budget is within reach of the bars (else the description says it is off the scale)."""
    left, right, top, bottom = 44, 8, 12, 28
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = max((day.total for day in days), default=0)
    has_budget_line = shows_budget(peak, budget)
    scale_max = nice_ceiling(max(peak, budget if has_budget_line and budget else 0, 1))
    total = sum(day.total for day in days)
    failed = sum(day.failed for day in days)
    description = (f"{len(days)} days, {total} calls in all, {failed} failed; busiest day {peak} calls.")
    if budget:
        description += f" Daily budget {budget} calls" + (
            "." if has_budget_line else ", above the scale shown.")
    parts = _open(width, height, chart_id, title, description, "chart-daily")

    def y_of(value: float) -> float:
        return top + plot_h - plot_h * value / scale_max

    for tick in (0, scale_max / 2, scale_max):
        y = y_of(tick)
        parts.append(_hline("chart-grid", left, width - right, y))
        label = f"{tick:g}" if tick < 10_000 else f"{tick / 1000:g}k"
        parts.append(f'<text class="chart-axis" x="{left - 6}" y="{_fmt(y + 4)}" text-anchor="end">'
                     f"{label}</text>")
    if days:
        slot = plot_w / len(days)
        bar_w = max(1.0, slot * 0.7)
        for index, day in enumerate(days):
            x = left + index * slot + (slot - bar_w) / 2
            tip = f"{day.label}: {day.ok} successful, {day.failed} failed"
            parts.append(f"<g><title>{escape(tip)}</title>")
            if day.ok:
                parts.append(_rect("chart-ok", x, y_of(day.ok), bar_w, y_of(0) - y_of(day.ok)))
            if day.failed:
                parts.append(_rect("chart-bad", x, y_of(day.total), bar_w, y_of(day.ok) - y_of(day.total)))
            parts.append("</g>")
            from_last = len(days) - 1 - index
            if from_last % label_every == 0:  # today always labelled, then every few days back
                anchor, at = ("end", x + bar_w) if from_last == 0 else ("middle", x + bar_w / 2)
                parts.append(f'<text class="chart-axis" x="{_fmt(at)}" y="{height - 8}" '
                             f'text-anchor="{anchor}">{escape(day.label)}</text>')
    if has_budget_line and budget:
        y = y_of(budget)
        parts.append(_hline("chart-budget", left, width - right, y))
        parts.append(f'<text class="chart-axis" x="{width - right}" y="{_fmt(y - 4)}" text-anchor="end">'
                     f"budget {budget}</text>")
    parts.append("</svg>")
    return "".join(parts)


def horizontal_bars(bars: Sequence[Bar], *, chart_id: str, title: str, width: int = 480,
                    row_height: int = 26, label_width: int = 170) -> str:
    """One labelled horizontal bar per row, its value written after it."""
    top = 4
    height = top * 2 + max(1, len(bars)) * row_height
    value_room = 48
    plot_w = width - label_width - value_room
    peak = max((bar.value for bar in bars), default=0)
    total = sum(bar.value for bar in bars)
    listed = "; ".join(f"{bar.label}: {bar.value}" for bar in bars) or "none"
    parts = _open(width, height, chart_id, title, f"{total} in all. {listed}.", "chart-hbars")
    if not bars:
        parts.append(f'<text class="chart-axis" x="{label_width}" y="{top + 17}">Nothing to show</text>')
    for index, bar in enumerate(bars):
        y = top + index * row_height
        length = plot_w * bar.value / peak if peak else 0
        parts.append(f'<text class="chart-label" x="{label_width - 8}" y="{y + 17}" text-anchor="end">'
                     f"{escape(bar.label)}</text>")
        parts.append(_rect(f"chart-{bar.tone}", label_width, y + 4, max(length, 1.5 if bar.value else 0),
                           row_height - 8, rounded=2))
        parts.append(f'<text class="chart-value" x="{_fmt(label_width + length + 6)}" y="{y + 17}">'
                     f"{bar.value}</text>")
    parts.append("</svg>")
    return "".join(parts)


def meter_tone(used: int, total: int, *, warn_at: float = 0.7, bad_at: float = 0.9) -> str:
    """ok below 70 % of the total, warn below 90 %, bad from there (and with no total at all)."""
    if total <= 0:
        return "bad"
    share = used / total
    return "ok" if share < warn_at else "warn" if share < bad_at else "bad"


def meter(used: int, total: int, *, chart_id: str, title: str, width: int = 320, height: int = 14,
          reserve: int | None = None) -> str:
    """A horizontal meter of `used` out of `total`, with a tick where the reserve starts (the share
    of the budget kept for manual refreshes)."""
    share = min(1.0, used / total) if total > 0 else 1.0
    description = f"{used} of {total} used ({round(share * 100)} %)."
    if reserve is not None and total > 0:
        description += f" Scheduled polls stop at {reserve}."
    parts = _open(width, height, chart_id, title, description, "chart-meter")
    parts.append(_rect("chart-track", 0, 0, width, height, rounded=3))
    if share > 0:
        parts.append(_rect(f"chart-{meter_tone(used, total)}", 0, 0, width * share, height, rounded=3))
    if reserve is not None and 0 < reserve < total:
        x = width * reserve / total
        parts.append(f'<line class="chart-reserve" x1="{_fmt(x)}" y1="0" x2="{_fmt(x)}" y2="{height}"/>')
    parts.append("</svg>")
    return "".join(parts)
