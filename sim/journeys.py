"""Deterministic shipment journeys for the courier simulator and their rendering in EasyParcel's
wire formats (Open API, legacy EPTrackingBulk, tracking webhooks). Pure: no I/O, no clock; every
function takes the time it needs as an argument."""
from __future__ import annotations

import hashlib
import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

MALAYSIA = timezone(timedelta(hours=8), "MYT")

OPENAPI_VERSIONS: tuple[str, ...] = ("2025-09", "2025-12", "2026-03", "2026-06")
# EasyParcel's docs first printed the older 1-11 table for 2025-09 and 2025-12 and later rewrote
# every version's docs to the 0/2-8/11 table (status_codes.json has both); the adapter reads all
# versions with the new table, so the simulator sends it for every version too.
NEW_CODE_TABLE_FROM = "2025-01"
WEBHOOK_TOPIC = "shipment.tracking.update"
NOT_FOUND_MESSAGE = "AWB number not found"
LEGACY_NOT_FOUND_REMARK = "No tracking record found"


# --- data: event kinds, plans, scenarios ----------------------------------------------------

@dataclass(frozen=True)
class EventKind:
    """One kind of tracking event: the canonical status it is meant to map to, its code in each
    Open API code table, and whether EasyParcel itself (not the courier) writes it."""

    name: str
    intended_status: str
    code_2026: int
    code_2025: int
    # EasyParcel's own events carry ISO UTC stamps and no location; courier scans carry naive
    # Malaysia-time stamps (openapi_tracking_response_success_multi.json mixes both).
    is_easyparcel: bool = False


EVENT_KINDS: dict[str, EventKind] = {
    kind.name: kind
    for kind in (
        EventKind("order_created", "info_received", 7, 7, is_easyparcel=True),
        EventKind("info_sent", "info_received", 7, 1),
        EventKind("collected", "in_transit", 3, 4),
        EventKind("dropped_off", "in_transit", 11, 4),
        EventKind("hub_arrival", "in_transit", 4, 6),
        EventKind("hub_departure", "in_transit", 4, 5),
        EventKind("out_for_delivery", "out_for_delivery", 4, 8),
        EventKind("failed_attempt", "failed_attempt", 8, 10),
        EventKind("on_hold", "exception", 8, 6),
        EventKind("delivered", "delivered", 5, 9),
        EventKind("return_initiated", "exception", 8, 11),
        EventKind("returned", "returned", 6, 11),
        # The official sample pairs "Cancelled" with code 8 (openapi_tracking_response_partial_not_found.json).
        EventKind("cancelled", "cancelled", 8, 7),
    )
}


@dataclass(frozen=True)
class Step:
    """One step of a journey plan: the event kind (one of `kinds`, picked per tracking number),
    the simulated gap after the previous step in hours, and an optional group that is included
    or left out as a whole."""

    kinds: tuple[str, ...]
    gap_hours: tuple[float, float]
    group: str | None = None
    # The trunk haul to the destination hub: its gap comes from the route (ROUTE_HOURS), not gap_hours.
    is_line_haul: bool = False


def _step(kinds: str | tuple[str, ...], low: float, high: float, group: str | None = None,
          is_line_haul: bool = False) -> Step:
    return Step(kinds if isinstance(kinds, tuple) else (kinds,), (low, high), group, is_line_haul)


_FIRST_MILE = (
    _step("order_created", 0, 0),
    _step("info_sent", 0.1, 0.6),
    _step(("collected", "collected", "dropped_off"), 2, 8),
    _step("hub_arrival", 1, 3),
    _step("hub_departure", 1, 4),
)

PLANS: dict[str, tuple[Step, ...]] = {
    "normal": (
        *_FIRST_MILE,
        _step("hub_arrival", 2, 6, group="transit_hub"),
        _step("hub_departure", 1, 3, group="transit_hub"),
        _step("hub_arrival", 3, 10, is_line_haul=True),
        _step("out_for_delivery", 6, 14),
        _step("failed_attempt", 2, 6, group="retry"),
        _step("out_for_delivery", 14, 20, group="retry"),
        _step("delivered", 1, 5),
    ),
    "held": (*_FIRST_MILE, _step("hub_arrival", 3, 10), _step("on_hold", 1, 6)),
    "returned": (
        *_FIRST_MILE,
        _step("hub_arrival", 3, 10, is_line_haul=True),
        _step("out_for_delivery", 6, 14),
        _step("failed_attempt", 2, 6),
        _step("out_for_delivery", 14, 20),
        _step("failed_attempt", 2, 6),
        _step("return_initiated", 12, 24),
        _step("returned", 24, 48),
    ),
    "cancelled": (_step("order_created", 0, 0), _step("info_sent", 0.1, 0.6), _step("cancelled", 6, 30)),
    "pending": (_step("order_created", 0, 0),),
    "not_found": (),
}


@dataclass(frozen=True)
class Scenario:
    """What happens to a tracking number with this prefix. The journey is placed so that its first
    `anchor_kind` event falls `anchor_offset_hours` after the epoch (negative: before), moved back
    by up to `anchor_jitter_hours` per number so that a batch does not move in lockstep."""

    prefix: str
    name: str
    description: str
    plan: str
    end_status: str | None
    anchor_kind: str = "order_created"
    anchor_offset_hours: float = 0.0
    anchor_jitter_hours: float = 0.0
    # (group, probability) pairs for the plan's optional groups; a group not listed is left out.
    groups: tuple[tuple[str, float], ...] = ()
    # Sometimes left out of Open API results entirely (openapi_tracking_response_partial_item_omitted.json).
    is_flaky: bool = False
    # Couriers do not move parcels on Sundays: scans that would fall on one wait for Monday. Only
    # for journeys that start at the epoch, so the anchored demo scenarios keep their state at start.
    has_weekend_pause: bool = False


_NORMAL_GROUPS = (("transit_hub", 0.5), ("retry", 0.15))
_STRAIGHT_GROUPS = (("transit_hub", 0.5),)

SCENARIOS: tuple[Scenario, ...] = (
    Scenario("EPDEL", "delivered", "already delivered when the simulator starts", "normal", "delivered",
             anchor_kind="delivered", anchor_offset_hours=-1, groups=_STRAIGHT_GROUPS),
    Scenario("EPOFD", "out_for_delivery", "out for delivery at start, delivered a few simulated hours later",
             "normal", "delivered", anchor_kind="out_for_delivery", anchor_offset_hours=-0.25,
             groups=_STRAIGHT_GROUPS),
    Scenario("EPTRN", "in_transit", "in transit at start (at the origin hub), then delivered", "normal",
             "delivered", anchor_kind="hub_arrival", anchor_offset_hours=-0.5, groups=_STRAIGHT_GROUPS),
    Scenario("EPFAD", "failed_attempt", "a failed delivery attempt at start, delivered on the next attempt",
             "normal", "delivered", anchor_kind="failed_attempt", anchor_offset_hours=-0.25,
             groups=(("transit_hub", 0.5), ("retry", 1.0))),
    Scenario("EPEXC", "exception", "on hold at a hub from the start and never moves again", "held",
             "exception", anchor_kind="on_hold", anchor_offset_hours=-0.5),
    Scenario("EPRTN", "returned", "two failed attempts, then returned to sender about 3 simulated hours "
             "after start", "returned", "returned", anchor_kind="returned", anchor_offset_hours=3),
    Scenario("EPCAN", "cancelled", "cancelled before collection, already at start", "cancelled", "cancelled",
             anchor_kind="cancelled", anchor_offset_hours=-1),
    Scenario("EPPND", "pending", "Schedule In Arrangement forever: never handed to the courier", "pending",
             "info_received", anchor_offset_hours=-1),
    Scenario("EPNOF", "not_found", "never found: every call answers not_found (the cache keeps it pending)",
             "not_found", None),
    Scenario("EPLAT", "late", "not found for the first 2 simulated hours, then a normal journey", "normal",
             "delivered", anchor_offset_hours=2, groups=_NORMAL_GROUPS, has_weekend_pause=True),
    Scenario("EPFLK", "flaky", "a normal journey, but left out of about half the Open API responses "
             "(no not_found entry, only the error count)", "normal", "delivered", groups=_NORMAL_GROUPS,
             is_flaky=True, has_weekend_pause=True),
    Scenario("", "normal", "any other number: info received at start, collected within hours, delivered "
             "in 1-3 business days within West Malaysia and 3-7 to or from Sabah and Sarawak, no courier "
             "scans on Sundays (about 15% after one failed attempt)", "normal", "delivered",
             anchor_jitter_hours=2, groups=_NORMAL_GROUPS, has_weekend_pause=True),
)

DEFAULT_SCENARIO = SCENARIOS[-1]


# --- data: places and people ------------------------------------------------------------------

COURIERS: tuple[str, ...] = ("City-Link", "J&T Express", "Ninja Van", "DHL eCommerce", "Pos Laju", "Skynet", "GDEX")

# (city, state, the state's hub city)
CITIES: tuple[tuple[str, str, str], ...] = (
    ("Kuala Lumpur", "Kuala Lumpur", "Kuala Lumpur"),
    ("Shah Alam", "Selangor", "Shah Alam"),
    ("Petaling Jaya", "Selangor", "Shah Alam"),
    ("Klang", "Selangor", "Shah Alam"),
    ("Penang", "Penang", "Penang"),
    ("Bayan Lepas", "Penang", "Penang"),
    ("Johor Bahru", "Johor", "Johor Bahru"),
    ("Ipoh", "Perak", "Ipoh"),
    ("Melaka", "Melaka", "Melaka"),
    ("Seremban", "Negeri Sembilan", "Seremban"),
    ("Kuantan", "Pahang", "Kuantan"),
    ("Kota Bharu", "Kelantan", "Kota Bharu"),
    ("Alor Setar", "Kedah", "Alor Setar"),
    ("Kota Kinabalu", "Sabah", "Kota Kinabalu"),
    ("Kuching", "Sarawak", "Kuching"),
)
EAST_MALAYSIA: frozenset[str] = frozenset({"Sabah", "Sarawak"})
# Simulated trunk-haul hours to the destination hub by route: within West Malaysia, between Sabah and
# Sarawak, and across the South China Sea. Made up to look plausible, not measured.
ROUTE_HOURS: dict[str, tuple[float, float]] = {"west": (4, 30), "east": (30, 80), "sea": (48, 120)}
# Some couriers are faster than others on the same route (simulated, a multiplier of ROUTE_HOURS).
COURIER_PACE: dict[str, float] = {"City-Link": 1.1, "J&T Express": 0.8, "Ninja Van": 1.0, "DHL eCommerce": 0.9,
                                  "Pos Laju": 1.3, "Skynet": 1.15, "GDEX": 1.0}
TRANSIT_HUB_CITIES: tuple[tuple[str, str], ...] = (
    ("Shah Alam", "Selangor"), ("Kuala Lumpur", "Kuala Lumpur"), ("Ipoh", "Perak"),
)
RECIPIENTS: tuple[str, ...] = ("Suntech", "Nurul Aisyah", "Tan Wei Ming", "Ravi Kumar", "Siti Hajar", "Lim Ah Kow")
FAILED_ATTEMPT_TEXTS: tuple[str, ...] = (
    "Delivery attempt failed - recipient not available",
    "Delivery attempt failed - premises closed",
    "Delivery attempt failed - unable to contact recipient",
)
ON_HOLD_TEXTS: tuple[str, ...] = (
    "Shipment on hold - incomplete address, awaiting consignee instructions",
    "Shipment on hold - held at hub for inspection",
    "Shipment on hold - awaiting consignee to reschedule delivery",
)


# --- journeys -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class JourneyEvent:
    """One event of a journey, at its true time (aware, UTC)."""

    time: datetime
    kind: str
    text: str
    location: str | None

    @property
    def intended_status(self) -> str:
        return EVENT_KINDS[self.kind].intended_status

    @property
    def is_easyparcel(self) -> bool:
        return EVENT_KINDS[self.kind].is_easyparcel


@dataclass(frozen=True)
class Journey:
    """The whole life of one tracking number, events in chronological order."""

    tracking_number: str
    scenario: Scenario
    courier: str
    shipment_number: str
    order_number: str
    events: tuple[JourneyEvent, ...]


def scenario_for(tracking_number: str) -> Scenario:
    """The scenario a tracking number's prefix selects (case-insensitive); the default otherwise."""
    upper = tracking_number.strip().upper()
    for scenario in SCENARIOS:
        if scenario.prefix and upper.startswith(scenario.prefix):
            return scenario
    return DEFAULT_SCENARIO


def _digest(*parts: object) -> bytes:
    return hashlib.sha256("\x1f".join(str(part) for part in parts).encode("utf-8")).digest()


def fraction(*parts: object) -> float:
    """A stable number in [0, 1) derived from the parts (hashlib, never Python's hash())."""
    return int.from_bytes(_digest(*parts)[:8], "big") / 2.0**64


def seeded_rng(*parts: object) -> random.Random:
    """A random generator seeded from the parts through SHA-256, the same on every run."""
    return random.Random(int.from_bytes(_digest(*parts)[:16], "big"))


def _code(rng: random.Random, length: int = 5) -> str:
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
    return "".join(rng.choice(alphabet) for _ in range(length))


def _hub(city: str, state: str) -> str:
    return f"{city} Hub, {state}, MY"


def route_kind(origin_state: str, destination_state: str) -> str:
    """"west" within West Malaysia, "east" between Sabah and Sarawak, "sea" across the sea."""
    east = (origin_state in EAST_MALAYSIA) + (destination_state in EAST_MALAYSIA)
    return "west" if east == 0 else "east" if east == 2 else "sea"


def build_journey(tracking_number: str, seed: str, epoch: datetime) -> Journey:
    """The journey of one tracking number: a pure function of the number, the seed and the epoch."""
    return journey_for(tracking_number, scenario_for(tracking_number), seed, epoch)


def journey_for(tracking_number: str, scenario: Scenario, seed: str, epoch: datetime) -> Journey:
    """The journey of a tracking number under a given scenario."""
    rng = seeded_rng("journey", seed, tracking_number)
    courier = rng.choice(COURIERS)
    origin = rng.choice(CITIES)
    destination = rng.choice([city for city in CITIES if city[1] != origin[1]])
    groups = dict(scenario.groups)
    included = {name for name, chance in sorted(groups.items()) if rng.random() < chance}
    steps = [step for step in PLANS[scenario.plan] if step.group is None or step.group in included]

    hubs = [_hub(origin[2], origin[1])]
    if "transit_hub" in included:
        transit = rng.choice([t for t in TRANSIT_HUB_CITIES if t[1] not in (origin[1], destination[1])])
        hubs.append(_hub(*transit))
    hubs.append(_hub(destination[2], destination[1]))

    offsets: list[float] = []
    kinds: list[str] = []
    elapsed = 0.0
    for step in steps:
        low, high = step.gap_hours
        if step.is_line_haul:
            low, high = (hours * COURIER_PACE.get(courier, 1.0) for hours in ROUTE_HOURS[route_kind(origin[1], destination[1])])
        elapsed += rng.uniform(low, high) * 3600.0
        offsets.append(elapsed)
        kinds.append(rng.choice(step.kinds))

    start = epoch
    if kinds:
        anchor = kinds.index(scenario.anchor_kind) if scenario.anchor_kind in kinds else 0
        jitter = rng.uniform(0.0, scenario.anchor_jitter_hours) * 3600.0
        start = epoch + timedelta(seconds=scenario.anchor_offset_hours * 3600.0 - jitter - offsets[anchor])
    if scenario.has_weekend_pause:
        offsets = _pause_on_sundays(start, offsets, kinds)

    events: list[JourneyEvent] = []
    arrivals = 0
    recipient = rng.choice(RECIPIENTS)
    for offset, kind in zip(offsets, kinds):
        moment = start + timedelta(seconds=offset)
        if EVENT_KINDS[kind].is_easyparcel:
            moment = moment.replace(microsecond=moment.microsecond // 1000 * 1000)
        else:
            moment = moment.replace(microsecond=0)
        if kind == "hub_arrival":
            arrivals += 1
        hub = hubs[min(max(arrivals, 1), len(hubs)) - 1]
        text, location = _describe(kind, rng, courier=courier, origin=origin, destination=destination,
                                   hub=hub, last_hub=hubs[-1], recipient=recipient)
        events.append(JourneyEvent(moment, kind, text, location))

    first = events[0].time if events else epoch
    yymm = first.astimezone(MALAYSIA).strftime("%y%m")
    numbers = seeded_rng("numbers", seed, tracking_number)
    return Journey(
        tracking_number=tracking_number,
        scenario=scenario,
        courier=courier,
        shipment_number=f"ES-{yymm}-{_code(numbers)}",
        order_number=f"EI-{yymm}-{_code(numbers)}",
        events=tuple(events),
    )


def _pause_on_sundays(start: datetime, offsets: Sequence[float], kinds: Sequence[str]) -> list[float]:
    """Offsets with every courier scan that would fall on a Sunday (Malaysia time) moved to Monday
    morning, and everything after it moved by as much."""
    shifted: list[float] = []
    delay = 0.0
    for offset, kind in zip(offsets, kinds):
        moment = start + timedelta(seconds=offset + delay)
        local = moment.astimezone(MALAYSIA)
        if not EVENT_KINDS[kind].is_easyparcel and local.weekday() == 6:
            midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
            monday = midnight + timedelta(days=1, hours=8, seconds=(local - midnight).total_seconds() / 8)
            delay += (monday - local).total_seconds()
        shifted.append(offset + delay)
    return shifted


def _describe(kind: str, rng: random.Random, *, courier: str, origin: tuple[str, str, str],
              destination: tuple[str, str, str], hub: str, last_hub: str, recipient: str) -> tuple[str, str | None]:
    """Text and location of one event (texts follow the official samples where there are any)."""
    if kind == "order_created":
        return "Schedule In Arrangement", None
    if kind == "info_sent":
        if courier.startswith("DHL"):
            return "Shipment data received - Awaiting Parcel Handover to DHL", _hub(origin[2], origin[1])
        return f"Shipment information sent to {courier}", None
    if kind == "collected":
        return f"Parcel has been collected at {origin[0]}", origin[0]
    if kind == "dropped_off":
        return "Parcel Drop Off at Point", f"{courier} drop-off point, {origin[0]}, MY"
    if kind == "hub_arrival":
        return f"Arrived at {hub.split(',')[0]}", hub
    if kind == "hub_departure":
        return "Delivery In Transit", hub
    if kind == "out_for_delivery":
        return "Out for delivery", last_hub
    if kind == "failed_attempt":
        return rng.choice(FAILED_ATTEMPT_TEXTS), f"{destination[0]}, MY"
    if kind == "on_hold":
        return rng.choice(ON_HOLD_TEXTS), hub
    if kind == "delivered":
        # Skynet writes "Deliverd To <name>", typo included (webhook_shipment_tracking_update.json).
        if courier == "Skynet":
            return f"Deliverd To {recipient}", f"{destination[0]}, MY"
        return "Delivered", f"{destination[0]}, MY"
    if kind == "return_initiated":
        return "Shipment on hold - returning to sender", last_hub
    if kind == "returned":
        return "Returned to sender", f"{origin[0]}, MY"
    if kind == "cancelled":
        return "Cancelled", _hub(origin[2], origin[1])
    raise ValueError(f"unknown event kind {kind!r}")


def visible_events(journey: Journey, now: datetime) -> tuple[JourneyEvent, ...]:
    """The events that have happened by simulated time `now`, oldest first."""
    return tuple(event for event in journey.events if event.time <= now)


def simulated_time(epoch: datetime, speed: float, started_at: datetime, wall_now: datetime,
                   advanced_seconds: float = 0.0) -> datetime:
    """Simulated time: the epoch when the simulator started, then `speed` simulated seconds per real
    second, plus any explicit advance."""
    elapsed = (wall_now - started_at).total_seconds()
    return epoch + timedelta(seconds=elapsed * speed + advanced_seconds)


# --- rendering ----------------------------------------------------------------------------------

def is_new_code_table(api_version: str) -> bool:
    return api_version >= NEW_CODE_TABLE_FROM


def status_code_for(kind: str, api_version: str) -> int:
    """The shipment_status_code of an event kind in the given Open API version's table."""
    event_kind = EVENT_KINDS[kind]
    return event_kind.code_2026 if is_new_code_table(api_version) else event_kind.code_2025


def format_event_time(event: JourneyEvent) -> str:
    """The event's stamp as EasyParcel writes it: ISO UTC with milliseconds and a Z for EasyParcel's
    own events, naive Malaysia time for courier scans."""
    if event.is_easyparcel:
        utc = event.time.astimezone(UTC)
        return f"{utc:%Y-%m-%dT%H:%M:%S}.{utc.microsecond // 1000:03d}Z"
    return event.time.astimezone(MALAYSIA).strftime("%Y-%m-%d %H:%M:%S")


def ordered_status_log(events: Sequence[JourneyEvent], seed: str, tracking_number: str) -> list[JourneyEvent]:
    """The events in the order the Open API returns them: usually oldest first, sometimes newest
    first, sometimes with one neighbouring pair swapped. The choice is stable for a given number and
    count of events (openapi_tracking_response_success_multi.json vs ..._partial_not_found.json)."""
    ordered = list(events)
    if len(ordered) < 2:
        return ordered
    pick = fraction("order", seed, tracking_number, len(ordered))
    if pick < 0.5:
        return ordered
    if pick < 0.75:
        return ordered[::-1]
    at = int(fraction("swap", seed, tracking_number, len(ordered)) * (len(ordered) - 1))
    ordered[at], ordered[at + 1] = ordered[at + 1], ordered[at]
    return ordered


def render_openapi_item(journey: Journey, now: datetime, api_version: str, seed: str) -> dict[str, Any] | None:
    """The Open API result item for a journey at simulated time `now`, or None when nothing is
    visible yet (the caller answers not_found). `latest_*` copy the last element as returned."""
    events = visible_events(journey, now)
    if not events:
        return None
    log = [
        {
            "event_date": format_event_time(event),
            "shipment_status_code": status_code_for(event.kind, api_version),
            "tracking_status": event.text,
            "location": event.location,
        }
        for event in ordered_status_log(events, seed, journey.tracking_number)
    ]
    last = log[-1]
    return {
        "status": "success",
        "awb_number": journey.tracking_number,
        "shipment_number": journey.shipment_number,
        "order_number": journey.order_number,
        "latest_shipment_status_code": last["shipment_status_code"],
        "latest_tracking_status": last["tracking_status"],
        "latest_event_date": last["event_date"],
        "status_log": log,
    }


def openapi_not_found_item(tracking_number: str) -> dict[str, Any]:
    """The Open API item for an unknown number (openapi_tracking_response_partial_not_found.json)."""
    return {"awb_number": tracking_number, "status": "not_found", "message": NOT_FOUND_MESSAGE}


def openapi_tracking_response(results: Sequence[dict[str, Any]], success: int, errors: int,
                              request_id: str) -> dict[str, Any]:
    """The Open API tracking envelope; the counts include items left out of `results`."""
    return {
        "status_code": 200,
        "request_id": request_id,
        "message": f"{success} requests success, {errors} request error.",
        "data": {"results": list(results)},
    }


def is_omitted(seed: str, tracking_number: str, nth_request: int, rate: float) -> bool:
    """Whether a flaky number is left out of its `nth_request`-th response (stable per seed)."""
    return fraction("omit", seed, tracking_number, nth_request) < rate


def render_legacy_item(journey: Journey, now: datetime) -> dict[str, Any] | None:
    """The legacy EPTrackingBulk item at simulated time `now` (newest first, naive Malaysia time,
    legacy_eptrackingbulk_response_in_transit.json), or None when nothing is visible yet."""
    events = visible_events(journey, now)
    if not events:
        return None
    status_list = []
    for event in reversed(events):
        local = event.time.astimezone(MALAYSIA)
        status_list.append({
            "status": event.text,
            "location": event.location or "",
            "event_date": local.strftime("%Y-%m-%d"),
            "event_time": local.strftime("%H:%M:%S"),
        })
    newest = status_list[0]
    return {
        "awb": journey.tracking_number,
        "status": "Success",
        "remarks": "",
        "latest_status": newest["status"],
        "latest_update": f"{newest['event_date']} {newest['event_time']}",
        "status_list": status_list,
    }


def legacy_not_found_item(tracking_number: str) -> dict[str, Any]:
    """The legacy item for an unknown number (legacy_eptrackingbulk_response_bulk_partial.json)."""
    return {"awb": tracking_number, "status": "Fail", "remarks": LEGACY_NOT_FOUND_REMARK,
            "latest_status": "", "latest_update": "", "status_list": []}


def legacy_tracking_response(results: Sequence[dict[str, Any]]) -> dict[str, Any]:
    return {"api_status": "Success", "error_code": "0", "error_remark": "", "result": list(results)}


def legacy_error(code: str, remark: str) -> dict[str, Any]:
    """A legacy error envelope (legacy_eptrackingbulk_response_unauthorized.json)."""
    return {"api_status": "Error", "error_code": code, "error_remark": remark}


def webhook_uuid(seed: str, tracking_number: str, index: int) -> str:
    """The webhook id of a journey's `index`-th event: stable, so a duplicate delivery repeats it."""
    return str(uuid.UUID(bytes=_digest("webhook", seed, tracking_number, index)[:16], version=4))


def render_webhook(journey: Journey, index: int, seed: str, api_version: str = "2026-06") -> dict[str, Any]:
    """The shipment.tracking.update webhook announcing the journey's `index`-th event: its history
    newest first, `timestamp` instead of `event_date`, no location
    (webhook_shipment_tracking_update.json)."""
    events = journey.events[: index + 1]
    log = [
        {
            "timestamp": format_event_time(event),
            "shipment_status_code": status_code_for(event.kind, api_version),
            "tracking_status": event.text,
        }
        for event in reversed(events)
    ]
    newest = log[0]
    return {
        "topic": WEBHOOK_TOPIC,
        "shipment_number": journey.shipment_number,
        "uuid": webhook_uuid(seed, journey.tracking_number, index),
        "timestamp": newest["timestamp"],
        "awb_number": journey.tracking_number,
        "latest_shipment_status_code": newest["shipment_status_code"],
        "latest_tracking_status": newest["tracking_status"],
        "status_log": log,
    }


def describe_journey(journey: Journey, now: datetime, api_version: str = "2026-06") -> dict[str, Any]:
    """A JSON-safe view of a whole journey for the control API: scenario and every event, with
    whether it is visible yet."""
    return {
        "tracking_number": journey.tracking_number,
        "scenario": journey.scenario.name,
        "prefix": journey.scenario.prefix,
        "end_status": journey.scenario.end_status,
        "courier": journey.courier,
        "shipment_number": journey.shipment_number,
        "order_number": journey.order_number,
        "events": [
            {
                "time": event.time.astimezone(UTC).isoformat().replace("+00:00", "Z"),
                "event_date": format_event_time(event),
                "kind": event.kind,
                "intended_status": event.intended_status,
                "shipment_status_code": status_code_for(event.kind, api_version),
                "tracking_status": event.text,
                "location": event.location,
                "is_visible": event.time <= now,
            }
            for event in journey.events
        ],
    }


def scenario_table() -> list[dict[str, Any]]:
    """The scenario table as JSON-safe rows (prefix, name, end status, description)."""
    return [
        {"prefix": s.prefix or "(any other)", "name": s.name, "end_status": s.end_status,
         "description": s.description}
        for s in SCENARIOS
    ]


# --- history: finished journeys for the demo and the estimates backtest -------------------------------

HISTORY_PREFIX = "EPHST"
# Share of history journeys returned to sender after two failed attempts (simulated, plausible).
HISTORY_RETURN_RATE = 0.03
_HISTORY_RETURNED = Scenario(HISTORY_PREFIX, "history_returned", "two failed attempts, then returned",
                             "returned", "returned", has_weekend_pause=True)
_HISTORY_DELIVERED = Scenario(HISTORY_PREFIX, "history", "a normal journey, finished", "normal", "delivered",
                              groups=_NORMAL_GROUPS, has_weekend_pause=True)


def history_journeys(count: int, seed: str, *, end: datetime, days: int = 120) -> list[Journey]:
    """`count` finished journeys started over the `days` before `end` and all over by then (delivered,
    some after a failed attempt, about 3% returned), oldest first; tracking numbers EPHST0000001...."""
    journeys: list[Journey] = []
    window = timedelta(days=days)
    index = 0
    while len(journeys) < count:
        index += 1
        number = f"{HISTORY_PREFIX}{index:07d}"
        start = end - window + window * fraction("history-start", seed, number)
        is_returned = fraction("history-outcome", seed, number) < HISTORY_RETURN_RATE
        journey = journey_for(number, _HISTORY_RETURNED if is_returned else _HISTORY_DELIVERED, seed, start)
        if journey.events and journey.events[-1].time <= end:
            journeys.append(journey)
    return sorted(journeys, key=lambda journey: journey.events[0].time)
