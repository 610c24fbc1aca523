"""The one I/O step of a courier adapter: sends the requests an adapter builds over `requests`
(with timeouts), keeps the OAuth token, and reports every HTTP call it made. Never raises for
courier or network trouble; the outcome says what happened."""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

import requests

from pipeline.couriers.base import (
    Courier,
    CourierAuthError,
    CourierError,
    CourierPayloadError,
    CourierUnavailable,
    HttpRequest,
    HttpResponse,
)
from pipeline.couriers.easyparcel import EasyParcel

logger = logging.getLogger(__name__)

# Refresh a token this long before it expires (or after 90% of its life, if that is sooner), so a
# request never leaves with a token that dies on the way.
TOKEN_REFRESH_MARGIN_SECONDS = 60.0


@dataclass(frozen=True)
class CallRecord:
    """One HTTP call to a courier, as the courier_api_calls table records it."""

    endpoint: str
    kind: str  # "token" | "tracking"
    http_status: int | None
    latency_ms: int
    is_success: bool
    error: str | None
    tracking_numbers_count: int


@dataclass(frozen=True)
class FetchOutcome:
    """The result of one bulk fetch: every HTTP call made (token calls too), the final tracking
    response (None if none came back) and the error, None when that response is a success."""

    calls: tuple[CallRecord, ...]
    response: HttpResponse | None
    error: CourierError | None

    @property
    def is_success(self) -> bool:
        return self.error is None and self.response is not None


class TrackingClient(Protocol):
    """What the fetch stage needs: the courier (to parse) and a bulk fetch that never raises."""

    @property
    def courier(self) -> Courier: ...

    def fetch_tracking(self, numbers: Sequence[str]) -> FetchOutcome: ...


def endpoint_of(url: str) -> str:
    """The path (and query) of a URL: the endpoint name recorded for a call."""
    parts = urlsplit(url)
    endpoint = parts.path or "/"
    if parts.query:
        endpoint += "?" + parts.query
    return endpoint[:255]


@dataclass
class _Token:
    value: str
    refresh_at: float  # on the client's clock


class CourierClient:
    """Sends EasyParcel tracking requests. Safe to share between threads: the token is fetched by
    one thread at a time and each thread gets its own `requests.Session` unless one is given."""

    def __init__(self, courier: EasyParcel, *, client_id: str = "", client_secret: str = "",
                 api_key: str = "", timeout_seconds: float = 10.0,
                 session: requests.Session | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.courier = courier
        self._client_id = client_id
        self._client_secret = client_secret
        self._api_key = api_key
        self._timeout = timeout_seconds
        self._clock = clock
        self._shared_session = session
        self._local = threading.local()
        self._own_sessions: list[requests.Session] = []
        self._sessions_lock = threading.Lock()
        self._token_lock = threading.Lock()
        self._token: _Token | None = None

    def __repr__(self) -> str:
        return f"CourierClient({self.courier!r}, timeout_seconds={self._timeout})"

    def close(self) -> None:
        """Close the sessions this client opened (not one it was given)."""
        with self._sessions_lock:
            sessions, self._own_sessions = self._own_sessions, []
        for session in sessions:
            session.close()

    def fetch_tracking(self, numbers: Sequence[str]) -> FetchOutcome:
        """One bulk tracking call (plus token calls when needed); never raises for courier or
        network problems. A 401 on the tracking call gets exactly one token refresh and retry."""
        count = len(list(dict.fromkeys(numbers)))
        calls: list[CallRecord] = []
        if not self.courier.uses_oauth:
            response, error = self._send_tracking(numbers, self._api_key, calls, count)
            return FetchOutcome(tuple(calls), response, error)

        token, error = self._current_token(calls, stale=None)
        if token is None:
            return FetchOutcome(tuple(calls), None, error)
        response, error = self._send_tracking(numbers, token, calls, count)
        if isinstance(error, CourierAuthError) and error.http_status == 401:
            logger.info("easyparcel tracking call got 401; refreshing the token once (count=%d)", count)
            token, token_error = self._current_token(calls, stale=token)
            if token is None:
                return FetchOutcome(tuple(calls), response, token_error)
            response, error = self._send_tracking(numbers, token, calls, count)
        return FetchOutcome(tuple(calls), response, error)

    # --- token -----------------------------------------------------------------------------

    def _current_token(self, calls: list[CallRecord], *, stale: str | None
                       ) -> tuple[str | None, CourierError | None]:
        """A usable token: the cached one, unless it is due for refresh or is `stale` (refused by
        the courier); then a new one, fetched by one thread while the others wait for it."""
        with self._token_lock:
            cached = self._token
            if cached is not None and cached.value != stale and self._clock() < cached.refresh_at:
                # Fresh, and not the token the courier just refused (if another thread already
                # replaced that one, use the replacement rather than refreshing again).
                return cached.value, None
            self._token = None
            return self._fetch_token(calls)

    def _fetch_token(self, calls: list[CallRecord]) -> tuple[str | None, CourierError | None]:
        request = self.courier.build_token_request(self._client_id, self._client_secret)
        started = self._clock()
        response, error = self._send(request)
        latency_ms = self._elapsed_ms(started)
        token: str | None = None
        if response is not None:
            try:
                token, expires_in = self.courier.parse_token_response(response)
            except CourierError as exc:
                error = exc
            except CourierPayloadError as exc:
                error = CourierUnavailable(f"unreadable token response: {exc}", http_status=response.status)
            else:
                margin = min(TOKEN_REFRESH_MARGIN_SECONDS, expires_in * 0.1)
                self._token = _Token(token, started + expires_in - margin)
        calls.append(CallRecord(
            endpoint=endpoint_of(request.url), kind="token",
            http_status=None if response is None else response.status, latency_ms=latency_ms,
            is_success=token is not None, error=None if error is None else str(error),
            tracking_numbers_count=0,
        ))
        if error is not None:
            logger.warning("easyparcel token call failed: %s", error)
        return token, error

    # --- tracking --------------------------------------------------------------------------

    def _send_tracking(self, numbers: Sequence[str], credential: str, calls: list[CallRecord],
                       count: int) -> tuple[HttpResponse | None, CourierError | None]:
        request = self.courier.build_tracking_request(numbers, credential)
        started = self._clock()
        response, error = self._send(request)
        if response is not None:
            error = self.courier.classify_error(response)
        calls.append(CallRecord(
            endpoint=endpoint_of(request.url), kind="tracking",
            http_status=None if response is None else response.status,
            latency_ms=self._elapsed_ms(started), is_success=error is None,
            error=None if error is None else str(error), tracking_numbers_count=count,
        ))
        if error is not None:
            logger.warning("easyparcel tracking call failed (count=%d): %s", count, error)
        return response, error

    # --- transport -------------------------------------------------------------------------

    def _session(self) -> requests.Session:
        if self._shared_session is not None:
            return self._shared_session
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            self._local.session = session
            with self._sessions_lock:
                self._own_sessions.append(session)
        return session

    def _send(self, request: HttpRequest) -> tuple[HttpResponse | None, CourierError | None]:
        """The response, or the network error as CourierUnavailable (http_status None)."""
        try:
            raw = self._session().request(
                request.method, request.url, headers=dict(request.headers),
                json=request.json, data=list(request.form) if request.form is not None else None,
                timeout=self._timeout, allow_redirects=False,
            )
            body = raw.content
        except requests.Timeout:
            return None, CourierUnavailable(f"no answer within {self._timeout:g} s from {endpoint_of(request.url)}")
        except requests.ConnectionError as exc:
            return None, CourierUnavailable(f"cannot reach {endpoint_of(request.url)}: {_brief(exc)}")
        except requests.RequestException as exc:
            return None, CourierUnavailable(f"request to {endpoint_of(request.url)} failed: {_brief(exc)}")
        headers = {name.lower(): value for name, value in raw.headers.items()}
        return HttpResponse(status=raw.status_code, headers=headers, body=body), None

    def _elapsed_ms(self, started: float) -> int:
        return max(0, round((self._clock() - started) * 1000))


def _brief(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    text = text if len(text) <= 200 else text[:197] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
