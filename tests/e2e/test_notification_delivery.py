"""Notifications end to end over running processes: `trackcache serve` and `trackcache worker` on
PostgreSQL and Redis, the courier simulator (its webhooks duplicated and shuffled) as EasyParcel,
a local webhook receiver that verifies every request with the `standardwebhooks` package, and an
SMTP server (aiosmtpd) started by the test. A journey through the simulator gives exactly one
signed webhook per subscribed event and one email per configured transition; repeats and stale
courier webhooks add nothing; the unsubscribe link stops the emails; a receiver failing twice gets
the event on the third attempt; a worker killed mid-delivery does not lose it."""
from __future__ import annotations

import os
import signal
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from api_client import ApiClient, Credentials
from processes import ROOT, free_port, start_cli, stop, wait_until
from receivers import WebhookReceiver

from sim.mail_sink import MailSink

NOTIFY_DATABASE = f"trackcache_e2e_notify_{os.getpid()}"
CREDENTIALS = Credentials(admin_token="e2e-admin-token-0123456789", viewer_token="e2e-viewer-token-0123456789",
                          internal_key="e2e-internal-key-0123456789", webhook_secret="e2e-webhook-secret-0123456789",
                          customer_secret="e2e-customer-secret-0123456789")
EMAIL_STATUSES = ("in_transit", "out_for_delivery", "delivered", "exception")
SPECIFIC = {"out_for_delivery": "shipment.out_for_delivery", "delivered": "shipment.delivered",
            "exception": "shipment.exception", "failed_attempt": "shipment.exception"}


@dataclass
class NotifyService:
    api: ApiClient
    sim_url: str
    sink: MailSink
    env: dict[str, str]
    log: Path
    processes: list[Any] = field(default_factory=list)

    def restart_worker(self, *, kill: bool) -> None:
        """Stop the worker (SIGKILL: no chance to finish or hand back its messages) and start another."""
        worker = self.processes.pop()
        stop(worker, signal.SIGKILL if kill else signal.SIGTERM)
        self.processes.append(start_cli(self.env, self.log, "worker", "--processes", "1", "--threads", "4"))


@pytest.fixture(scope="module")
def notify_service(tmp_path_factory) -> Iterator[NotifyService]:
    from cryptography.fernet import Fernet
    from e2e.conftest import fresh_redis, is_ready
    from services import drop_database, recreate_database

    from sim.server import SimulatorConfig, SimulatorServer

    database_url = recreate_database(NOTIFY_DATABASE, migrate=True)
    redis_url, namespace = fresh_redis()
    namespace += "-notify"
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    sim = SimulatorServer(SimulatorConfig(
        speed=0, epoch=datetime.now(UTC).replace(microsecond=0), seed="trackcache-e2e-notify",
        webhook_interval=0.2, webhook_duplicates=0.5, webhook_shuffle=True,
        webhook_url=f"{base_url}/api/webhooks/easyparcel/{CREDENTIALS.webhook_secret}")).start()
    sink = MailSink().start()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DATABASE_URL": database_url, "REDIS_URL": redis_url,
           "TRACKING_REDIS_NAMESPACE": namespace, "EASYPARCEL_API": "open", "EASYPARCEL_BASE_URL": sim.url,
           "EASYPARCEL_CLIENT_ID": "demo-client", "EASYPARCEL_CLIENT_SECRET": "demo-secret",
           "TRACKING_LOG_LEVEL": "warning", "TRACKING_ADMIN_TOKENS": CREDENTIALS.admin_token,
           "TRACKING_VIEWER_TOKENS": CREDENTIALS.viewer_token, "TRACKING_INTERNAL_API_KEY": CREDENTIALS.internal_key,
           "TRACKING_WEBHOOK_SECRET": CREDENTIALS.webhook_secret,
           "TRACKING_CUSTOMER_TOKEN_SECRET": CREDENTIALS.customer_secret,
           "TRACKING_EMAIL_HASH_KEY": "e2e-email-hash-key-0123456789", "TRACKING_INTERNAL_NETWORKS": "",
           # notifications: quick retries and timeouts, http receivers, SMTP to the test's server
           "TRACKING_NOTIFY_ALLOW_HTTP": "true", "TRACKING_NOTIFY_RETRY_DELAYS": "1,1,1",
           "TRACKING_NOTIFY_TIMEOUT": "2", "TRACKING_CONTACT_KEYS": Fernet.generate_key().decode(),
           "TRACKING_SMTP_URL": sink.url, "TRACKING_EMAIL_FROM": "Shop <track@shop.example>",
           "TRACKING_PUBLIC_URL": base_url}
    log = tmp_path_factory.mktemp("e2e-notify") / "service.log"
    service = NotifyService(api=ApiClient(base_url, CREDENTIALS), sim_url=sim.url, sink=sink, env=env, log=log)
    # The scheduler runs the sweeps (the notifications sweep re-enqueues deliveries whose message was
    # lost); the worker is last in the list, so `restart_worker` finds it.
    service.processes = [start_cli(env, log, "serve", "--port", str(port)), start_cli(env, log, "scheduler"),
                         start_cli(env, log, "worker", "--processes", "1", "--threads", "4")]
    try:
        wait_until(lambda: is_ready(base_url) or any(p.poll() is not None for p in service.processes), timeout=60,
                   what=f"the server (log: {log})")
        assert all(p.poll() is None for p in service.processes), f"a process exited early; log: {log}"
        yield service
    finally:
        service.api.close()
        for process in service.processes:
            stop(process)
        sim.stop()
        sink.stop()
        drop_database(NOTIFY_DATABASE)


@pytest.fixture
def receiver(notify_service) -> Iterator[WebhookReceiver]:
    """A receiver subscribed (through the admin API) to every event type; unsubscribed after."""
    with WebhookReceiver() as made:
        created = notify_service.api.as_admin("POST", "/api/admin/notifications/endpoints",
                                              json={"url": made.url, "events": ["*"], "description": "e2e shop"})
        assert created.status_code == 201, created.text
        made.secret = created.json()["secret"]
        made.endpoint_id = created.json()["id"]  # type: ignore[attr-defined]
        yield made
        notify_service.api.as_admin("DELETE", f"/api/admin/notifications/endpoints/{created.json()['id']}")


def register(service: NotifyService, order_id: str, number: str, email: str, *, notify: bool = True) -> None:
    body = {"order_id": order_id, "customer_email": email, "tracking_number": number, "notify_email": notify}
    answer = service.api.as_admin("POST", "/api/admin/shipments", json=body)
    assert answer.status_code == 201, answer.text


def sim(service: NotifyService, method: str, path: str, **kwargs: Any) -> Any:
    answer = requests.request(method, service.sim_url + path, timeout=10, **kwargs)
    answer.raise_for_status()
    return answer.json()


def advance_to_next_status(service: NotifyService, number: str) -> str | None:
    """Move the simulator's clock just past the next event that changes the journey's status; its status."""
    journey = sim(service, "GET", f"/_sim/journeys/{number}")
    visible = [e for e in journey["events"] if e["is_visible"]]
    current = visible[-1]["intended_status"] if visible else None
    upcoming = next((e for e in journey["events"] if not e["is_visible"] and e["intended_status"] != current), None)
    if upcoming is None:
        return None
    clock = datetime.fromisoformat(sim(service, "GET", "/_sim/clock")["sim_time"])
    target = datetime.fromisoformat(upcoming["time"]) + timedelta(seconds=1)
    sim(service, "POST", "/_sim/clock", json={"advance_seconds": max(0.0, (target - clock).total_seconds())})
    return upcoming["intended_status"]


def transitions(service: NotifyService, order_id: str) -> list[tuple[str, str]]:
    """The (previous, new) status changes the update log recorded for an order."""
    logs = service.api.order_record(order_id)["update_logs"]
    return sorted((log["previous_status"], log["new_status"]) for log in logs if log["status_changed"])


def webhooks_for(receiver: WebhookReceiver, number: str) -> Counter:
    return Counter((r.payload["type"], r.payload["data"]["previous_status"], r.payload["data"]["status"])
                   for r in receiver.delivered().values() if r.payload["data"].get("tracking_number") == number)


def emails_to(service: NotifyService, address: str) -> list[Any]:
    return [m for m in service.sink.caught() if address in m.recipients]


def settled(check: Any, *, quiet: float = 2.0, timeout: float = 60) -> None:
    """Wait until `check()` has not changed for `quiet` seconds."""
    deadline = time.monotonic() + timeout
    last, since = check(), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.25)
        now = check()
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return
    raise AssertionError("notifications kept coming")


def test_a_journey_sends_one_webhook_per_event_and_one_email_per_transition_and_unsubscribe_stops_them(
        notify_service, receiver):
    service, api = notify_service, notify_service.api
    # given two shipments in transit whose customers asked for emails
    register(service, "E2E-N-1", "EPTRN0009001", "first@example.com")
    register(service, "E2E-N-2", "EPTRN0009002", "second@example.com")
    assert api.internal("POST", "/api/internal/tracking/process-jobs").json()["enqueued"] >= 2
    wait_until(lambda: api.statuses("E2E-N-1") == ["in_transit"] and api.statuses("E2E-N-2") == ["in_transit"],
               what="the first polls")
    wait_until(lambda: emails_to(service, "second@example.com"), what="the first email")
    # when the second customer follows the unsubscribe link of that email (one-click, as mail clients do)
    [first_mail] = emails_to(service, "second@example.com")
    unsubscribe_url = first_mail.list_unsubscribe.strip("<>")
    assert requests.post(unsubscribe_url, data={"List-Unsubscribe": "One-Click"}, timeout=10).status_code == 200
    # and the parcels travel on (the simulator sends each courier webhook, some twice, shuffled)
    for number in ("EPTRN0009001", "EPTRN0009002"):
        while (status := advance_to_next_status(service, number)) is not None:
            order = "E2E-N-1" if number.endswith("1") else "E2E-N-2"
            wait_until(lambda order=order, status=status: api.statuses(order) == [status], timeout=60,
                       what=f"{order} to reach {status}")
    settled(lambda: (len(receiver.received()), len(service.sink.caught())))
    # then each transition the store recorded was notified exactly once per subscribed event type
    for order, number in (("E2E-N-1", "EPTRN0009001"), ("E2E-N-2", "EPTRN0009002")):
        changes = transitions(service, order)
        assert ("in_transit", "delivered") in changes or ("out_for_delivery", "delivered") in changes, changes
        expected = Counter()
        for previous, new in changes:
            expected[("shipment.status_changed", previous, new)] += 1
            if new in SPECIFIC:
                expected[(SPECIFIC[new], previous, new)] += 1
        assert webhooks_for(receiver, number) == expected
    assert all(r.is_verified for r in receiver.received())
    # and emails: one per configured transition for the first customer, none after unsubscribing for the second
    wanted = [new for _, new in transitions(service, "E2E-N-1") if new in EMAIL_STATUSES]
    got = emails_to(service, "first@example.com")
    assert len(got) == len(wanted) >= 2
    assert {m.subject.split(": ", 1)[1] for m in got} >= {"In transit", "Delivered"}
    assert all(m.text and "<html" in m.html and m.list_unsubscribe for m in got)
    assert len(emails_to(service, "second@example.com")) == 1
    # when every courier webhook comes again, out of order, and the shop refreshes the order by hand
    before = (len(receiver.received()), len(service.sink.caught()))
    sim(service, "POST", "/_sim/shipments", json={"awb_numbers": ["EPTRN0009001", "EPTRN0009002"],
                                                   "send_existing": True})
    refreshed = api.as_admin("POST", "/api/admin/tracking/refresh-order/E2E-N-1?force=true")  # delivered: forced
    assert refreshed.status_code == 202
    wait_until(lambda: api.job_status(job_id=str(refreshed.json()["job_ids"][0]))["status"] == "completed",
               what="the manual refresh")
    time.sleep(3)
    # then nothing more is sent
    assert (len(receiver.received()), len(service.sink.caught())) == before


def test_a_receiver_answering_500_twice_gets_the_event_on_the_third_attempt(notify_service, receiver):
    service, api = notify_service, notify_service.api
    # given a shop subscribed to deliveries only, answering 500 twice
    changed = api.as_admin("PATCH", f"/api/admin/notifications/endpoints/{receiver.endpoint_id}",
                           json={"events": ["shipment.delivered"]})
    assert changed.status_code == 200, changed.text
    receiver.script = [500, 500]
    register(service, "E2E-N-3", "EPDEL0009003", "third@example.com", notify=False)
    api.internal("POST", "/api/internal/tracking/process-jobs")
    wait_until(lambda: receiver.delivered(), timeout=30, what="the delivered event")
    settled(lambda: len(receiver.received()))
    mine = [r for r in receiver.received() if r.payload["data"]["tracking_number"] == "EPDEL0009003"]
    first_id = mine[0].webhook_id
    assert [r.answered for r in mine] == [500, 500, 200] and {r.webhook_id for r in mine} == {first_id}
    deliveries = api.as_viewer("GET", f"/api/admin/notifications/endpoints/{receiver.endpoint_id}/deliveries").json()
    retried = next(d for d in deliveries["deliveries"] if d["webhook_id"] == first_id)
    assert retried["status"] == "delivered" and retried["attempts"] == 3
    assert [a["status_code"] for a in retried["attempt_log"]] == [500, 500, 200]


def test_a_worker_killed_between_the_status_change_and_the_delivery_still_delivers(notify_service, receiver):
    service, api = notify_service, notify_service.api
    # given a shop that holds the first request and never answers it (500 if it ever does)
    receiver.hold_first_seconds, receiver.script = 30.0, [500]
    receiver.arrived.clear()
    register(service, "E2E-N-4", "EPDEL0009004", "fourth@example.com", notify=False)
    api.internal("POST", "/api/internal/tracking/process-jobs")
    # when the worker is killed while that delivery is in flight (the status change is committed)
    assert receiver.arrived.wait(30), "no delivery started"
    service.restart_worker(kill=True)
    # then another worker delivers the same message (Redis hands the dead worker's message on after
    # its heartbeat times out, or the notifications sweep enqueues the row again after 90 s)
    def delivered_types() -> set[str]:
        return {r.payload["type"] for r in receiver.delivered().values()
                if r.payload["data"]["tracking_number"] == "EPDEL0009004"}

    wait_until(lambda: delivered_types() == {"shipment.status_changed", "shipment.delivered"}, timeout=240,
               what="the redelivery (both event types delivered)")
