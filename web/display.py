"""Pure presentation helpers of the pages: times in the shop's zone (UTC stays in the data), "N
minutes ago", the customer's progress steps, status tones, and the page model of a shipment
built from the guest view. Plain values in, plain values out."""
from __future__ import annotations

import zoneinfo
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Any

from pipeline import status as statuses
from pipeline.canonical import parse_iso

# The customer's progress bar: one step per `Status.stage` (see pipeline/status.py).
STAGE_LABELS = ("Order placed", "Label created", "In transit", "Out for delivery", "Delivered")
# Statuses that end or interrupt the journey: the bar stops, marked as a problem, at their stage.
PROBLEM_STATUSES = frozenset({statuses.EXCEPTION, statuses.FAILED_ATTEMPT, statuses.RETURNED,
                              statuses.CANCELLED, statuses.EXPIRED})
OK, WARN, BAD, NEUTRAL = "ok", "warn", "bad", "neutral"
_TONES = {
    statuses.DELIVERED: OK,
    statuses.OUT_FOR_DELIVERY: OK,
    statuses.AVAILABLE_FOR_PICKUP: OK,
    statuses.FAILED_ATTEMPT: WARN,
    statuses.EXCEPTION: WARN,
    statuses.RETURNED: BAD,
    statuses.CANCELLED: BAD,
    statuses.EXPIRED: BAD,
}
# What a customer should know about a status, beyond its label.
_STATUS_NOTES = {
    statuses.PENDING: "The shop has registered your parcel; the courier has not reported it yet.",
    statuses.INFO_RECEIVED: "The courier has the parcel's details and will collect it soon.",
    statuses.IN_TRANSIT: "Your parcel is on its way.",
    statuses.AVAILABLE_FOR_PICKUP: "Your parcel is waiting for you at a pickup point.",
    statuses.OUT_FOR_DELIVERY: "Your parcel is with the driver and should arrive today.",
    statuses.FAILED_ATTEMPT: "The courier could not deliver your parcel and will try again.",
    statuses.EXCEPTION: "The courier has reported a delay or a problem with your parcel.",
    statuses.DELIVERED: "Your parcel has been delivered.",
    statuses.RETURNED: "Your parcel is being returned to the shop. Please contact the shop.",
    statuses.CANCELLED: "This shipment was cancelled. Please contact the shop.",
    statuses.EXPIRED: "The courier has not reported anything for a long time. Please contact the shop.",
}


@lru_cache(maxsize=32)
def _zone(name: str) -> zoneinfo.ZoneInfo:
    return zoneinfo.ZoneInfo(name)


def as_utc(moment: datetime | str | None) -> datetime | None:
    """An aware UTC datetime from a datetime or an ISO string (None stays None)."""
    if moment is None or moment == "":
        return None
    if isinstance(moment, str):
        return parse_iso(moment)
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def local_time(moment: datetime | str | None, zone: str) -> datetime | None:
    """The moment in the shop's zone."""
    utc = as_utc(moment)
    return None if utc is None else utc.astimezone(_zone(zone))


def format_local(moment: datetime | str | None, zone: str, *, with_year: bool = False) -> str:
    """A moment as the shop's local date and time, e.g. "Tue 3 Mar, 14:05" ("" for None)."""
    local = local_time(moment, zone)
    if local is None:
        return ""
    text = f"{local:%a} {local.day} {local:%b}"
    if with_year:
        text += f" {local.year}"
    return f"{text}, {local:%H:%M}"


def format_day(moment: datetime | str | None, zone: str) -> str:
    """A moment's local date, e.g. "Tuesday 3 March" ("" for None)."""
    local = local_time(moment, zone)
    return "" if local is None else f"{local:%A} {local.day} {local:%B}"


def arrival_sentence(estimated: datetime | str | None, earliest: datetime | str | None,
                     latest: datetime | str | None, source: str | None, zone: str) -> str:
    """The tracking page's estimate, e.g. "Arrives Thu 4 Dec, between Wed and Fri" (weekdays alone
    when the range spans less than a week; "" when there is no estimate)."""
    day = local_time(estimated, zone)
    if day is None:
        return ""
    sentence = f"Arrives {day:%a} {day.day} {day:%b}"
    first, last = local_time(earliest, zone), local_time(latest, zone)
    if first is not None and last is not None and first.date() != last.date():
        if (last.date() - first.date()).days < 7:
            sentence += f", between {first:%a} and {last:%a}"
        else:
            sentence += f", between {first:%a} {first.day} {first:%b} and {last:%a} {last.day} {last:%b}"
    if source == "courier":
        sentence += " (the courier's estimate)"
    return sentence


def zone_caption(zone: str, now: datetime) -> str:
    """How the pages name the shop's zone, e.g. "Kuala Lumpur time (UTC+08:00)"."""
    local = now.astimezone(_zone(zone))
    offset = local.utcoffset() or timedelta(0)
    minutes = int(offset.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    hours, rest = divmod(abs(minutes), 60)
    city = zone.rsplit("/", 1)[-1].replace("_", " ")
    return f"{city} time (UTC{sign}{hours:02d}:{rest:02d})"


def time_ago(seconds: float | None) -> str:
    """A data age in words: "just now", "1 minute ago", "5 hours ago", "3 days ago"."""
    if seconds is None:
        return "never"
    seconds = max(0, int(seconds))
    if seconds < 60:
        return "just now"
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            count = seconds // size
            return f"{count} {unit}{'' if count == 1 else 's'} ago"
    return "just now"  # pragma: no cover - the loop always returns for seconds >= 60


def duration(seconds: float | None) -> str:
    """A wait in words for the dashboard: "none", "45 s", "12 min", "3 h 5 min", "2 d 4 h"."""
    if seconds is None:
        return "none"
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min"
    if seconds < 86400:
        hours, minutes = divmod(seconds // 60, 60)
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(seconds // 3600, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def status_tone(status: str | None) -> str:
    """ok, warn, bad or neutral: the colour family a status is shown in."""
    return _TONES.get(status or "", NEUTRAL)


def status_note(status: str | None) -> str:
    return _STATUS_NOTES.get(status or "", "")


@dataclass(frozen=True)
class Step:
    label: str
    state: str  # done | current | upcoming | stopped

    @property
    def is_current(self) -> bool:
        return self.state in ("current", "stopped")


def progress_steps(status: str) -> list[Step]:
    """The progress bar of a status: steps before its stage done, its stage current (or stopped,
    for exceptions and finals other than delivery), the rest upcoming."""
    known = statuses.STATUSES.get(status)
    stage = known.stage if known else 0
    is_problem = status in PROBLEM_STATUSES
    steps = []
    for index, label in enumerate(STAGE_LABELS):
        if index < stage or (index == stage and status == statuses.DELIVERED):
            state = "done"
        elif index == stage:
            state = "stopped" if is_problem else "current"
        else:
            state = "upcoming"
        steps.append(Step(label, state))
    return steps


def progress_percent(status: str) -> int:
    """How far along the bar a status is, 0-100 (the stage over the last stage)."""
    known = statuses.STATUSES.get(status)
    stage = known.stage if known else 0
    return round(100 * stage / (len(STAGE_LABELS) - 1))


@dataclass(frozen=True)
class EventLine:
    utc: str | None
    local: str
    description: str
    location: str | None
    tone: str


@dataclass(frozen=True)
class ShipmentPage:
    """What the tracking page shows of one shipment."""

    tracking_number: str
    courier: str
    status: str
    status_label: str
    status_note: str
    tone: str
    steps: list[Step]
    is_problem: bool
    delivered_at: str | None
    delivered_local: str
    estimated_delivery: str | None
    estimated_local: str
    arrival: str
    last_updated: str | None
    updated_ago: str
    events: list[EventLine]


def courier_name(courier: str) -> str:
    """A courier's display name ("easyparcel" -> "EasyParcel")."""
    known = {"easyparcel": "EasyParcel", "fake": "Test courier"}
    return known.get(courier, courier.replace("_", " ").title())


def shipment_page(shipment: Mapping[str, Any], *, zone: str, now: datetime) -> ShipmentPage:
    """The page model of one shipment of the guest (or customer) view (`web.views.shipment_view`)."""
    status = shipment["status"]
    age = None
    updated = as_utc(shipment.get("last_updated"))
    if updated is not None:
        age = (now - updated).total_seconds()
    events = [EventLine(utc=event.get("time"), local=format_local(event.get("time"), zone),
                        description=event.get("description") or "", location=event.get("location"),
                        tone=status_tone(event.get("status")))
              for event in shipment.get("events") or ()]
    delivered_at = shipment.get("delivered_at") if status == statuses.DELIVERED else None
    estimated = None if statuses.is_final(status) else shipment.get("estimated_delivery")
    return ShipmentPage(
        tracking_number=shipment["tracking_number"], courier=courier_name(shipment["courier"]), status=status,
        status_label=shipment.get("status_label") or statuses.label_of(status),
        status_note=status_note(status),
        tone=status_tone(status), steps=progress_steps(status), is_problem=status in PROBLEM_STATUSES,
        delivered_at=delivered_at, delivered_local=format_local(delivered_at, zone),
        estimated_delivery=estimated, estimated_local=format_day(estimated, zone),
        arrival=arrival_sentence(estimated, *_range_of(shipment), shipment.get("estimate_source"), zone),
        last_updated=shipment.get("last_updated"), updated_ago=time_ago(age), events=events)


def _range_of(shipment: Mapping[str, Any]) -> tuple[str | None, str | None]:
    found = shipment.get("estimated_delivery_range") or {}
    return found.get("earliest"), found.get("latest")


def shipment_pages(view: Mapping[str, Any], *, zone: str, now: datetime) -> list[ShipmentPage]:
    """The page models of every shipment of an order view."""
    shipments: Sequence[Mapping[str, Any]] = view.get("shipments") or ()
    return [shipment_page(shipment, zone=zone, now=now) for shipment in shipments]


# --- dashboard -----------------------------------------------------------------------------------

def usage_days(history: Sequence[Mapping[str, Any]], today: date, *, days: int = 30) -> list[dict[str, Any]]:
    """One row per day of the last `days` days, oldest first, with zeros for days without calls:
    day (ISO), label ("3 Mar"), calls, ok, failed."""
    by_day = {str(row["day"]): row for row in history}
    rows = []
    for offset in range(days - 1, -1, -1):
        day = today - timedelta(days=offset)
        row = by_day.get(day.isoformat(), {})
        calls = int(row.get("calls") or 0)
        successes = int(row.get("successes") or 0)
        rows.append({"day": day.isoformat(), "label": f"{day.day} {day:%b}", "calls": calls, "ok": successes,
                     "failed": max(0, calls - successes)})
    return rows


def status_counts(active_by_status: Mapping[str, int]) -> list[dict[str, Any]]:
    """Active shipments per status in journey order (unknown statuses last), with label and tone;
    statuses with no shipment are left out."""
    order = {name: index for index, name in enumerate(statuses.STATUSES)}
    names = sorted((name for name, count in active_by_status.items() if count),
                   key=lambda name: (order.get(name, len(order)), name))
    return [{"status": name, "label": statuses.label_of(name), "count": int(active_by_status[name]),
             "tone": status_tone(name)} for name in names]


def percent(rate: float | None, *, digits: int = 1) -> str:
    """A 0-1 rate as a percentage ("97.5 %"), or "no calls" when there is none."""
    if rate is None:
        return "no calls"
    text = f"{rate * 100:.{digits}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return f"{text} %"


def is_moment(value: datetime | str) -> bool:
    """Whether a stored value is a moment: a datetime, or an ISO 8601 UTC string like
    "2026-03-01T08:00:00Z" (other strings are left alone)."""
    if isinstance(value, datetime):
        return True
    if len(value) < 20 or value[4] != "-" or value[10] != "T" or not value.endswith(("Z", "+00:00")):
        return False
    try:
        parse_iso(value)
    except ValueError:
        return False
    return True
