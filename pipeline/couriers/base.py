"""The courier adapter interface: what a courier module implements (pure request building and
parsing) and the typed errors every adapter raises. Sending is a separate I/O step
(`CourierClient`)."""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from pipeline.canonical import BulkResult, WebhookMessage


class CourierPayloadError(ValueError):
    """A courier payload (response or webhook) is not what the adapter can read: not JSON, wrong
    shape, missing or malformed fields. The message says what and where."""


class CourierError(Exception):
    """A courier call failed; subclasses say how, so the pipeline can retry, back off or stop."""

    def __init__(self, message: str, *, http_status: int | None = None) -> None:
        super().__init__(message)
        self.http_status = http_status


class CourierAuthError(CourierError):
    """Credentials were refused (HTTP 401/403, or the legacy API's key errors)."""


class CourierRateLimited(CourierError):
    """HTTP 429; `retry_after` is the courier's Retry-After in seconds when it sent one."""

    def __init__(self, message: str, *, retry_after: float | None = None, http_status: int | None = 429) -> None:
        super().__init__(message, http_status=http_status)
        self.retry_after = retry_after


class CourierUnavailable(CourierError):
    """Timeouts, connection errors and 5xx answers: worth retrying later."""


class CourierRequestRejected(CourierError):
    """The courier rejected the request itself (HTTP 4xx validation errors): retrying the same
    request will not help."""


@dataclass(frozen=True)
class HttpRequest:
    """A request described as data, so building it stays pure and testable."""

    method: str
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    json: Any = None
    form: Sequence[tuple[str, str]] | None = None


@dataclass(frozen=True)
class HttpResponse:
    """What came back: status, headers (lower-cased names) and the raw body."""

    status: int
    headers: Mapping[str, str]
    body: bytes


class Courier(ABC):
    """A courier's pure protocol knowledge. One module per courier, one registry line."""

    name: str
    batch_limit: int

    @abstractmethod
    def build_tracking_request(self, tracking_numbers: Sequence[str], credential: str) -> HttpRequest:
        """The bulk tracking request for up to `batch_limit` tracking numbers."""

    @abstractmethod
    def parse_tracking_response(self, response: HttpResponse, requested: Sequence[str]) -> BulkResult:
        """Canonical updates for a bulk response; every requested number is either an update or a
        failure.

        Raises:
            CourierPayloadError: the body cannot be read.
            CourierAuthError, CourierRateLimited, CourierUnavailable, CourierRequestRejected: the
                response is an error of that kind.
        """

    @abstractmethod
    def parse_webhook(self, body: bytes | str) -> WebhookMessage:
        """Canonical updates carried by one webhook body.

        Raises:
            CourierPayloadError: the body cannot be read.
        """
