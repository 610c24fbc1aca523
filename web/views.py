"""Pure shaping of what the API answers: the guest view (privacy-filtered locations and texts,
short history), the signed-in customer view (full detail), the admin view (everything), plus
ISO times, data age, ETags and the stale-data rule. Plain values in, plain dicts out."""
from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from pipeline import status as statuses
from pipeline.canonical import iso_utc_seconds, parse_iso

GUEST, CUSTOMER = "guest", "customer"

# --- locations -------------------------------------------------------------------------------------

# Malaysian states and federal territories with the spellings and codes couriers use.
_STATES: dict[str, tuple[str, ...]] = {
    "Johor": ("johor", "johore", "jhr"),
    "Kedah": ("kedah", "kdh"),
    "Kelantan": ("kelantan", "ktn"),
    "Melaka": ("melaka", "malacca", "mlk"),
    "Negeri Sembilan": ("negeri sembilan", "n. sembilan", "n sembilan", "nsn"),
    "Pahang": ("pahang", "phg"),
    "Penang": ("penang", "pulau pinang", "p. pinang", "p pinang", "pinang", "png", "pin"),
    "Perak": ("perak", "prk"),
    "Perlis": ("perlis", "pls"),
    "Sabah": ("sabah", "sbh"),
    "Sarawak": ("sarawak", "swk"),
    "Selangor": ("selangor", "sgr", "sel"),
    "Terengganu": ("terengganu", "trengganu", "trg"),
    "Kuala Lumpur": ("kuala lumpur", "kl", "kul"),
    "Putrajaya": ("putrajaya", "pjy"),
    "Labuan": ("labuan", "lbn"),
    "Singapore": ("singapore",),
}
_STATE_BY_SPELLING = {spelling: name for name, spellings in _STATES.items() for spelling in spellings}
_COUNTRIES = {"malaysia": "MY", "singapore": "SG", "brunei": "BN", "indonesia": "ID", "thailand": "TH"}
_TERRITORY_PREFIX = re.compile(r"^(wilayah persekutuan|w\.\s*p\.?|wp|federal territory( of)?)\s+", re.IGNORECASE)
_POSTCODE = re.compile(r"\b\d{4,6}\b")
# Words that name a courier facility rather than a place ("Shah Alam Hub" -> "Shah Alam").
_FACILITY = re.compile(
    r"\b(hub|dc|gateway|depot|branch|station|office|warehouse|sorting (centre|center)|"
    r"distribution (centre|center)|service (centre|center)|drop[- ]off point|pick[- ]?up point|counter)\b",
    re.IGNORECASE)


def _known_state(part: str) -> str | None:
    key = _TERRITORY_PREFIX.sub("", " ".join(part.split())).casefold().strip(" .")
    return _STATE_BY_SPELLING.get(key)


def _tidy_case(text: str) -> str:
    """ALL-CAPS courier text in title case; mixed case is left as written."""
    return text.title() if text.isupper() else text


def public_location(raw: str | None) -> str | None:
    """A location reduced to state (or city) and country for guests: facility names, streets,
    postcodes and empty fields are dropped, e.g. "Kuala Lumpur Hub, Kuala Lumpur, MY" ->
    "Kuala Lumpur, MY" and "BAYAN BARU, PENANG,, PIN, MY" -> "Penang, MY"."""
    if not raw or not raw.strip():
        return None
    parts = [part.strip() for part in raw.split(",") if part.strip()]
    country = None
    if parts:
        last = parts[-1].strip(" .")
        if re.fullmatch(r"[A-Za-z]{2}", last) and _known_state(last) is None:
            country = last.upper()
            parts.pop()
        elif last.casefold() in _COUNTRIES:
            country = _COUNTRIES[last.casefold()]
            parts.pop()
    places = []
    for part in parts:
        cleaned = " ".join(_POSTCODE.sub(" ", part).split())
        if not cleaned or any(ch.isdigit() for ch in cleaned):
            continue  # street numbers, lot numbers, phone numbers: never shown to guests
        places.append(cleaned)
    place = None
    for candidate in reversed(places):
        state = _known_state(candidate)
        if state is not None:
            place = state
            break
    if place is None and places:
        # No state we know: the last place-like field (usually the city), without facility words.
        for candidate in reversed(places):
            stripped = " ".join(_FACILITY.sub(" ", candidate).split()).strip(" -")
            if stripped and (len(stripped) > 3 or not stripped.isupper()):
                place = _tidy_case(stripped)
                break
    if place == "Singapore" and country is None:
        country = "SG"
    shown = [piece for piece in (place, country) if piece]
    return ", ".join(shown) if shown else None


def state_of_location(raw: str | None) -> tuple[str, str] | None:
    """(state, country) of a courier location when it names a state we know, e.g.
    "Kota Kinabalu Hub, Sabah, MY" -> ("Sabah", "MY"); None for a city alone or nothing."""
    shown = public_location(raw)
    if not shown:
        return None
    place, _, country = shown.partition(", ")
    if place not in _STATES:
        return None
    return place, country or ("SG" if place == "Singapore" else "MY")


# --- event texts -----------------------------------------------------------------------------------

_BRACKETED = re.compile(r"\s*[\(\[\{][^\)\]\}]*[\)\]\}]")
# Tails that name people or carry courier-internal notes ("Received by: AHMAD", "Remark: ...").
_PRIVATE_TAIL = re.compile(
    r"\s*[-:;,|]?\s*\b(remarks?|notes?|internal|ref(erence)?|received by|signed by|receiver|recipient|"
    r"consignee name|ic no|phone|tel)\b\s*[:\-#].*$", re.IGNORECASE)
_LONG_NUMBER = re.compile(r"\+?\d[\d\s-]{6,}\d")


def public_description(text: str | None, status: str | None) -> str:
    """An event text fit for guests: no recipient names, internal remarks, bracketed notes or phone
    numbers; the status label when nothing is left (a delivery always reads "Delivered")."""
    label = statuses.label_of(status) if status else "Update"
    if status == statuses.DELIVERED or not text:
        return label
    cleaned = _PRIVATE_TAIL.sub("", text)
    cleaned = _BRACKETED.sub("", cleaned)
    cleaned = _LONG_NUMBER.sub("", cleaned)
    cleaned = " ".join(cleaned.split()).strip(" -:;,|")
    return cleaned or label


# --- times -----------------------------------------------------------------------------------------

def iso(moment: datetime | None) -> str | None:
    """ISO 8601 UTC to the second with a Z, the one format of every answer (None stays None)."""
    return iso_utc_seconds(moment)


def _is_never(moment: datetime | None) -> bool:
    return moment is None or moment.year >= 9999


def data_age_seconds(last_updated: str | datetime | None, now: datetime) -> int | None:
    """Whole seconds since the data was last confirmed with the courier (never negative)."""
    moment = parse_iso(last_updated) if isinstance(last_updated, str) else last_updated
    if moment is None:
        return None
    return max(0, int((now - moment).total_seconds()))


def is_stale(last_updated: datetime | None, now: datetime, *, ttl: timedelta) -> bool:
    """Whether data confirmed at `last_updated` is older than the cache TTL."""
    return last_updated is None or now - last_updated > ttl


# --- shipment and order views -------------------------------------------------------------------------

def _event_time(event: Mapping[str, Any]) -> datetime:
    return parse_iso(event.get("time")) or datetime.min.replace(tzinfo=UTC)


def newest_first(events: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return sorted(events, key=_event_time, reverse=True)


def event_view(event: Mapping[str, Any], *, audience: str) -> dict[str, Any]:
    """One event for a guest (filtered) or a signed-in customer (full location and raw code)."""
    status = event.get("status")
    time = iso(_event_time(event)) if event.get("time") else None
    if audience == GUEST:
        return {"time": time, "status": status, "description": public_description(event.get("raw_text"), status),
                "location": public_location(event.get("location"))}
    return {"time": time, "status": status, "description": event.get("raw_text") or statuses.label_of(status or ""),
            "location": event.get("location"), "raw_code": event.get("raw_code")}


def shipment_view(row: Mapping[str, Any], *, audience: str, guest_history: int = 10) -> dict[str, Any]:
    """A shipment as a guest or customer sees it, without the data age (added when answering).

    `row` holds: tracking_number, courier, status, events, estimated_delivery, delivered_at,
    last_updated, next_update_due.
    """
    events = newest_first(row.get("events") or ())
    if audience == GUEST:
        events = events[:guest_history]
    status = row["status"]
    next_due = row.get("next_update_due")
    return {
        "tracking_number": row["tracking_number"],
        "courier": row["courier"],
        "status": status,
        "status_label": statuses.label_of(status),
        "events": [event_view(event, audience=audience) for event in events],
        **estimate_fields(row),
        "delivered_at": iso(row.get("delivered_at")),
        "last_updated": iso(row.get("last_updated")),
        "next_refresh_at": None if statuses.is_final(status) or _is_never(next_due) else iso(next_due),
    }


def estimate_fields(row: Mapping[str, Any]) -> dict[str, Any]:
    """The delivery estimate of a shipment: ours from history (a day, given as noon of that day in
    the shop's zone, with its range) or the courier's own, and the courier's beside ours when it sent one."""
    earliest, latest = row.get("estimated_delivery_earliest"), row.get("estimated_delivery_latest")
    is_open = not statuses.is_final(row.get("status") or "")
    estimated = row.get("estimated_delivery") if is_open else None
    return {
        "estimated_delivery": iso(estimated),
        "estimated_delivery_range": ({"earliest": iso(earliest), "latest": iso(latest)}
                                     if estimated is not None and earliest is not None and latest is not None else None),
        "estimate_source": row.get("estimate_source") if estimated is not None else None,
        "courier_estimated_delivery": iso(row.get("courier_estimated_delivery")) if is_open else None,
    }


def order_view(order_id: str, shipments: Sequence[Mapping[str, Any]], *, audience: str,
               guest_history: int = 10) -> dict[str, Any]:
    """The tracking answer of an order (without data ages)."""
    return {"order_id": order_id,
            "shipments": [shipment_view(row, audience=audience, guest_history=guest_history) for row in shipments]}


def with_data_age(view: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    """The order view with each shipment's `data_age_seconds`, placed before `next_refresh_at`."""
    shipments = []
    for shipment in view["shipments"]:
        shaped = {k: v for k, v in shipment.items() if k != "next_refresh_at"}
        shaped["data_age_seconds"] = data_age_seconds(shipment.get("last_updated"), now)
        shaped["next_refresh_at"] = shipment.get("next_refresh_at")
        shipments.append(shaped)
    return {**view, "shipments": shipments}


# --- admin ---------------------------------------------------------------------------------------

def jsonable(value: Any) -> Any:
    """Datetimes as ISO UTC strings and dates as YYYY-MM-DD, recursively."""
    if isinstance(value, datetime):
        return None if value.year >= 9999 else iso(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


def admin_order_view(order: Mapping[str, Any], shipments: Sequence[Mapping[str, Any]],
                     logs: Sequence[Mapping[str, Any]], jobs: Sequence[Mapping[str, Any]], *,
                     now: datetime) -> dict[str, Any]:
    """Everything stored about an order: unfiltered shipment rows (events newest first, raw
    courier response included), their update logs and ledger jobs."""
    shaped = []
    for row in shipments:
        item = dict(jsonable(row))
        item["events"] = [{**e, "time": iso(parse_iso(e.get("time")))}
                          for e in newest_first(row.get("tracking_events") or ())]
        item.pop("tracking_events", None)
        item["status_label"] = statuses.label_of(row["current_status"])
        item["data_age_seconds"] = data_age_seconds(row.get("last_api_update"), now)
        shaped.append(item)
    return {"order": jsonable(order), "shipments": shaped, "update_logs": jsonable(list(logs)),
            "jobs": jsonable(list(jobs))}


# --- HTTP caching --------------------------------------------------------------------------------

def canonical_json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def etag_for(value: Any) -> str:
    """A weak ETag of a view (weak: data ages in the answer change without the data changing)."""
    return 'W/"' + hashlib.sha256(canonical_json(value)).hexdigest()[:32] + '"'


def matches_etag(if_none_match: str | None, etag: str) -> bool:
    """Whether an If-None-Match header names this ETag (weak comparison, `*` matches any)."""
    if not if_none_match:
        return False
    wanted = etag.removeprefix("W/")
    for candidate in if_none_match.split(","):
        candidate = candidate.strip()
        if candidate == "*" or candidate.removeprefix("W/") == wanted:
            return True
    return False
