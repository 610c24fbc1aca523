"""Canonical value objects every courier adapter produces and the pipeline consumes: tracking
events, per-shipment updates and the result of one bulk call. Plain, frozen, JSON-safe."""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field, replace
from functools import cached_property
from datetime import datetime, timezone
from typing import Any, Mapping

from pipeline import status as statuses


def to_utc(moment: datetime) -> datetime:
    """An aware datetime in UTC (naive input is taken as UTC)."""
    if moment.tzinfo is timezone.utc:  # most are already (stored events read back at every merge)
        return moment
    if moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def iso_utc(moment: datetime | None) -> str | None:
    """ISO 8601 in UTC with a Z, or None."""
    if moment is None:
        return None
    text = to_utc(moment).isoformat().replace("+00:00", "Z")
    return text


def iso_utc_seconds(moment: datetime | None) -> str | None:
    """ISO 8601 in UTC to the whole second with a Z (`2026-11-24T09:10:56Z`), or None: the one
    format every answer, cached document and page shows. Stored values keep their full precision."""
    if moment is None:
        return None
    return to_utc(moment).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(text: str | None) -> datetime | None:
    """Inverse of `iso_utc`."""
    if not text:
        return None
    return to_utc(datetime.fromisoformat(text))  # Python 3.11 reads the Z itself, as UTC


def _normalise_text(text: str) -> str:
    return " ".join(text.split()).casefold()


@dataclass(frozen=True)
class TrackingEvent:
    """One courier scan. `status` is canonical, or None when the courier's code is not mapped;
    the raw code and text are always kept."""

    time: datetime
    raw_text: str
    status: str | None = None
    raw_code: str | None = None
    location: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "time", to_utc(self.time))

    @cached_property
    def time_iso(self) -> str:
        """The event's time as stored and sent (`iso_utc`), computed once per event."""
        return iso_utc(self.time) or ""

    @cached_property
    def fingerprint(self) -> str:
        """Identity of the event across sources: time, raw code and text (computed once per
        event: merge, diff and serialising all ask for it).

        Location is left out on purpose: webhooks carry no location while polls do
        (webhook_shipment_tracking_update.json vs openapi_tracking_response_delivered.json), and
        the same scan must merge into one event whichever way it arrived.
        """
        key = "|".join((self.time_iso, self.raw_code or "", _normalise_text(self.raw_text)))
        return hashlib.sha1(key.encode("utf-8")).hexdigest()[:20]

    def to_dict(self) -> dict[str, Any]:
        return {
            "time": self.time_iso,
            "status": self.status,
            "raw_code": self.raw_code,
            "raw_text": self.raw_text,
            "location": self.location,
            "fingerprint": self.fingerprint,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrackingEvent:
        """The event `to_dict` gave. A stored fingerprint and the time text stored with it are
        taken as they are (not computed again: a stored shipment's events are read back at every
        merge, and that was a fifth of a drain's CPU at 20 events per shipment); the fingerprint's
        definition has not changed since the first stored event, and changing it would need a
        migration that rewrites stored events. The fields are set as the dataclass's own
        constructor and `__post_init__` would set them (a time in UTC), without their calls."""
        text = data["time"]
        time = parse_iso(text)
        assert time is not None
        event = object.__new__(cls)
        fields = event.__dict__
        fields["time"] = time
        fields["raw_text"] = data.get("raw_text") or ""
        fields["status"] = data.get("status")
        fields["raw_code"] = data.get("raw_code")
        fields["location"] = data.get("location")
        fingerprint = data.get("fingerprint")
        if isinstance(fingerprint, str) and fingerprint:  # written by to_dict, with its time text
            fields["fingerprint"] = fingerprint
            fields["time_iso"] = text
        return event


@dataclass(frozen=True)
class TrackingUpdate:
    """What one courier response or webhook says about one tracking number."""

    courier: str
    tracking_number: str
    events: tuple[TrackingEvent, ...] = ()
    estimated_delivery: datetime | None = None
    # A status the courier reports without an event (e.g. a status-only webhook), used only when
    # no event says more.
    reported_status: str | None = None
    reported_at: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "courier": self.courier,
            "tracking_number": self.tracking_number,
            "events": [event.to_dict() for event in self.events],
            "estimated_delivery": iso_utc(self.estimated_delivery),
            "reported_status": self.reported_status,
            "reported_at": iso_utc(self.reported_at),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrackingUpdate:
        return cls(
            courier=data["courier"],
            tracking_number=data["tracking_number"],
            events=tuple(TrackingEvent.from_dict(e) for e in data.get("events") or ()),
            estimated_delivery=parse_iso(data.get("estimated_delivery")),
            reported_status=data.get("reported_status"),
            reported_at=parse_iso(data.get("reported_at")),
        )

    @property
    def unmapped_codes(self) -> tuple[str, ...]:
        """Raw codes/texts of events the adapter could not map (for the unmapped-codes metric)."""
        return tuple(sorted({e.raw_code or e.raw_text for e in self.events if e.status is None}))


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def clean_text(text: str) -> str:
    """Text a database can store: NUL removed (PostgreSQL text and jsonb refuse it) and lone UTF-16
    surrogates (e.g. a JSON "\\ud800" with no partner; json.loads joins real pairs) replaced by U+FFFD."""
    if "\x00" in text:
        text = text.replace("\x00", "")
    return _LONE_SURROGATE.sub("\ufffd", text)


def _clean_optional(text: str | None) -> str | None:
    return None if text is None else clean_text(text)


def _needs_cleaning(text: str | None) -> bool:
    return text is not None and ("\x00" in text or _LONE_SURROGATE.search(text) is not None)


def clean_update(update: TrackingUpdate) -> TrackingUpdate:
    """The same update with every text field cleaned (see `clean_text`); parse stages apply it so
    that one courier's odd byte never fails a batch at write time. An update with nothing to clean
    (nearly all) is returned as it is."""
    texts = [update.courier, update.tracking_number, update.reported_status]
    for e in update.events:
        texts += (e.raw_text, e.status, e.raw_code, e.location)
    if not any(_needs_cleaning(text) for text in texts):
        return update
    events = tuple(replace(e, raw_text=clean_text(e.raw_text), status=_clean_optional(e.status),
                           raw_code=_clean_optional(e.raw_code), location=_clean_optional(e.location))
                   for e in update.events)
    return replace(update, courier=clean_text(update.courier), tracking_number=clean_text(update.tracking_number),
                   events=events, reported_status=_clean_optional(update.reported_status))


@dataclass(frozen=True)
class ItemFailure:
    """A tracking number the courier answered for but could not track."""

    tracking_number: str
    reason: str
    # not_found: the courier does not know it (yet); missing: absent from the response;
    # error: any other per-item failure.
    kind: str = "error"

    def to_dict(self) -> dict[str, str]:
        return {"tracking_number": self.tracking_number, "reason": self.reason, "kind": self.kind}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ItemFailure:
        return cls(tracking_number=data["tracking_number"], reason=data["reason"], kind=data.get("kind", "error"))


@dataclass(frozen=True)
class BulkResult:
    """A parsed bulk tracking response: updates for the found items and failures for the rest.
    Every requested tracking number appears in exactly one of the two."""

    updates: tuple[TrackingUpdate, ...] = ()
    failures: tuple[ItemFailure, ...] = ()
    message: str | None = None
    # The courier's own item (decoded JSON, unchanged) for each requested tracking number it
    # answered about, so the shipment can keep what the courier really said.
    raw_items: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "updates": [u.to_dict() for u in self.updates],
            "failures": [f.to_dict() for f in self.failures],
            "message": self.message,
            "raw_items": dict(self.raw_items),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BulkResult:
        return cls(
            updates=tuple(TrackingUpdate.from_dict(u) for u in data.get("updates") or ()),
            failures=tuple(ItemFailure.from_dict(f) for f in data.get("failures") or ()),
            message=data.get("message"),
            raw_items=dict(data.get("raw_items") or {}),
        )


@dataclass(frozen=True)
class WebhookMessage:
    """A parsed courier webhook: its topic, its dedup id (None if the courier sent none) and the
    tracking updates it carries. A topic that carries no tracking data has no updates and says
    why in `ignored_reason` (the inbox marks such rows ignored, not failed)."""

    topic: str
    event_id: str | None
    updates: tuple[TrackingUpdate, ...] = field(default_factory=tuple)
    ignored_reason: str | None = None


def known_status(value: str | None) -> str | None:
    """The value if it is a canonical status, else None."""
    return value if statuses.is_known(value) else None
