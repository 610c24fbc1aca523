"""The simulator's webhook sender: a background thread that asks the simulator for new tracking
events every tick and POSTs them to the receiver as EasyParcel `shipment.tracking.update`
webhooks, with bounded timeouts, a few retries, and optional duplicates and reordering."""
from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable, Sequence
from typing import Any

import requests

logger = logging.getLogger(__name__)

Payload = dict[str, Any]


def plan_deliveries(payloads: Sequence[Payload], rng: random.Random, *, duplicate_rate: float,
                    is_shuffled: bool) -> list[Payload]:
    """The order in which one tick's webhooks go out: each may be repeated (same uuid) with
    probability `duplicate_rate`; when shuffled, a batch of two or more never goes out in order."""
    planned: list[Payload] = []
    for payload in payloads:
        planned.append(payload)
        if duplicate_rate > 0 and rng.random() < duplicate_rate:
            planned.append(payload)
    if is_shuffled and len(payloads) >= 2:
        original = list(planned)
        rng.shuffle(planned)
        if planned == original:
            planned.reverse()
    return planned


class WebhookSender:
    """Delivers webhooks from `collect()` to `url` on a daemon thread until `stop()`.

    `record(name, count)` is told about "attempts", "delivered", "retries" and "failed" deliveries.
    """

    def __init__(self, url: str, collect: Callable[[], list[Payload]],
                 record: Callable[[str, int], None] | None = None, *, interval: float = 0.5,
                 timeout: float = 5.0, retries: int = 3, backoff: float = 0.2) -> None:
        self.url = url
        self.collect = collect
        self.record = record or (lambda name, count: None)
        self.interval = interval
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._session: requests.Session | None = None

    def start(self) -> None:
        self._stopping.clear()
        self._session = requests.Session()
        self._thread = threading.Thread(target=self._run, name="sim-webhooks", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        if self._session is not None:
            self._session.close()
            self._session = None

    def _run(self) -> None:
        while not self._stopping.wait(self.interval):
            try:
                self.flush()
            except Exception:  # the thread must outlive one bad tick
                logger.exception("webhook tick failed")

    def flush(self) -> int:
        """Collect and deliver what is due now; the number delivered."""
        delivered = 0
        for payload in self.collect():
            if self._stopping.is_set():
                break
            delivered += self.deliver(payload)
        return delivered

    def deliver(self, payload: Payload) -> bool:
        """POST one webhook, retrying a failed delivery up to `retries` times with backoff."""
        session = self._session or requests.Session()
        for attempt in range(self.retries + 1):
            if attempt:
                self.record("retries", 1)
                if self._stopping.wait(min(self.backoff * 2 ** (attempt - 1), 5.0)):
                    break
            self.record("attempts", 1)
            try:
                response = session.post(self.url, json=payload, timeout=(min(2.0, self.timeout), self.timeout))
                if 200 <= response.status_code < 300:
                    self.record("delivered", 1)
                    return True
                reason = f"HTTP {response.status_code}"
            except requests.RequestException as error:
                reason = type(error).__name__
            logger.warning("webhook %s for %s failed (attempt %d): %s", payload.get("uuid"),
                           payload.get("awb_number"), attempt + 1, reason)
        self.record("failed", 1)
        return False
