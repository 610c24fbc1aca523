"""The fake courier: a real adapter and client pair with scripted answers per tracking number
(a journey of events, not found, left out, or errors on the next N calls) that counts its calls.
Pipeline tests use it in place of HTTP; it speaks its own small JSON format."""
from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pipeline.canonical import BulkResult, ItemFailure, TrackingEvent, TrackingUpdate, WebhookMessage
from pipeline.couriers.base import (
    Courier,
    CourierAuthError,
    CourierError,
    CourierPayloadError,
    CourierRateLimited,
    CourierRequestRejected,
    CourierUnavailable,
    HttpRequest,
    HttpResponse,
)
from pipeline.couriers.client import CallRecord, FetchOutcome

FAKE_TRACKING_URL = "fake://courier/tracking"
FAKE_ENDPOINT = "/tracking"

# Scripted error kinds and the HTTP status the fake answers with (None: no answer at all).
ERROR_KINDS: Mapping[str, int | None] = {
    "rate_limited": 429,
    "unavailable": 503,
    "auth": 401,
    "rejected": 400,
    "timeout": None,
}


def _payload_error(where: str, exc: Exception) -> CourierPayloadError:
    return CourierPayloadError(f"{where}: {type(exc).__name__}: {exc}")


class FakeCourier(Courier):
    """The fake courier's protocol: a JSON body {"results": [{"tracking_number", "status":
    "found"|"not_found", "update" | "reason"}]}; webhooks are {"topic", "event_id", "updates"}."""

    name = "fake"

    def __init__(self, batch_limit: int = 50) -> None:
        self.batch_limit = batch_limit

    def build_tracking_request(self, tracking_numbers: Sequence[str], credential: str) -> HttpRequest:
        return HttpRequest(method="POST", url=FAKE_TRACKING_URL,
                           headers={"Authorization": f"Bearer {credential}"} if credential else {},
                           json={"tracking_numbers": list(tracking_numbers)})

    def classify_error(self, response: HttpResponse) -> CourierError | None:
        """The error a fake response stands for, or None for a 2xx."""
        status = response.status
        if 200 <= status < 300:
            return None
        if status in (401, 403):
            return CourierAuthError(f"HTTP {status}", http_status=status)
        if status == 429:
            raw = response.headers.get("retry-after")
            try:
                retry_after = float(raw) if raw is not None else None
            except ValueError:
                retry_after = None
            return CourierRateLimited("HTTP 429", retry_after=retry_after)
        if status >= 500:
            return CourierUnavailable(f"HTTP {status}", http_status=status)
        return CourierRequestRejected(f"HTTP {status}", http_status=status)

    def parse_tracking_response(self, response: HttpResponse, requested: Sequence[str]) -> BulkResult:
        """Canonical updates and failures from the fake's JSON; numbers it left out are "missing".

        Raises:
            CourierPayloadError: the body is not the fake's format.
            CourierError: the response is an error.
        """
        error = self.classify_error(response)
        if error is not None:
            raise error
        try:
            body = json.loads(response.body)
            results = body["results"]
            message = body.get("message")
            found: dict[str, TrackingUpdate] = {}
            failed: dict[str, ItemFailure] = {}
            raw_items: dict[str, Any] = {}
            for item in results:
                number = item["tracking_number"]
                raw_items.setdefault(number, item)
                if item["status"] == "found":
                    found[number] = TrackingUpdate.from_dict(item["update"])
                else:
                    failed[number] = ItemFailure(number, item.get("reason") or "not found", "not_found")
        except (ValueError, KeyError, TypeError, AttributeError, AssertionError) as exc:
            raise _payload_error("fake tracking response", exc) from None
        updates: list[TrackingUpdate] = []
        failures: list[ItemFailure] = []
        for number in dict.fromkeys(requested):
            if number in found:
                updates.append(found[number])
            elif number in failed:
                failures.append(failed[number])
            else:
                failures.append(ItemFailure(number, "absent from the courier's response", "missing"))
        return BulkResult(updates=tuple(updates), failures=tuple(failures), message=message,
                          raw_items={n: raw_items[n] for n in dict.fromkeys(requested) if n in raw_items})

    def parse_webhook(self, body: bytes | str) -> WebhookMessage:
        """The updates of a fake webhook (see `webhook_body`).

        Raises:
            CourierPayloadError: the body is not the fake's format.
        """
        try:
            payload = json.loads(body)
            return WebhookMessage(
                topic=str(payload["topic"]),
                event_id=payload.get("event_id"),
                updates=tuple(TrackingUpdate.from_dict(u) for u in payload.get("updates") or ()),
            )
        except (ValueError, KeyError, TypeError, AttributeError, AssertionError) as exc:
            raise _payload_error("fake webhook", exc) from None


def webhook_body(updates: Sequence[TrackingUpdate], *, event_id: str | None = None,
                 topic: str = "tracking") -> bytes:
    """A webhook body the fake courier's `parse_webhook` reads."""
    return json.dumps({"topic": topic, "event_id": event_id,
                       "updates": [u.to_dict() for u in updates]}).encode("utf-8")


@dataclass
class _Journey:
    events: tuple[TrackingEvent, ...]
    reveal_per_call: int | None
    estimated_delivery: datetime | None
    answered: int = 0


@dataclass
class _ScriptedError:
    kind: str
    retry_after: float | None


@dataclass
class _Script:
    journeys: dict[str, _Journey] = field(default_factory=dict)
    not_found: dict[str, str] = field(default_factory=dict)
    missing: set[str] = field(default_factory=set)
    errors: dict[str | None, deque[_ScriptedError]] = field(default_factory=dict)


class FakeCourierClient:
    """A `TrackingClient` that answers from a script instead of HTTP, and counts its calls.

    Unscripted tracking numbers are answered "not found". With `now` given, a journey only shows
    the events whose time has come; with `reveal_per_call`, the k-th answered call for a number
    shows its first k * reveal_per_call events.
    """

    def __init__(self, courier: FakeCourier | None = None, *,
                 now: Callable[[], datetime] | None = None) -> None:
        self.courier = courier or FakeCourier()
        self._now = now
        self._lock = threading.Lock()
        self._script = _Script()
        self._requested: list[tuple[str, ...]] = []

    # --- scripting -------------------------------------------------------------------------

    def script_journey(self, tracking_number: str, events: Sequence[TrackingEvent], *,
                       reveal_per_call: int | None = None,
                       estimated_delivery: datetime | None = None) -> None:
        """Answer this number with these events (all at once, or a few more on each call)."""
        with self._lock:
            self._script.not_found.pop(tracking_number, None)
            self._script.missing.discard(tracking_number)
            self._script.journeys[tracking_number] = _Journey(
                tuple(sorted(events, key=lambda e: e.time)), reveal_per_call, estimated_delivery)

    def script_not_found(self, tracking_number: str, reason: str = "tracking number not found") -> None:
        """Answer this number "not found"."""
        with self._lock:
            self._script.journeys.pop(tracking_number, None)
            self._script.missing.discard(tracking_number)
            self._script.not_found[tracking_number] = reason

    def script_missing(self, tracking_number: str) -> None:
        """Leave this number out of the response, as EasyParcel sometimes does."""
        with self._lock:
            self._script.journeys.pop(tracking_number, None)
            self._script.not_found.pop(tracking_number, None)
            self._script.missing.add(tracking_number)

    def script_error(self, kind: str, *, times: int = 1, tracking_number: str | None = None,
                     retry_after: float | None = None) -> None:
        """Fail the next `times` calls (that include `tracking_number`, if given) with `kind`:
        rate_limited, unavailable, auth, rejected or timeout."""
        if kind not in ERROR_KINDS:
            raise ValueError(f"kind must be one of {', '.join(ERROR_KINDS)}, got {kind!r}")
        with self._lock:
            queue = self._script.errors.setdefault(tracking_number, deque())
            queue.extend(_ScriptedError(kind, retry_after) for _ in range(times))

    # --- observation -----------------------------------------------------------------------

    @property
    def calls(self) -> int:
        """How many tracking calls were made."""
        with self._lock:
            return len(self._requested)

    @property
    def requested(self) -> list[tuple[str, ...]]:
        """The tracking numbers of each call, in call order."""
        with self._lock:
            return list(self._requested)

    def calls_for(self, tracking_number: str) -> int:
        """How many calls asked for this tracking number."""
        with self._lock:
            return sum(tracking_number in numbers for numbers in self._requested)

    def reset_counts(self) -> None:
        with self._lock:
            self._requested.clear()

    # --- the client interface --------------------------------------------------------------

    def fetch_tracking(self, numbers: Sequence[str]) -> FetchOutcome:
        """Answer one bulk call from the script; never raises."""
        requested = tuple(dict.fromkeys(numbers))
        with self._lock:
            self._requested.append(requested)
            scripted = self._take_error(requested)
            if scripted is None:
                response = self._answer(requested)
        if scripted is not None:
            status = ERROR_KINDS[scripted.kind]
            if status is None:
                error: CourierError | None = CourierUnavailable("no answer within the timeout (scripted)")
                return FetchOutcome((self._record(None, error, len(requested)),), None, error)
            headers = {"content-type": "application/json"}
            if scripted.retry_after is not None:
                headers["retry-after"] = f"{scripted.retry_after:g}"
            response = HttpResponse(status, headers, json.dumps({"error": scripted.kind}).encode("utf-8"))
        error = self.courier.classify_error(response)
        return FetchOutcome((self._record(response.status, error, len(requested)),), response, error)

    def _take_error(self, requested: tuple[str, ...]) -> _ScriptedError | None:
        chosen: _ScriptedError | None = None
        for key in (None, *requested):
            queue = self._script.errors.get(key)
            if queue:
                taken = queue.popleft()
                chosen = chosen or taken
        return chosen

    def _answer(self, requested: tuple[str, ...]) -> HttpResponse:
        results: list[dict[str, Any]] = []
        for number in requested:
            if number in self._script.missing:
                continue
            journey = self._script.journeys.get(number)
            if journey is None:
                reason = self._script.not_found.get(number, "tracking number unknown to the fake courier")
                results.append({"tracking_number": number, "status": "not_found", "reason": reason})
                continue
            journey.answered += 1
            events = journey.events
            if self._now is not None:
                now = self._now()
                events = tuple(e for e in events if e.time <= now)
            if journey.reveal_per_call is not None:
                events = events[: journey.answered * journey.reveal_per_call]
            update = TrackingUpdate(courier=self.courier.name, tracking_number=number, events=events,
                                    estimated_delivery=journey.estimated_delivery)
            results.append({"tracking_number": number, "status": "found", "update": update.to_dict()})
        body = json.dumps({"results": results, "message": f"{len(results)} answered"}).encode("utf-8")
        return HttpResponse(200, {"content-type": "application/json"}, body)

    def _record(self, http_status: int | None, error: CourierError | None, count: int) -> CallRecord:
        return CallRecord(endpoint=FAKE_ENDPOINT, kind="tracking", http_status=http_status, latency_ms=0,
                          is_success=error is None, error=None if error is None else str(error),
                          tracking_numbers_count=count)
