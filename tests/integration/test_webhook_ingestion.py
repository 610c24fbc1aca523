"""Webhook ingestion in batches, over the real pipeline (embedded and PostgreSQL + Redis): the
receiver's group commit (one transaction per group, 503 to all of a failed group, duplicates stored
once inside a group and across groups), inbox drains that never give up on rows merely waiting in a
backlog, replay of failed rows, poison text that no longer sinks its batch, and a manual refresh
that overtakes a backlog of 50,000 webhooks."""
from __future__ import annotations

import json
import threading
import time
from datetime import datetime, timedelta, timezone

import peewee
import pytest

import models
from models import TrackingCache, TrackingJob, WebhookInbox
from pipeline import runtime, service
from pipeline.canonical import TrackingUpdate
from pipeline.couriers.fake import webhook_body
from pipeline.registration import ShipmentRegistration
from web_client import WEBHOOK_SECRET, configured, scan, shipment

EASYPARCEL_URL = f"/api/webhooks/easyparcel/{WEBHOOK_SECRET}"


def register(order_id: str, number: str, courier: str = "fake") -> int:
    result = service.register_shipment(ShipmentRegistration(order_id=order_id, customer_email="b@example.com",
                                                            tracking_number=number, courier=courier))
    assert result.shipment_id is not None
    return result.shipment_id


def post_together(api, bodies: list[bytes]) -> list:
    """POST every body at the same moment (one thread each) and return the answers in order."""
    answers: list = [None] * len(bodies)
    start = threading.Barrier(len(bodies))

    def send(index: int) -> None:
        start.wait()
        answers[index] = api.client.post(EASYPARCEL_URL, content=bodies[index])

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(bodies))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return answers


def inbox_count() -> int:
    return WebhookInbox.select().count()


def test_a_failed_group_commit_answers_503_to_every_request_of_the_group_and_stores_none(api, monkeypatch):
    # given a commit that fails after its INSERT ran (the transaction is rolled back)
    real_store = models.store_inbox_group
    group_sizes: list[int] = []

    def insert_then_fail(keyed, rejected):
        with models.database.atomic():
            real_store(keyed, rejected)
            group_sizes.append(len(keyed))
            raise peewee.OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(models, "store_inbox_group", insert_then_fail)
    bodies = [json.dumps({"uuid": f"group-fail-{i}", "topic": "shipment.tracking.update"}).encode() for i in range(8)]
    # when eight webhooks arrive within the group window
    with configured(webhook_group_window_ms=300):
        answers = post_together(api, bodies)
    # then they shared one commit, every one is answered 503, and none is stored
    assert group_sizes == [8]
    assert [a.status_code for a in answers] == [503] * 8
    assert {a.json()["error"] for a in answers} == {"database_unavailable"}
    assert all("retry-after" in a.headers for a in answers)
    monkeypatch.setattr(models, "store_inbox_group", real_store)
    assert inbox_count() == 0
    # and the courier's retry of the same webhooks is stored normally
    assert {a.status_code for a in post_together(api, bodies)} == {200}
    assert inbox_count() == 8


def test_a_duplicate_inside_one_group_and_across_groups_is_stored_once(api, monkeypatch):
    real_store = models.store_inbox_group
    group_sizes: list[int] = []

    def counting_insert(keyed, rejected):
        group_sizes.append(len(keyed))
        return real_store(keyed, rejected)

    monkeypatch.setattr(models, "store_inbox_group", counting_insert)
    same = json.dumps({"uuid": "dup-1", "topic": "shipment.tracking.update"}).encode()
    other = json.dumps({"uuid": "dup-2", "topic": "shipment.tracking.update"}).encode()
    no_uuid = json.dumps({"topic": "shipment.status.update", "awb_number": "EPX1"}).encode()  # body hash
    # when one group holds the same event three times (and a hashed body twice)
    with configured(webhook_group_window_ms=300):
        first = post_together(api, [same, other, same, no_uuid, same, no_uuid])
    # then that group was one INSERT of the three distinct events and each is stored once
    assert group_sizes == [3]
    outcomes = [a.json()["status"] for a in first]
    assert outcomes == ["accepted", "accepted", "duplicate", "accepted", "duplicate", "duplicate"] or (
        sorted(outcomes) == ["accepted"] * 3 + ["duplicate"] * 3)
    assert all(a.status_code == 200 for a in first)
    assert inbox_count() == 3
    # and a later group with the same events stores nothing
    later = post_together(api, [same, no_uuid])
    assert [a.json() for a in later] == [{"status": "duplicate"}] * 2
    assert inbox_count() == 3
    ids = {a.json()["inbox_id"] for a in first if a.json()["status"] == "accepted"}
    assert ids == {row.id for row in WebhookInbox.select()}


def test_webhooks_reach_the_shipment_through_a_drain(api):
    sid = register("ORD-ING-1", "FKING1")
    bodies = [webhook_body([TrackingUpdate(courier="fake", tracking_number="FKING1", events=(event,))],
                           event_id=f"ing-{i}") for i, event in enumerate(
        [scan(0, "Picked up", "in_transit"), scan(2, "Arrived at hub", "in_transit"), scan(5, "Delivered", "delivered")])]
    for body in bodies:
        assert api.signed_webhook("fake", body).json()["status"] == "accepted"
    api.stack.wait_for(lambda: shipment(sid).current_status == "delivered", what="the webhooks persisted")
    api.stack.wait_for(lambda: WebhookInbox.select().where(WebhookInbox.status == models.INBOX_PROCESSED).count() == 3,
                       what="the inbox rows processed")
    assert len(shipment(sid).tracking_events) == 3


def _pending_rows(count: int, numbers: list[str], *, received_at: datetime, prefix: str) -> None:
    """`count` pending inbox rows, one new event each, spread over `numbers` in turn."""
    rows = [{"courier": "fake", "external_event_id": f"{prefix}-{i}", "status": models.INBOX_PENDING,
             "received_at": received_at,
             "raw_body": webhook_body([TrackingUpdate(courier="fake", tracking_number=numbers[i % len(numbers)], events=(
                 scan(i / 60, f"Scan {i}", "in_transit"),))], event_id=f"{prefix}-{i}").decode()}
            for i in range(count)]
    for start in range(0, len(rows), 500):
        WebhookInbox.insert_many(rows[start:start + 500]).execute()


def test_rows_waiting_in_a_long_backlog_are_never_given_up(stack):
    # given 200 accepted webhooks waiting while the workers are stalled for 7 minutes and more
    numbers = [f"FKBACKLOG{i}" for i in range(10)]
    ids = [register(f"ORD-BACKLOG-{i}", number) for i, number in enumerate(numbers)]
    _pending_rows(200, numbers, received_at=datetime.now(timezone.utc) - timedelta(minutes=7), prefix="backlog")
    stack.worker.pause()
    try:
        # when the maintenance sweep runs through a 30-minute backlog (six sweeps)
        for _ in range(6):
            service.run_maintenance()
        assert WebhookInbox.select().where(WebhookInbox.status == models.INBOX_FAILED).count() == 0
    finally:
        stack.worker.resume()
    # then, once the workers run again, every webhook is processed and none failed
    stack.wait_for(lambda: WebhookInbox.select().where(WebhookInbox.status == models.INBOX_PROCESSED).count() == 200,
                   timeout=60, what="the backlog processed")
    assert WebhookInbox.select().where(WebhookInbox.status != models.INBOX_PROCESSED).count() == 0
    assert [len(shipment(sid).tracking_events) for sid in ids] == [20] * 10


def test_only_rows_whose_claims_all_died_are_failed_loudly_and_replay_brings_them_back(stack, caplog):
    sid = register("ORD-LOST", "FKLOST")
    _pending_rows(3, ["FKLOST"], received_at=datetime.now(timezone.utc) - timedelta(minutes=2), prefix="lost")
    config = runtime.current().config
    # given rows whose every claim ended with a dead worker (claims counted, leases expired)
    WebhookInbox.update(attempts=config.inbox_max_claims, claimed_until=datetime.now(timezone.utc) - timedelta(
        seconds=1)).execute()
    # when the next drain claims them
    with caplog.at_level("ERROR", logger="pipeline.inbox"):
        service.enqueue_drain()
        stack.wait_for(lambda: WebhookInbox.select().where(WebhookInbox.status == models.INBOX_FAILED).count() == 3,
                       what="the rows failed")
    # then they are failed with the reason, and the log says so (never a silent skip)
    row = WebhookInbox.select().first()
    assert "never finished" in row.error and "replay" in row.error
    assert sum("never finished" in record.getMessage() for record in caplog.records) == 3
    # and a replay makes them pending again and they are processed
    assert service.replay_inbox() == 3
    stack.wait_for(lambda: WebhookInbox.select().where(WebhookInbox.status == models.INBOX_PROCESSED).count() == 3,
                   what="the replayed rows processed")
    assert len(shipment(sid).tracking_events) == 3


@pytest.mark.parametrize("poison", ["\u0000", "\ud800"])
def test_a_poison_character_does_not_sink_the_webhooks_batched_with_it(stack, poison):
    # given 30 good webhooks and one whose event text holds a NUL or a lone surrogate, all
    # waiting in the inbox since before the last sweep
    numbers = [f"FKPOI{i:03d}" for i in range(31)]
    ids = [register(f"ORD-POI-{i}", number) for i, number in enumerate(numbers)]
    old = datetime.now(timezone.utc) - timedelta(minutes=5)
    for i, number in enumerate(numbers):
        text = f"Arrived at hub {poison} bay" if i == 15 else "Arrived at hub"
        body = json.dumps({"topic": "tracking", "event_id": f"poi-{i}", "updates": [
            {"courier": "fake", "tracking_number": number, "events": [{"time": "2026-11-20T10:00:00Z", "raw_text": text,
                                                    "status": "in_transit"}]}]})
        WebhookInbox.create(courier="fake", external_event_id=f"poi-{i}", raw_body=body, received_at=old)
    # when the sweep hands them to the pipeline together
    service.run_maintenance()
    # then every one is processed, the poison text cleaned rather than refused
    stack.wait_for(lambda: WebhookInbox.select().where(WebhookInbox.status == models.INBOX_PROCESSED).count() == 31,
                   what="all 31 webhooks processed")
    assert all(len(shipment(sid).tracking_events) == 1 for sid in ids)
    stored = shipment(ids[15]).tracking_events[0]["raw_text"]
    assert "\x00" not in stored and "\ud800" not in stored and stored.startswith("Arrived at hub")


def test_a_batch_that_fails_is_persisted_row_by_row_so_only_the_bad_row_fails(stack, monkeypatch):
    from pipeline import store

    numbers = [f"FKROW{i:03d}" for i in range(10)]
    ids = [register(f"ORD-ROW-{i}", number) for i, number in enumerate(numbers)]
    real_apply = store._apply

    def apply_failing_for_one(row, item, *args, **kwargs):
        if row.courier_tracking_number == "FKROW004":
            raise ValueError("A string literal cannot contain NUL (0x00) characters.")
        return real_apply(row, item, *args, **kwargs)

    monkeypatch.setattr(store, "_apply", apply_failing_for_one)
    stack.worker.pause()
    for i, number in enumerate(numbers):
        body = webhook_body([TrackingUpdate(courier="fake", tracking_number=number, events=(scan(1, "Picked up"),))],
                            event_id=f"row-{i}")
        WebhookInbox.create(courier="fake", external_event_id=f"row-{i}", raw_body=body.decode())
    service.enqueue_drain()
    stack.worker.resume()
    stack.wait_for(lambda: WebhookInbox.select().where(WebhookInbox.status == models.INBOX_PENDING).count() == 0,
                   what="the batch finished")
    failed = list(WebhookInbox.select().where(WebhookInbox.status == models.INBOX_FAILED))
    assert [row.external_event_id for row in failed] == ["row-4"]
    assert "NUL" in failed[0].error
    assert [len(shipment(sid).tracking_events) for sid in ids] == [1, 1, 1, 1, 0, 1, 1, 1, 1, 1]


def test_a_manual_refresh_completes_within_10_seconds_while_50000_webhooks_wait(redis_stack):
    stack = redis_stack
    # given 50,000 accepted webhooks for 500 shipments waiting in the inbox, their drains queued
    for i in range(500):
        register(f"ORD-BIG-{i}", f"FKBIG{i:04d}")
    now = datetime.now(timezone.utc)
    rows = [{"courier": "fake", "external_event_id": f"big-{i}", "status": models.INBOX_PENDING, "received_at": now,
             "raw_body": webhook_body([TrackingUpdate(courier="fake", tracking_number=f"FKBIG{i % 500:04d}", events=(
                 scan(i / 3600, f"Scan {i}", "in_transit"),))], event_id=f"big-{i}").decode()}
            for i in range(50_000)]
    with models.database.atomic():
        for start in range(0, len(rows), 5000):
            WebhookInbox.insert_many(rows[start:start + 5000]).execute()
    for _ in range(8):
        service.enqueue_drain()
    stack.wait_for(lambda: WebhookInbox.select().where(WebhookInbox.status == models.INBOX_PROCESSED).count() > 0,
                   what="the drains started")
    # when an admin asks for a manual refresh of another shipment
    sid = register("ORD-MANUAL", "FKMANUAL")
    stack.courier.script_journey("FKMANUAL", [scan(0, "Picked up"), scan(3, "Delivered", "delivered")])
    started = time.monotonic()
    [job_id] = service.request_refresh([sid])
    stack.wait_for(lambda: TrackingJob.get_by_id(job_id).status == models.JOB_COMPLETED, timeout=30,
                   what="the manual refresh")
    took = time.monotonic() - started
    waiting = WebhookInbox.select().where(WebhookInbox.status == models.INBOX_PENDING).count()
    print(f"\nmanual refresh took {took:.2f} s with {waiting} webhooks still waiting")
    # then it completed in under 10 s, ahead of the backlog
    assert took < 10
    assert waiting > 10_000, "the backlog should still be waiting (else this test proves nothing)"
    assert TrackingCache.get_by_id(sid).current_status == "delivered"


def test_webhook_answers_keep_their_metrics_etag_and_error_shape_on_the_fast_path(api):
    def count(text: str, status: str) -> float:
        pattern = ('trackcache_http_request_duration_seconds_count{method="POST",'
                   f'route="/api/webhooks/easyparcel/{{secret}}",status="{status}"}}')
        line = next((line for line in text.splitlines() if line.startswith(pattern)), None)
        return float(line.split()[-1]) if line else 0.0

    before = api.client.get("/metrics").text
    accepted = api.client.post(EASYPARCEL_URL, content=b'{"uuid": "fast-1", "topic": "shipment.awb.update"}')
    refused = api.client.post(EASYPARCEL_URL, content=b"[1]")
    assert accepted.status_code == 200 and accepted.headers["etag"].startswith('W/"')
    assert refused.status_code == 400 and refused.json()["error"] == "malformed_body"
    assert refused.headers["cache-control"] == "no-store"
    after = api.client.get("/metrics").text
    assert count(after, "200") == count(before, "200") + 1
    assert count(after, "400") == count(before, "400") + 1
