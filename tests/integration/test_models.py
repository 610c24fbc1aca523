"""The data model on both databases: migrations, seed columns and indexes, JSON and UTC
round trips, constraints, and exclusive claiming of due shipments."""
from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import peewee
import pytest

import migrations
import models

SEED_COLUMNS = {
    "tracking_cache": [
        "id", "order_id", "courier_tracking_number", "courier_service", "current_status",
        "last_status_update", "tracking_events", "estimated_delivery", "actual_delivery",
        "delivery_location", "last_api_update", "next_update_due", "update_frequency_minutes",
        "consecutive_failures", "is_delivered", "is_failed", "is_active", "requires_attention",
        "last_api_response", "api_response_hash", "created_at", "updated_at",
    ],
    "tracking_update_logs": [
        "id", "tracking_cache_id", "update_type", "triggered_by", "api_call_success",
        "api_response_time_ms", "api_status_code", "api_error_message", "status_changed",
        "previous_status", "new_status", "events_added", "started_at", "completed_at",
    ],
    "tracking_job_queue": [
        "id", "tracking_cache_id", "job_type", "priority", "scheduled_for", "attempts",
        "max_attempts", "last_attempt_at", "last_error", "status", "created_at", "updated_at",
    ],
    "orders": ["id", "customer_id", "customer_email_hash", "created_at"],
    "webhook_inbox": [
        "id", "courier", "external_event_id", "raw_body", "received_at", "processed_at", "status", "error",
    ],
    "courier_api_calls": [
        "id", "courier", "called_at", "endpoint", "tracking_numbers_count", "http_status",
        "latency_ms", "is_success", "error",
    ],
}

SEED_INDEXES = {
    "tracking_cache": {
        "idx_tracking_cache_next_update", "idx_tracking_cache_active", "idx_tracking_active_updates",
        "idx_tracking_order_lookup", "idx_tracking_number_lookup",
    },
    "tracking_update_logs": {"idx_tracking_logs_cache_id", "idx_tracking_logs_timestamp", "idx_tracking_logs_success"},
    "tracking_job_queue": {"idx_job_queue_scheduled", "idx_job_queue_cache_id", "idx_job_queue_processing"},
}


def columns_of(db, table: str) -> dict[str, peewee.ColumnMetadata]:
    return {column.name: column for column in db.get_columns(table)}


def test_migrations_create_every_seed_table_and_column(db):
    for table, expected in SEED_COLUMNS.items():
        assert db.table_exists(table), table
        assert set(expected) <= set(columns_of(db, table)), table


def test_models_and_migrated_schema_agree(db):
    """Every model field has a column, and every column a field: migrations and models cannot drift."""
    for model in models.ALL_MODELS:
        model_columns = {f.column_name for f in model._meta.sorted_fields}
        assert model_columns == set(columns_of(db, model._meta.table_name)), model.__name__


def test_seed_indexes_exist_and_the_strategy_indexes_are_partial_where_the_seed_says(db):
    for table, expected in SEED_INDEXES.items():
        names = {index.name for index in db.get_indexes(table)}
        assert expected <= names, (table, expected - names)
    by_name = {index.name: index for index in db.get_indexes("tracking_cache")}
    assert "WHERE" in by_name["idx_tracking_active_updates"].sql.upper()
    # The seed's single-column indexes on order_id and courier_tracking_number duplicated the
    # lookup indexes (same leading column) and cost every shipment update: dropped by m0010.
    assert by_name["idx_tracking_order_lookup"].columns[0] == "order_id"
    assert by_name["idx_tracking_number_lookup"].columns[0] == "courier_tracking_number"
    assert not {"idx_tracking_cache_order_id", "idx_tracking_cache_tracking_number"} & set(by_name)
    jobs = {index.name: index for index in db.get_indexes("tracking_job_queue")}
    assert "WHERE" in jobs["idx_job_queue_processing"].sql.upper()
    unique = [index for index in db.get_indexes("tracking_cache") if index.unique and not index.name.endswith("pkey")]
    assert any(index.columns == ["order_id", "courier_tracking_number"] for index in unique)


def test_seed_defaults_apply_to_a_bare_insert(db):
    db.execute_sql("INSERT INTO orders (id, customer_email_hash) VALUES ('o-1', 'h')")
    stamp = "2026-01-01 00:00:00"
    db.execute_sql(
        "INSERT INTO tracking_cache (order_id, courier_tracking_number, courier_service, current_status,"
        " last_status_update, last_api_update, next_update_due)"
        f" VALUES ('o-1', 'T1', 'easyparcel', 'pending', '{stamp}', '{stamp}', '{stamp}')"
    )
    row = models.TrackingCache.get()
    assert row.tracking_events == []
    assert row.update_frequency_minutes == 120
    assert row.consecutive_failures == 0
    assert (row.is_delivered, row.is_failed, row.is_active, row.requires_attention) == (False, False, True, False)
    assert row.created_at is not None
    db.execute_sql(
        "INSERT INTO tracking_job_queue (tracking_cache_id, job_type, scheduled_for)"
        f" VALUES ({row.id}, 'update', '{stamp}')"
    )
    job = models.TrackingJob.get()
    assert (job.priority, job.attempts, job.max_attempts, job.status) == (100, 0, 3, "pending")


def test_a_second_migrate_is_a_noop(db):
    assert migrations.migrate(db) == []
    assert migrations.pending(db) == []


def test_json_columns_round_trip_and_are_jsonb_on_postgres(db):
    order = models.Order.create(id="o-json", customer_email_hash="x")
    events = [{"time": "2026-01-01T00:00:00Z", "status": "in_transit", "location": "Kuala Lumpur"}]
    shipment = models.TrackingCache.create(order=order, courier_tracking_number="J1", courier_service="easyparcel",
                                           tracking_events=events, last_api_response={"a": [1, 2]})
    fresh = models.TrackingCache.get_by_id(shipment.id)
    assert fresh.tracking_events == events
    assert fresh.last_api_response == {"a": [1, 2]}
    if models.is_postgres(db):
        types = {c.name: c.data_type for c in db.get_columns("tracking_cache")}
        assert types["tracking_events"] == "jsonb"


def test_timestamps_are_stored_in_utc_and_come_back_aware(db):
    order = models.Order.create(id="o-time", customer_email_hash="x")
    malaysia = timezone(timedelta(hours=8))
    due = datetime(2026, 3, 1, 18, 30, tzinfo=malaysia)
    shipment = models.TrackingCache.create(order=order, courier_tracking_number="U1",
                                           courier_service="easyparcel", next_update_due=due)
    fresh = models.TrackingCache.get_by_id(shipment.id)
    assert fresh.next_update_due == due
    assert fresh.next_update_due.tzinfo == timezone.utc
    assert fresh.next_update_due.hour == 10
    raw = db.execute_sql("SELECT next_update_due FROM tracking_cache WHERE id = %s".replace("%s", db.param),
                         (shipment.id,)).fetchone()[0]
    assert str(raw).startswith("2026-03-01 10:30:00")


def test_unique_order_and_tracking_number(db):
    order = models.Order.create(id="o-uniq", customer_email_hash="x")
    models.TrackingCache.create(order=order, courier_tracking_number="DUP", courier_service="easyparcel")
    with pytest.raises(peewee.IntegrityError):
        with db.atomic():
            models.TrackingCache.create(order=order, courier_tracking_number="DUP", courier_service="easyparcel")


def test_duplicate_webhook_event_ids_are_refused_per_courier(db):
    models.WebhookInbox.create(courier="easyparcel", external_event_id="uuid-1", raw_body="{}")
    models.WebhookInbox.create(courier="other", external_event_id="uuid-1", raw_body="{}")
    with pytest.raises(peewee.IntegrityError):
        with db.atomic():
            models.WebhookInbox.create(courier="easyparcel", external_event_id="uuid-1", raw_body="{}")


def test_emails_are_stored_only_as_keyed_hashes():
    first = models.hash_email("  Aisyah@Example.COM ", "key-one")
    assert first == models.hash_email("aisyah@example.com", "key-one")
    assert first != models.hash_email("aisyah@example.com", "key-two")
    assert "aisyah" not in first


def make_shipments(count: int, *, due: datetime, prefix: str = "C") -> list[int]:
    order = models.Order.create(id=f"order-{prefix}", customer_email_hash="x")
    rows = [
        {"order": order.id, "courier_tracking_number": f"{prefix}{i:05d}", "courier_service": "easyparcel",
         "next_update_due": due}
        for i in range(count)
    ]
    models.TrackingCache.insert_many(rows).execute()
    return [row.id for row in models.TrackingCache.select(models.TrackingCache.id)]


def test_claim_takes_only_due_active_undelivered_unclaimed_rows(db):
    now = datetime(2026, 5, 1, 12, 0, tzinfo=timezone.utc)
    make_shipments(5, due=now - timedelta(minutes=1))
    models.TrackingCache.update(next_update_due=now + timedelta(hours=1)).where(
        models.TrackingCache.courier_tracking_number == "C00000").execute()
    models.TrackingCache.update(is_delivered=True).where(
        models.TrackingCache.courier_tracking_number == "C00001").execute()
    models.TrackingCache.update(is_active=False).where(
        models.TrackingCache.courier_tracking_number == "C00002").execute()
    claimed = models.claim_due_shipments(now, limit=10, lease=timedelta(minutes=15))
    assert sorted(number for _, _, number in claimed) == ["C00003", "C00004"]
    # Claimed rows are not claimed again while the lease holds, and are once it has passed.
    assert models.claim_due_shipments(now, limit=10, lease=timedelta(minutes=15)) == []
    later = now + timedelta(minutes=16)
    assert len(models.claim_due_shipments(later, limit=10, lease=timedelta(minutes=15))) == 2


def test_concurrent_claimers_never_claim_the_same_row(db):
    now = datetime(2026, 5, 1, 12, 0, tzinfo=timezone.utc)
    make_shipments(300, due=now - timedelta(minutes=5))
    results: list[list[int]] = []
    errors: list[BaseException] = []

    def claimer() -> None:
        mine: list[int] = []
        try:
            while True:
                batch = models.claim_due_shipments(now, limit=7, lease=timedelta(minutes=15))
                if not batch:
                    break
                mine.extend(row_id for row_id, _, _ in batch)
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)
        finally:
            models.database.close()
        results.append(mine)

    threads = [threading.Thread(target=claimer) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors
    claimed = [row_id for mine in results for row_id in mine]
    assert len(claimed) == 300
    assert len(set(claimed)) == 300


def test_a_shipments_events_are_compressed_with_lz4_where_postgresql_has_it(db):
    versions = {row[0] for row in db.execute_sql("SELECT version FROM schema_migrations")}
    assert "0011" in versions, versions
    if not models.is_postgres(db):
        return  # SQLite compresses nothing: the migration is recorded and does nothing there
    from migrations.m0011_lz4_shipment_events import has_lz4

    rows = db.execute_sql("SELECT attname, attcompression FROM pg_attribute WHERE attrelid = 'tracking_cache'::regclass "
                          "AND attname IN ('tracking_events', 'last_api_response')").fetchall()
    expected = "l" if has_lz4(db) else ""
    assert dict(rows) == {"tracking_events": expected, "last_api_response": expected}


def test_the_inbox_leaves_room_on_its_pages_so_that_a_claim_is_a_heap_only_update(db):
    versions = {row[0] for row in db.execute_sql("SELECT version FROM schema_migrations")}
    assert "0012" in versions, versions
    if not models.is_postgres(db):
        return  # SQLite has no fillfactor: the migration is recorded and does nothing there
    options = db.execute_sql("SELECT reloptions FROM pg_class WHERE relname = 'webhook_inbox'").fetchone()[0]
    assert "fillfactor=50" in (options or []), options


def test_locking_shipments_by_number_loads_what_peewee_loads_and_remembers_it(db):
    order = models.Order.create(id="o-lock", customer_email_hash="x")
    due = datetime(2026, 3, 1, 18, 30, 0, 123456, tzinfo=timezone.utc)
    events = [{"time": "2026-03-01T10:00:00Z", "status": "in_transit", "raw_code": "3", "raw_text": "Hub",
               "location": None, "fingerprint": "f" * 20}]
    for number in ("L1", "L2"):
        models.TrackingCache.create(order=order, courier_tracking_number=number, courier_service="easyparcel",
                                    next_update_due=due, tracking_events=events, last_api_response={"a": [1]},
                                    requires_attention=True, attention_reason="why")
    other = models.Order.create(id="o-lock-other", customer_email_hash="x")
    models.TrackingCache.create(order=other, courier_tracking_number="L1", courier_service="other", next_update_due=due)
    with models.write_transaction():
        locked = models.lock_shipments_by_number("easyparcel", ["L2", "L1", "L9"])
    expected = list(models.TrackingCache.select().where(models.TrackingCache.courier_service == "easyparcel")
                    .order_by(models.TrackingCache.id))
    assert [row.__data__ for row in locked] == [row.__data__ for row in expected]
    assert [row.id for row in locked] == sorted(row.id for row in locked)
    assert locked[0].next_update_due == due and locked[0].tracking_events == events
    assert models.loaded_values(locked[0]) == locked[0].__data__
    assert models.lock_shipments_by_number("easyparcel", []) == []


def test_marking_inbox_rows_sets_their_status_and_drops_their_claim(db):
    now = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
    rows = [models.WebhookInbox.create(courier="easyparcel", external_event_id=f"m-{i}", raw_body="{}", received_at=now,
                                       status=models.INBOX_PENDING, claimed_until=now + timedelta(minutes=5))
            for i in range(3)]
    with models.write_transaction():
        models.mark_inbox_rows([rows[0].id, rows[2].id], models.INBOX_FAILED, now, error="bad")
    fresh = {row.id: row for row in models.WebhookInbox.select()}
    for row in (rows[0], rows[2]):
        got = fresh[row.id]
        assert (got.status, got.processed_at, got.error, got.claimed_until) == (models.INBOX_FAILED, now, "bad", None)
    assert fresh[rows[1].id].status == models.INBOX_PENDING and fresh[rows[1].id].claimed_until is not None
