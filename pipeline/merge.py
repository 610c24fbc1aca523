"""Merging tracking updates into a shipment's stored state: events as a set keyed by
fingerprint, the current status derived from the merged events by time with final statuses
sticky. Pure: the same updates merged in any order, any number of times, give the same state."""
from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable, Iterator, Mapping, Sequence

from pipeline import status as statuses
from pipeline.canonical import TrackingEvent, TrackingUpdate, parse_iso


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
# How far ahead of our clock a courier's event may be dated and still count as news (clock skew,
# time zone slips). A later one is kept and shown, but never counts for `last_event_at`: a scan
# dated year 9999 kept a shipment from ever expiring. (Not dropped: the simulator's clock runs
# ahead of ours at speeds above 1, and its events must still show.)
MAX_EVENT_LEAD = timedelta(days=1)


class StoredEvents(Sequence[TrackingEvent]):
    """A shipment's events as stored (`TrackingEvent.to_dict`'s dicts, newest first), made into
    TrackingEvents only when someone reads them as events. `merge_updates` adds newer events to
    them without reading them back (see `_merge_newer`); `dicts` is what to store."""

    __slots__ = ("dicts", "_events")

    def __init__(self, dicts: Sequence[Mapping[str, Any]]) -> None:
        self.dicts = list(dicts)
        self._events: tuple[TrackingEvent, ...] | None = None

    def events(self) -> tuple[TrackingEvent, ...]:
        if self._events is None:
            self._events = tuple(TrackingEvent.from_dict(d) for d in self.dicts)
        return self._events

    def __getitem__(self, index: Any) -> Any:
        return self.events()[index]

    def __len__(self) -> int:
        return len(self.dicts)

    def __iter__(self) -> Iterator[TrackingEvent]:
        return iter(self.events())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (tuple, StoredEvents)):
            return self.events() == tuple(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.events())

    def __repr__(self) -> str:
        return f"StoredEvents({self.events()!r})"


@dataclass(frozen=True)
class ShipmentState:
    """The part of a shipment that updates change. Events are newest first (a tuple, or the
    stored dicts as `StoredEvents`)."""

    status: str = statuses.PENDING
    events: tuple[TrackingEvent, ...] = ()
    estimated_delivery: datetime | None = None
    estimated_delivery_as_of: datetime | None = None
    delivered_at: datetime | None = None
    delivery_location: str | None = None
    last_event_at: datetime | None = None
    has_unmapped_events: bool = False


@dataclass(frozen=True)
class MergeOutcome:
    state: ShipmentState
    previous_status: str
    events_added: int

    @property
    def status_changed(self) -> bool:
        return self.state.status != self.previous_status

    @property
    def is_noop(self) -> bool:
        """Nothing a reader could see changed."""
        return self.events_added == 0 and not self.status_changed


def _order_key(event: TrackingEvent) -> tuple[datetime, str]:
    return (event.time, event.fingerprint)


def _richness(event: TrackingEvent) -> tuple[int, int, str, str, str]:
    """Total order used when two sources report the same scan: keep the one that says more
    (a known status, a location), then decide by content so the choice never depends on order."""
    return (
        1 if event.status else 0,
        1 if event.location else 0,
        event.status or "",
        event.location or "",
        event.raw_text,
    )


def union_events(*groups: Iterable[TrackingEvent], max_events: int | None = None) -> tuple[TrackingEvent, ...]:
    """Set union by fingerprint, newest first, cut to the newest `max_events` while always
    keeping the events that decide the status (see `decisive_events`)."""
    by_fingerprint: dict[str, TrackingEvent] = {}
    for group in groups:
        for event in group:
            current = by_fingerprint.get(event.fingerprint)
            if current is None or _richness(event) > _richness(current):
                by_fingerprint[event.fingerprint] = event
    ordered = sorted(by_fingerprint.values(), key=_order_key, reverse=True)
    if max_events is None or len(ordered) <= max_events:
        return tuple(ordered)
    kept = ordered[:max_events]
    pinned = [e for e in decisive_events(ordered) if e not in kept]
    return tuple(sorted(kept + pinned, key=_order_key, reverse=True))


def decisive_events(events: Sequence[TrackingEvent]) -> list[TrackingEvent]:
    """The latest final event and the latest event with a known status: trimming history must
    never drop them, or a capped shipment could lose its delivered status to newer noise."""
    known = [e for e in events if e.status is not None and statuses.is_known(e.status)]
    finals = [e for e in known if statuses.is_final(e.status)]
    chosen = []
    if finals:
        chosen.append(max(finals, key=_order_key))
    if known:
        chosen.append(max(known, key=_order_key))
    return chosen


def combine_updates(updates: Sequence[TrackingUpdate]) -> TrackingUpdate:
    """Several updates for one tracking number (e.g. a batch of webhooks) as one: the union of
    their events, the latest reported status and the newest estimate."""
    first = updates[0]
    if len(updates) == 1:
        return first
    events = union_events(*(u.events for u in updates))
    reported = [u for u in updates if u.reported_status is not None and u.reported_at is not None]
    latest_report = max(reported, key=lambda u: (u.reported_at, u.reported_status)) if reported else None
    estimates = [u for u in updates if u.estimated_delivery is not None]
    newest_estimate = max(estimates, key=lambda u: (max((e.time for e in u.events), default=u.reported_at or _EPOCH),
                                                     u.estimated_delivery)) if estimates else None
    return TrackingUpdate(
        courier=first.courier, tracking_number=first.tracking_number, events=tuple(reversed(events)),
        estimated_delivery=newest_estimate.estimated_delivery if newest_estimate else None,
        reported_status=latest_report.reported_status if latest_report else None,
        reported_at=latest_report.reported_at if latest_report else None,
    )


def status_only_event(update: TrackingUpdate) -> TrackingEvent | None:
    """A status the courier reported without events (e.g. shipment.status.update) becomes an
    event at its report time, so that it merges like every other scan."""
    if update.reported_status is None or update.reported_at is None or update.events:
        return None
    return TrackingEvent(time=update.reported_at, raw_text=statuses.label_of(update.reported_status),
                         status=update.reported_status, raw_code=f"status:{update.reported_status}")


def derive_status(events: Sequence[TrackingEvent], *, is_expired: bool = False) -> str:
    """The current status from a set of events.

    The latest event with a known status decides, except that a final status (delivered,
    returned, cancelled) is sticky: a later non-final scan never undoes it. An expired shipment
    stays expired unless the courier reports a final status.
    """
    known = [e for e in events if e.status is not None and statuses.is_known(e.status)]
    finals = [e for e in known if statuses.is_final(e.status) and e.status != statuses.EXPIRED]
    if finals:
        return str(max(finals, key=_order_key).status)
    if is_expired:
        return statuses.EXPIRED
    if not known:
        return statuses.PENDING
    return str(max(known, key=_order_key).status)


def _delivery(events: Sequence[TrackingEvent], status: str) -> tuple[datetime | None, str | None]:
    if status != statuses.DELIVERED:
        return None, None
    delivered = [e for e in events if e.status == statuses.DELIVERED]
    if not delivered:
        return None, None
    last = max(delivered, key=_order_key)
    return last.time, last.location


def merge_updates(state: ShipmentState, updates: Sequence[TrackingUpdate], *, max_events: int,
                  now: datetime | None = None) -> MergeOutcome:
    """Merge courier updates for one shipment into its state. Given `now`, events dated more than
    `MAX_EVENT_LEAD` after it do not count for `last_event_at` (the expiry clock)."""
    incoming: list[TrackingEvent] = []
    estimated, estimated_as_of = state.estimated_delivery, state.estimated_delivery_as_of
    for update in updates:
        incoming.extend(update.events)
        synthetic = status_only_event(update)
        if synthetic is not None:
            incoming.append(synthetic)
        if update.estimated_delivery is not None:
            # The newest report wins; ties go to the later date, so order never matters.
            as_of = max((e.time for e in update.events), default=update.reported_at)
            candidate = (as_of, update.estimated_delivery)
            if estimated is None or _later(candidate, (estimated_as_of, estimated)):
                estimated, estimated_as_of = update.estimated_delivery, as_of
    horizon = now + MAX_EVENT_LEAD if now is not None else None
    if isinstance(state.events, StoredEvents):
        newer = _merge_newer(state, incoming, estimated, estimated_as_of, max_events=max_events, horizon=horizon)
        if newer is not None:
            return newer
    events = union_events(state.events, incoming, max_events=max_events)
    before = {e.fingerprint for e in state.events}
    added = sum(1 for e in events if e.fingerprint not in before)
    is_expired = state.status == statuses.EXPIRED
    status = derive_status(events, is_expired=is_expired)
    delivered_at, delivery_location = _delivery(events, status)
    merged = replace(
        state,
        status=status,
        events=events,
        estimated_delivery=estimated,
        estimated_delivery_as_of=estimated_as_of,
        delivered_at=delivered_at,
        delivery_location=delivery_location,
        last_event_at=max((e.time for e in events if horizon is None or e.time <= horizon),
                          default=state.last_event_at if horizon is None or (state.last_event_at or _EPOCH) <= horizon
                          else None),
        has_unmapped_events=any(e.status is None for e in events),
    )
    return MergeOutcome(state=merged, previous_status=state.status, events_added=added)


def _later(a: tuple[datetime | None, datetime], b: tuple[datetime | None, datetime]) -> bool:
    a_key = (a[0] is not None, a[0] or a[1], a[1])
    b_key = (b[0] is not None, b[0] or b[1], b[1])
    return a_key > b_key


# --- the common case without reading stored events back: scans newer than everything stored ----

def _stored_keys(stored: Sequence[Any]) -> list[tuple[str, str]] | None:
    """(time key, fingerprint) of each stored event dict, or None unless every one is exactly
    `to_dict`'s form: its six keys, a fingerprint, a text, and `iso_utc`'s time text
    (`YYYY-MM-DDTHH:MM:SS[.ffffff]Z`, whose text without the Z sorts in time order)."""
    try:
        fields = [(d["time"], d["fingerprint"], d["raw_text"], d["status"], d["raw_code"], d["location"], len(d))
                  for d in stored]
    except (KeyError, TypeError, IndexError):
        return None
    keys = []
    for time, fingerprint, raw_text, _, _, _, size in fields:
        if size != 6 or type(time) is not str or type(fingerprint) is not str or type(raw_text) is not str:
            return None
        length = len(time)
        if not fingerprint or (length != 20 and length != 27) or time[-1] != "Z" or time[10] != "T" or (
                length == 27 and (time[19] != "." or time[19:] == ".000000Z")):
            return None
        keys.append((time[:-1], fingerprint))
    return keys


def _merge_newer(state: ShipmentState, incoming: Sequence[TrackingEvent], estimated: datetime | None,
                 estimated_as_of: datetime | None, *, max_events: int, horizon: datetime | None) -> MergeOutcome | None:
    """`merge_updates`' result, computed from the stored dicts without making them events, when
    every incoming event is new and newer (by time, then fingerprint) than every stored one, the
    stored events are as `union_events` leaves them (`to_dict`'s form, newest first, one per
    fingerprint), nothing is trimmed, and the newest event is within the horizon. Otherwise None
    (the caller does the whole merge). tests/unit/test_merge.py checks it against the whole merge."""
    assert isinstance(state.events, StoredEvents)
    stored = state.events.dicts
    if not incoming or len(stored) + len(incoming) > max_events:
        return None
    keys = _stored_keys(stored)
    if keys is None or any(keys[i] <= keys[i + 1] for i in range(len(keys) - 1)):
        return None  # not as written, not newest first, or a fingerprint twice
    held = {fingerprint for _, fingerprint in keys}
    new = union_events(incoming)
    if any(e.fingerprint in held for e in new):
        return None
    oldest = new[-1].time_iso
    if len(oldest) not in (20, 27) or (keys and (oldest[:-1], new[-1].fingerprint) <= keys[0]):
        return None
    if horizon is not None and new[0].time > horizon:
        return None
    new_dicts = [e.to_dict() for e in new]
    status = _status_of_newer(new_dicts, stored, is_expired=state.status == statuses.EXPIRED)
    delivered_at = delivery_location = None
    if status == statuses.DELIVERED:
        last = next(d for d in new_dicts + stored if d["status"] == statuses.DELIVERED)
        delivered_at, delivery_location = parse_iso(last["time"]), last["location"]
    merged = replace(
        state, status=status, events=StoredEvents(new_dicts + stored), estimated_delivery=estimated,
        estimated_delivery_as_of=estimated_as_of, delivered_at=delivered_at, delivery_location=delivery_location,
        last_event_at=new[0].time,
        has_unmapped_events=any(d["status"] is None for d in new_dicts) or any(d["status"] is None for d in stored),
    )
    return MergeOutcome(state=merged, previous_status=state.status, events_added=len(new))


def _status_of_newer(new: Sequence[Mapping[str, Any]], stored: Sequence[Mapping[str, Any]], *, is_expired: bool) -> str:
    """`derive_status` of new + stored event dicts, both newest first, all new ones newer."""
    for group in (new, stored):
        for d in group:
            if statuses.is_final(d["status"]) and d["status"] != statuses.EXPIRED:
                return str(d["status"])
    if is_expired:
        return statuses.EXPIRED
    for group in (new, stored):
        for d in group:
            if d["status"] is not None and statuses.is_known(d["status"]):
                return str(d["status"])
    return statuses.PENDING
