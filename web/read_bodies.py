"""The read cache's final form of an order document: the tracking answer's JSON body cut at the
places that change per request (each shipment's `data_age_seconds`, the `refresh` object), its
ETag, and what ownership and refresh decisions need. Built once when the cache is filled, so a
cache hit joins bytes instead of decoding and re-encoding JSON. Pure: plain values in and out."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from pipeline.canonical import parse_iso
from web import views

FORMAT_VERSION = 3
# Compared against when the order does not exist (see web.reads.DUMMY_EMAIL_HASH).
DUMMY_EMAIL_HASH = "0" * 64
_SEPARATOR = b"\n"  # never inside compact JSON: strings escape their newlines


@dataclass(frozen=True)
class ShipmentState:
    """What a read decides refreshes with; never shown."""

    id: int
    last_updated: float | None  # Unix seconds
    is_pollable: bool


@dataclass(frozen=True)
class ReadyDocument:
    """An order as one audience reads it, ready to answer: `parts` joined around the data ages
    and the refresh object make the body (see `body`)."""

    exists: bool
    email_hash: str = DUMMY_EMAIL_HASH
    customer_id: str | None = None
    etag: str = ""
    shipments: tuple[ShipmentState, ...] = ()
    parts: tuple[bytes, ...] = (b"{}",)
    # False for an owner-only document (the order row's owner fields, no shipments, no body): what
    # a miss that failed the ownership check caches, so it costs what an unknown order costs.
    is_complete: bool = True

    @property
    def size(self) -> int:
        """Bytes this document holds (for the hot cache's memory bound)."""
        return sum(len(part) for part in self.parts) + 64 * len(self.shipments) + 256

    def body(self, now: float, refresh: bytes) -> bytes:
        """The answer's body at `now` (Unix seconds) with this `refresh` object (JSON bytes)."""
        pieces = [self.parts[0]]
        for state, part in zip(self.shipments, self.parts[1:]):
            pieces.append(b"null" if state.last_updated is None else
                          str(max(0, int(now - state.last_updated))).encode("ascii"))
            pieces.append(part)
        pieces.append(refresh)
        pieces.append(b"}")
        return b"".join(pieces)

    def view(self) -> dict[str, Any]:
        """The order view without data ages (pages render from it)."""
        decoded = orjson.loads(self.body(0.0, b"null"))
        decoded.pop("refresh", None)
        for shipment in decoded.get("shipments", ()):
            shipment.pop("data_age_seconds", None)
        return dict(decoded)

    def has_stale(self, now: float, ttl_seconds: float) -> bool:
        """Whether a pollable shipment's data is older than the cache TTL (`now` in Unix seconds)."""
        limit = now - ttl_seconds
        return any(s.is_pollable and (s.last_updated is None or s.last_updated < limit) for s in self.shipments)

    def pollable_ids(self) -> list[int]:
        return [s.id for s in self.shipments if s.is_pollable]

    def to_bytes(self) -> bytes:
        header = orjson.dumps({"v": FORMAT_VERSION, "exists": self.exists, "email_hash": self.email_hash,
                               "customer_id": self.customer_id, "etag": self.etag,
                               "complete": self.is_complete,
                               "shipments": [[s.id, s.last_updated, s.is_pollable] for s in self.shipments]})
        return _SEPARATOR.join((header, *self.parts))

    @classmethod
    def from_bytes(cls, raw: bytes) -> ReadyDocument | None:
        """The document stored by `to_bytes`; None for anything else (an older format included)."""
        header, _, rest = raw.partition(_SEPARATOR)
        try:
            data = orjson.loads(header)
            if not isinstance(data, dict) or data.get("v") != FORMAT_VERSION:
                return None
            shipments = tuple(ShipmentState(int(i), None if t is None else float(t), bool(p))
                              for i, t, p in data["shipments"])
            parts = tuple(rest.split(_SEPARATOR))
            if len(parts) != len(shipments) + 1:
                return None
            return cls(exists=bool(data["exists"]), email_hash=str(data["email_hash"]),
                       customer_id=data["customer_id"], etag=str(data["etag"]), shipments=shipments, parts=parts,
                       is_complete=data["complete"] is not False)
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            return None


def body_parts(view: Mapping[str, Any]) -> tuple[bytes, ...]:
    """The body of `views.with_data_age(view, now) | {"refresh": ...}` cut before each data age
    and before the refresh object (which the caller appends with the closing brace)."""
    parts: list[bytes] = []
    current = bytearray(b"{")
    for index, (key, value) in enumerate(view.items()):
        current += (b"," if index else b"") + orjson.dumps(key) + b":"
        if key != "shipments":
            current += orjson.dumps(value)
            continue
        current += b"["
        for position, shipment in enumerate(value):
            fields = {k: v for k, v in shipment.items() if k != "next_refresh_at"}
            current += (b"," if position else b"") + orjson.dumps(fields)[:-1]
            current += (b"," if fields else b"") + b'"data_age_seconds":'
            parts.append(bytes(current))
            current = bytearray(b',"next_refresh_at":' + orjson.dumps(shipment.get("next_refresh_at")) + b"}")
        current += b"]"
    current += (b"," if view else b"") + b'"refresh":'
    parts.append(bytes(current))
    return tuple(parts)


def ready_document(*, exists: bool, email_hash: str = DUMMY_EMAIL_HASH, customer_id: str | None = None,
                   view: Mapping[str, Any] | None = None,
                   shipments: Sequence[Mapping[str, Any]] = (), is_complete: bool = True) -> ReadyDocument:
    """The final form of a document; `shipments` as web.reads builds them (id, ISO last_updated,
    is_pollable), in the order of the view's shipments. An owner-only document (`is_complete`
    false) keeps only the owner fields."""
    view = dict(view or {})
    states = tuple(ShipmentState(int(s["id"]), _unix(s.get("last_updated")), bool(s.get("is_pollable")))
                   for s in shipments)
    if not exists or not is_complete:
        return ReadyDocument(exists=exists, email_hash=email_hash, customer_id=customer_id, is_complete=is_complete)
    return ReadyDocument(exists=True, email_hash=email_hash, customer_id=customer_id, etag=views.etag_for(view),
                         shipments=states, parts=body_parts(view))


def _unix(moment: str | None) -> float | None:
    parsed = parse_iso(moment) if moment else None
    return None if parsed is None else parsed.timestamp()


def refresh_json(refresh: Mapping[str, Any]) -> bytes:
    return orjson.dumps(dict(refresh))
