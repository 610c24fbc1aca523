"""Peewee models on one database proxy (SQLite embedded, PostgreSQL in production) and the
named functions for the queries that need care: claiming due shipments and locking rows.

Boot code calls `connect(url)` once; the schema itself is created by `migrations/`, never here.
All timestamps are stored as naive UTC and come back as aware UTC datetimes.
"""
from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import threading
import unicodedata
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable, Iterator, Sequence

import orjson
import peewee
from peewee import (
    SQL,
    BigAutoField,
    BooleanField,
    CharField,
    DatabaseProxy,
    ForeignKeyField,
    IntegerField,
    JSONField,
    Model,
    TextField,
)

database = DatabaseProxy()

# A next_update_due far enough away that a shipment which needs no polling never comes due.
NEVER = datetime(9999, 1, 1, tzinfo=timezone.utc)

# Job ledger and inbox states.
JOB_PENDING, JOB_RUNNING, JOB_COMPLETED, JOB_FAILED = "pending", "running", "completed", "failed"
INBOX_PENDING, INBOX_PROCESSED, INBOX_REJECTED, INBOX_FAILED = "pending", "processed", "rejected", "failed"
# A webhook whose topic carries no tracking data: kept, with the reason in `error`; not a failure.
INBOX_IGNORED = "ignored"


def utcnow() -> datetime:
    """The current time as an aware UTC datetime."""
    return datetime.now(timezone.utc)


class UTCDateTimeField(peewee.DateTimeField):
    """A timestamp stored as naive UTC; accepts aware datetimes and returns aware UTC ones."""

    def db_value(self, value: object) -> object:
        if isinstance(value, datetime):
            if value.tzinfo is not None:
                value = value.astimezone(timezone.utc).replace(tzinfo=None)
            # A fixed-width text form keeps SQLite's string comparisons in time order.
            return value.isoformat(sep=" ", timespec="microseconds")
        return value

    def python_value(self, value: object) -> object:
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        if isinstance(value, datetime):
            if value.tzinfo is None:
                return value.replace(tzinfo=timezone.utc)
            return value.astimezone(timezone.utc)
        return value


class BaseModel(Model):
    class Meta:
        database = database
        legacy_table_names = False


class Order(BaseModel):
    """A shop order; the customer email is kept only as a keyed hash for guest verification."""

    id = CharField(primary_key=True, max_length=128)
    customer_id = CharField(null=True, max_length=128)
    customer_email_hash = CharField(max_length=64)
    created_at = UTCDateTimeField(default=utcnow)

    class Meta:
        table_name = "orders"


class TrackingCache(BaseModel):
    """One shipment (a tracking number of an order) and everything we know about it."""

    id = peewee.AutoField()
    order = ForeignKeyField(Order, column_name="order_id", backref="shipments", on_delete="CASCADE")
    order_id: str  # peewee's accessor for the foreign key's raw value
    courier_tracking_number = CharField(max_length=64)
    courier_service = CharField(max_length=32)
    # Current status (canonical, see pipeline/status.py).
    current_status = CharField(max_length=32, default="pending")
    last_status_update = UTCDateTimeField(default=utcnow)
    tracking_events = JSONField(default=list)
    # Delivery information.
    estimated_delivery = UTCDateTimeField(null=True)
    actual_delivery = UTCDateTimeField(null=True)
    delivery_location = CharField(null=True, max_length=255)
    # Update management.
    last_api_update = UTCDateTimeField(default=utcnow)
    next_update_due = UTCDateTimeField(default=utcnow)
    update_frequency_minutes = IntegerField(default=120)
    consecutive_failures = IntegerField(default=0)
    # Status flags.
    is_delivered = BooleanField(default=False)
    is_failed = BooleanField(default=False)
    is_active = BooleanField(default=True)
    requires_attention = BooleanField(default=False)
    # Courier response cache.
    last_api_response = JSONField(null=True)
    api_response_hash = CharField(null=True, max_length=64)
    created_at = UTCDateTimeField(default=utcnow)
    updated_at = UTCDateTimeField(default=utcnow)
    # Ours, beyond the seed: the sweep's lease, expiry input, attention details.
    claimed_until = UTCDateTimeField(null=True)
    last_event_at = UTCDateTimeField(null=True)
    has_unmapped_events = BooleanField(default=False)
    attention_reason = TextField(null=True)
    refresh_requested_at = UTCDateTimeField(null=True)
    # Delivery estimates and delays (issue 16, m0008): ours beside the courier's, the range, the flag.
    courier_estimated_delivery = UTCDateTimeField(null=True)
    estimated_delivery_earliest = UTCDateTimeField(null=True)
    estimated_delivery_latest = UTCDateTimeField(null=True)
    estimate_source = CharField(null=True, max_length=16)  # history | courier
    estimate_basis = CharField(null=True, max_length=64)  # level and sample size
    first_estimated_delivery = UTCDateTimeField(null=True)
    is_delayed = BooleanField(default=False)
    delay_reason = TextField(null=True)
    delayed_since = UTCDateTimeField(null=True)

    class Meta:
        table_name = "tracking_cache"


class TrackingUpdateLog(BaseModel):
    """One attempt to update a shipment: what triggered it, how the call went, what changed."""

    id = BigAutoField()
    tracking_cache = ForeignKeyField(TrackingCache, column_name="tracking_cache_id", null=True,
                                     backref="update_logs", on_delete="CASCADE")
    update_type = CharField(max_length=16)  # scheduled | manual | webhook | retry
    triggered_by = CharField(null=True, max_length=128)  # system | admin:<fingerprint> | webhook
    api_call_success = BooleanField()
    api_response_time_ms = IntegerField(null=True)
    api_status_code = IntegerField(null=True)
    api_error_message = TextField(null=True)
    status_changed = BooleanField(default=False)
    previous_status = CharField(null=True, max_length=32)
    new_status = CharField(null=True, max_length=32)
    events_added = IntegerField(default=0)
    started_at = UTCDateTimeField()
    completed_at = UTCDateTimeField(null=True)

    class Meta:
        table_name = "tracking_update_logs"


class TrackingJob(BaseModel):
    """The job ledger admins watch; Dramatiq carries the messages, this row records their fate."""

    id = BigAutoField()
    tracking_cache = ForeignKeyField(TrackingCache, column_name="tracking_cache_id", null=True,
                                     backref="jobs", on_delete="CASCADE")
    tracking_cache_id: int | None
    job_type = CharField(max_length=16)  # update | retry | manual | cleanup
    priority = IntegerField(default=100)
    scheduled_for = UTCDateTimeField(default=utcnow)
    attempts = IntegerField(default=0)
    max_attempts = IntegerField(default=3)
    last_attempt_at = UTCDateTimeField(null=True)
    last_error = TextField(null=True)
    status = CharField(max_length=16, default=JOB_PENDING)
    created_at = UTCDateTimeField(default=utcnow)
    updated_at = UTCDateTimeField(default=utcnow)
    batch_id = CharField(null=True, max_length=64)
    completed_at = UTCDateTimeField(null=True)

    class Meta:
        table_name = "tracking_job_queue"


class WebhookInbox(BaseModel):
    """Every courier webhook exactly as received, stored before it is acknowledged."""

    id = BigAutoField()
    courier = CharField(max_length=32)
    topic = CharField(null=True, max_length=64)
    external_event_id = CharField(null=True, max_length=128)
    raw_body = TextField()
    received_at = UTCDateTimeField(default=utcnow)
    processed_at = UTCDateTimeField(null=True)
    status = CharField(max_length=16, default=INBOX_PENDING)
    error = TextField(null=True)
    attempts = IntegerField(default=0)
    # Webhook ingestion: the lease of the drain that claimed this row (m0006); `attempts` counts claims.
    claimed_until = UTCDateTimeField(null=True)

    class Meta:
        table_name = "webhook_inbox"


class CourierApiCall(BaseModel):
    """One HTTP call to a courier, for usage, budget and latency figures."""

    id = BigAutoField()
    courier = CharField(max_length=32)
    called_at = UTCDateTimeField(default=utcnow)
    endpoint = CharField(max_length=255)
    trigger = CharField(max_length=16, default="scheduled")  # scheduled | manual | retry
    tracking_numbers_count = IntegerField(default=0)
    http_status = IntegerField(null=True)
    latency_ms = IntegerField(null=True)
    is_success = BooleanField(default=False)
    error = TextField(null=True)

    class Meta:
        table_name = "courier_api_calls"


class ApiUsageDaily(BaseModel):
    """One day's courier API usage, summarised by the usage-report sweep."""

    id = peewee.AutoField()
    day = peewee.DateField()
    courier = CharField(max_length=32)
    calls = IntegerField(default=0)
    successes = IntegerField(default=0)
    failures = IntegerField(default=0)
    tracking_numbers = IntegerField(default=0)
    p50_latency_ms = IntegerField(null=True)
    p95_latency_ms = IntegerField(null=True)
    computed_at = UTCDateTimeField(default=utcnow)

    class Meta:
        table_name = "api_usage_daily"


class AuditLog(BaseModel):
    """One admin action (registration, refresh, bulk refresh) or admin read of a shipment: who
    (the token's short fingerprint and role, never the token), what, on what, from where."""

    id = BigAutoField()
    at = UTCDateTimeField(default=utcnow)
    actor = CharField(max_length=12)  # first 12 hex digits of the token's sha256
    role = CharField(max_length=16)  # admin | viewer
    action = CharField(max_length=64)
    target = CharField(null=True, max_length=255)
    detail = JSONField(null=True)
    client_address = CharField(null=True, max_length=64)

    class Meta:
        table_name = "audit_log"


# --- integration API (issue 17): idempotency keys and the shipment changes feed ---------------

class IdempotencyKey(BaseModel):
    """The first answer to an admin POST sent with an `Idempotency-Key` header, replayed to
    retries with the same key and body for 24 hours. `status_code` is null while in progress."""

    actor = CharField(max_length=12)  # the token's fingerprint: keys are per token
    idempotency_key = CharField(max_length=255)
    request_hash = CharField(max_length=64)
    status_code = IntegerField(null=True)
    response_body = TextField(null=True)
    content_type = CharField(null=True, max_length=128)
    created_at = UTCDateTimeField(default=utcnow)

    class Meta:
        table_name = "idempotency_keys"
        primary_key = peewee.CompositeKey("actor", "idempotency_key")


class ShipmentChange(BaseModel):
    """One change of one shipment, for `GET /api/admin/changes` (see pipeline/changes_feed.py)."""

    id = BigAutoField()
    txid = peewee.BigIntegerField()  # set by the database: the writing transaction's id (PostgreSQL)
    shipment_id = IntegerField()
    change = CharField(max_length=16)  # registered | tracking | corrected | stopped | erased
    changed_at = UTCDateTimeField(default=utcnow)

    class Meta:
        table_name = "shipment_changes"


# --- notifications: webhooks to the shop and emails to customers (issue 15) ---------------------

NOTIFY_PENDING, NOTIFY_DELIVERED, NOTIFY_FAILED, NOTIFY_CANCELLED = "pending", "delivered", "failed", "cancelled"


class NotificationEndpoint(BaseModel):
    """A shop URL that receives signed status-change webhooks for the event types it subscribed to."""

    id = peewee.AutoField()
    url = CharField(max_length=2048)
    description = CharField(max_length=255, default="")
    events = JSONField(default=list)
    secret = CharField(max_length=128)
    # After a rotation the old secret still signs (a second signature) until it expires.
    previous_secret = CharField(null=True, max_length=128)
    previous_secret_expires_at = UTCDateTimeField(null=True)
    is_enabled = BooleanField(default=True)
    disabled_reason = TextField(null=True)
    failing_since = UTCDateTimeField(null=True)
    created_at = UTCDateTimeField(default=utcnow)
    updated_at = UTCDateTimeField(default=utcnow)

    class Meta:
        table_name = "notification_endpoints"


class NotificationOutbox(BaseModel):
    """One notification to deliver (a webhook to an endpoint or an email to a customer), written
    in the transaction of the change that caused it and delivered at least once afterwards."""

    id = BigAutoField()
    channel = CharField(max_length=16)  # webhook | email
    event_type = CharField(max_length=64)
    endpoint_id = IntegerField(null=True)
    order_id = CharField(null=True, max_length=128)
    tracking_cache_id = IntegerField(null=True)
    message_id = CharField(max_length=64, unique=True)  # the webhook-id header / email Message-ID
    dedupe_key = CharField(max_length=128, unique=True)
    payload = JSONField()
    status = CharField(max_length=16, default=NOTIFY_PENDING)
    attempts = IntegerField(default=0)
    next_attempt_at = UTCDateTimeField(default=utcnow)
    claimed_until = UTCDateTimeField(null=True)
    last_error = TextField(null=True)
    last_status_code = IntegerField(null=True)
    replay_of = CharField(null=True, max_length=64)
    created_at = UTCDateTimeField(default=utcnow)
    delivered_at = UTCDateTimeField(null=True)

    class Meta:
        table_name = "notification_outbox"


class NotificationAttempt(BaseModel):
    """One try at delivering an outbox row: the answer's status code, latency and first bytes."""

    id = BigAutoField()
    outbox = ForeignKeyField(NotificationOutbox, column_name="outbox_id", backref="attempt_rows", on_delete="CASCADE")
    outbox_id: int
    attempted_at = UTCDateTimeField(default=utcnow)
    is_success = BooleanField(default=False)
    status_code = IntegerField(null=True)
    latency_ms = IntegerField(null=True)
    response_excerpt = TextField(null=True)
    error = TextField(null=True)

    class Meta:
        table_name = "notification_attempts"


class OrderContact(BaseModel):
    """How to reach an order's customer: the email address encrypted (Fernet; only the notifier
    decrypts it), the language, and whether emails are wanted, unsubscribed or bouncing.
    Erasing an order erases this row (`pipeline.outbox.erase_customer_contact`)."""

    order = ForeignKeyField(Order, column_name="order_id", primary_key=True, on_delete="CASCADE")
    order_id: str
    email_encrypted = TextField(null=True)
    locale = CharField(max_length=8, default="en")
    notify_email = BooleanField(default=False)
    unsubscribed_at = UTCDateTimeField(null=True)
    bounced_at = UTCDateTimeField(null=True)
    created_at = UTCDateTimeField(default=utcnow)
    updated_at = UTCDateTimeField(default=utcnow)

    class Meta:
        table_name = "order_contacts"


NOTIFICATION_MODELS: tuple[type[BaseModel], ...] = (NotificationEndpoint, NotificationOutbox, NotificationAttempt,
                                                    OrderContact)
# --- Delivery estimates and delays (issue 16, migration m0008) ---------------------------------

# The columns m0008 adds to tracking_cache are declared in TrackingCache (its "Delivery estimates" block).


class JourneyFact(BaseModel):
    """A finished journey as the estimator learns from it (see pipeline/estimates.py)."""

    id = BigAutoField()
    tracking_cache = ForeignKeyField(TrackingCache, column_name="tracking_cache_id", null=True, unique=True,
                                     on_delete="SET NULL")
    tracking_cache_id: int | None
    courier = CharField(max_length=64)
    service = CharField(max_length=32)
    origin_state = CharField(null=True, max_length=64)
    origin_country = CharField(null=True, max_length=2)
    destination_state = CharField(null=True, max_length=64)
    destination_country = CharField(null=True, max_length=2)
    milestones = JSONField(default=dict)
    outcome = CharField(max_length=32)
    handed_over_at = UTCDateTimeField(null=True)
    delivered_at = UTCDateTimeField(null=True)
    finished_at = UTCDateTimeField()
    failed_attempts = IntegerField(default=0)
    business_days = IntegerField(null=True)
    first_estimated_delivery = UTCDateTimeField(null=True)
    had_exception = BooleanField(default=False)
    recorded_at = UTCDateTimeField(default=utcnow)

    class Meta:
        table_name = "journey_facts"


ALL_MODELS: tuple[type[BaseModel], ...] = (
    Order, TrackingCache, TrackingUpdateLog, TrackingJob, WebhookInbox, CourierApiCall, ApiUsageDaily, AuditLog,
    IdempotencyKey, ShipmentChange, JourneyFact,
    *NOTIFICATION_MODELS,
)


# --- connection -----------------------------------------------------------------------------

_connect_lock = threading.Lock()


def open_database(url: str, *, max_connections: int = 20) -> peewee.Database:
    """Create (not yet connect) the database object for a `DATABASE_URL`."""
    from playhouse.db_url import parse
    from urllib.parse import urlparse

    scheme = urlparse(url).scheme
    if scheme.startswith("sqlite"):
        # sqlite:///relative.db -> relative.db; sqlite:////abs/file.db -> /abs/file.db
        path = urlparse(url).path[1:]
        return peewee.SqliteDatabase(
            path or ":memory:",
            pragmas={
                "journal_mode": "wal",
                "foreign_keys": 1,
                "busy_timeout": 10000,
                "synchronous": "normal",
            },
            timeout=10,
        )
    from playhouse.pool import PooledPostgresqlDatabase

    _read_json_with_orjson()
    params = parse(url)
    name = params.pop("database")
    return PooledPostgresqlDatabase(
        name,
        max_connections=max_connections,
        stale_timeout=300,
        timeout=10,
        options="-c timezone=UTC",
        **params,
    )


def connect(url: str, *, max_connections: int = 20) -> peewee.Database:
    """Point the model proxy at the database behind `url` and return it."""
    db = open_database(url, max_connections=max_connections)
    with _connect_lock:
        database.initialize(db)
    return db


def is_postgres(db: peewee.Database | None = None) -> bool:
    target = db if db is not None else database.obj
    return isinstance(target, peewee.PostgresqlDatabase)


@contextlib.contextmanager
def write_transaction() -> Iterator[None]:
    """A transaction that takes the write lock at once on SQLite (BEGIN IMMEDIATE), so that a
    read-then-write inside it cannot race another writer; a plain transaction on PostgreSQL."""
    if is_postgres():
        with database.atomic():
            yield
    else:
        with database.atomic(lock_type="IMMEDIATE"):
            yield


# --- customer emails ------------------------------------------------------------------------

def normalise_email(email: str) -> str:
    """The form an address is compared in: trimmed, NFKC-normalised, case-folded."""
    return unicodedata.normalize("NFKC", email).strip().casefold()


def hash_email(email: str, key: str) -> str:
    """Keyed hash (HMAC-SHA256) of the normalised address, the only form stored at rest."""
    return hmac.new(key.encode("utf-8"), normalise_email(email).encode("utf-8"), hashlib.sha256).hexdigest()


# --- claiming due shipments -----------------------------------------------------------------

def claim_due_shipments(now: datetime, *, limit: int, lease: timedelta) -> list[tuple[int, str, str]]:
    """Claim up to `limit` active shipments whose poll is due, for `lease`; returns
    (id, courier, tracking number) of the rows this caller now owns.

    On PostgreSQL concurrent claimers skip each other's rows (FOR UPDATE SKIP LOCKED); on SQLite
    the claim runs under the database write lock (BEGIN IMMEDIATE), which serialises claimers.
    """
    lease_end = now + lease
    due = (
        TrackingCache.select(TrackingCache.id)
        .where(
            (TrackingCache.is_active == True)  # noqa: E712 (peewee expression)
            & (TrackingCache.is_delivered == False)  # noqa: E712
            & (TrackingCache.next_update_due <= now)
            & (TrackingCache.claimed_until.is_null() | (TrackingCache.claimed_until < now))
        )
        .order_by(TrackingCache.next_update_due)
        .limit(limit)
    )
    returning = (TrackingCache.id, TrackingCache.courier_service, TrackingCache.courier_tracking_number)
    if is_postgres():
        with database.atomic():
            query = (
                TrackingCache.update(claimed_until=lease_end)
                .where(TrackingCache.id.in_(due.for_update(skip_locked=True)))
                .returning(*returning)
            )
            return [(row.id, row.courier_service, row.courier_tracking_number) for row in query.execute()]
    with write_transaction():
        ids = [row.id for row in due]
        if not ids:
            return []
        TrackingCache.update(claimed_until=lease_end).where(TrackingCache.id.in_(ids)).execute()
        rows = TrackingCache.select(*returning).where(TrackingCache.id.in_(ids)).order_by(TrackingCache.id)
        return [(row.id, row.courier_service, row.courier_tracking_number) for row in rows]


def model_rows(query: Any, *, remember_loaded: bool = False) -> list[Any]:
    """The rows of a model query (a select, or a write with RETURNING) as model instances, built
    without peewee's constructor: it sets each column through its descriptor and marks it dirty,
    then clears that again, which was over a tenth of a webhook drain's CPU (300 shipments of 40
    columns and 300 inbox rows per batch). Values are converted by the fields as usual. With
    `remember_loaded`, each row keeps its values as loaded (`loaded_values`), so that a bulk write
    can leave out the columns nobody changed."""
    return _built_rows(query.model, [field.name for field in query._returning], query.tuples(),
                       remember_loaded=remember_loaded)


def _built_rows(model: type[Model], names: Sequence[str], rows_of_values: Iterable[Sequence[Any]], *,
                remember_loaded: bool) -> list[Any]:
    rows = []
    for values in rows_of_values:
        row = model.__new__(model)
        row.__data__ = dict(zip(names, values))
        row._dirty = set()
        row.__rel__ = {}
        if remember_loaded:
            row._loaded_values = dict(row.__data__)
        rows.append(row)
    return rows


def lock_shipments_by_number(courier: str, numbers: Sequence[str]) -> list[TrackingCache]:
    """The courier's shipments with these tracking numbers, locked for the caller's transaction in
    id order (so two writers never deadlock; on SQLite the caller holds the write lock), with their
    loaded values remembered (`loaded_values`). On PostgreSQL one hand-written query with
    `= ANY(array)`: peewee composing the `IN` list of a batch's 300 numbers cost more than running it."""
    if not numbers:
        return []
    if not is_postgres():
        query = (TrackingCache.select()
                 .where((TrackingCache.courier_service == courier)
                        & (TrackingCache.courier_tracking_number.in_(list(numbers))))
                 .order_by(TrackingCache.id))
        return model_rows(query, remember_loaded=True)
    fields = TrackingCache._meta.sorted_fields
    columns = ", ".join(f'"{field.column_name}"' for field in fields)
    cursor = database.execute_sql(f"SELECT {columns} FROM tracking_cache WHERE courier_service = %s "
                                  "AND courier_tracking_number = ANY(%s) ORDER BY id FOR UPDATE",
                                  (courier, list(numbers)))
    converters = [field.python_value for field in fields]
    return _built_rows(TrackingCache, [field.name for field in fields],
                       ([convert(value) for convert, value in zip(converters, values)] for values in cursor.fetchall()),
                       remember_loaded=True)


def mark_inbox_rows(ids: Sequence[int], status: str, now: datetime, error: str | None = None) -> None:
    """Give inbox rows their final status (and drop their claim), in the caller's transaction. On
    PostgreSQL one hand-written `UPDATE ... WHERE id = ANY(array)`."""
    if not ids:
        return
    if not is_postgres():
        WebhookInbox.update(status=status, processed_at=now, error=error, claimed_until=None).where(
            WebhookInbox.id.in_(list(ids))).execute()
        return
    database.execute_sql("UPDATE webhook_inbox SET status = %s, processed_at = %s, error = %s, claimed_until = NULL "
                         "WHERE id = ANY(%s)", (status, WebhookInbox.processed_at.db_value(now), error, list(ids)))


def loaded_values(row: Model) -> dict[str, Any] | None:
    """A row's values as `model_rows(..., remember_loaded=True)` loaded them, else None. They are
    the same objects the row starts with: code that changes a row assigns new values (as persist
    does), never changes a loaded list or dict in place, or the change would not be seen."""
    return getattr(row, "_loaded_values", None)


# Columns persist rewrites for every shipment it touches, with their PostgreSQL types.
_SHIPMENT_WRITE_COLUMNS = (
    ("current_status", "varchar"), ("last_status_update", "timestamp"), ("tracking_events", "jsonb"),
    ("courier_estimated_delivery", "timestamp"), ("actual_delivery", "timestamp"), ("delivery_location", "varchar"),
    ("last_api_update", "timestamp"), ("next_update_due", "timestamp"), ("update_frequency_minutes", "integer"),
    ("consecutive_failures", "integer"), ("is_delivered", "boolean"), ("is_failed", "boolean"),
    ("requires_attention", "boolean"), ("last_api_response", "jsonb"), ("api_response_hash", "varchar"),
    ("updated_at", "timestamp"), ("claimed_until", "timestamp"), ("last_event_at", "timestamp"),
    ("has_unmapped_events", "boolean"), ("attention_reason", "text"),
)


def _json_param(value: object) -> object:
    return None if value is None else json_text(value)


def _plain_converter(field: peewee.Field) -> Any:
    """How a value of this field becomes a plain parameter (JSON as text, which both databases
    cast), chosen once per batch rather than per value (a drain converts 20 columns of 300
    shipments per batch)."""
    return _json_param if isinstance(field, JSONField) else field.db_value


def _plain_params(fields: Sequence[peewee.Field], rows: Iterable[dict[str, object]]) -> list[list[object]]:
    """Each row's values (a dict keyed by field name) of `fields`, as plain parameters."""
    pairs = [(field.name, _plain_converter(field)) for field in fields]
    return [[convert(row.get(name)) for name, convert in pairs] for row in rows]


_ORJSON_STRICT = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


def json_text(value: object) -> str:
    """`json.dumps(value)`'s JSON, written by orjson (several times faster: a shipment's events
    are written at every merge). Whatever orjson will not write as the standard library would
    (non-string keys, datetimes, dataclasses, lone surrogates) goes to json.dumps, which writes or
    refuses it as before."""
    try:
        return orjson.dumps(value, option=_ORJSON_STRICT).decode("utf-8")
    except TypeError:
        return json.dumps(value)


def json_value(text: str | bytes) -> Any:
    """`json.loads(text)` by orjson, or by the standard library for what orjson refuses (integers
    beyond 64 bits)."""
    try:
        return orjson.loads(text)
    except ValueError:
        return json.loads(text)


def _read_json_with_orjson() -> None:
    """psycopg2 decodes json and jsonb columns with `json_value` (in every connection of this
    process): a shipment's events are read back at every merge, and the standard library's
    decoder was about 7% of a drain's CPU at 20 events per shipment."""
    import psycopg2.extras

    psycopg2.extras.register_default_json(globally=True, loads=json_value)
    psycopg2.extras.register_default_jsonb(globally=True, loads=json_value)


def changed_write_columns(rows: Sequence[TrackingCache]) -> list[tuple[str, str]]:
    """The persist columns (`_SHIPMENT_WRITE_COLUMNS`) some row of the batch changed since it was
    loaded; all of them for a row loaded without its values remembered. A webhook's merge changes
    about six of the twenty: the others (the courier's last raw answer among them, often the
    largest value of the row) are not sent and parsed again for every shipment of a batch."""
    changed = []
    for name, kind in _SHIPMENT_WRITE_COLUMNS:
        field_name = TrackingCache._meta.columns[name].name
        for row in rows:
            loaded = loaded_values(row)
            if loaded is None or field_name not in loaded or row.__data__.get(field_name) != loaded[field_name]:
                changed.append((name, kind))
                break
    return changed


def bulk_update_shipments(rows: Sequence[TrackingCache]) -> None:
    """Write the persist columns that changed (`changed_write_columns`) of many shipment rows in
    one statement (PostgreSQL: UPDATE ... FROM (VALUES ...)) or one prepared statement run for
    each row (SQLite)."""
    columns = changed_write_columns(rows)
    if not rows or not columns:
        return
    fields = [TrackingCache.id] + [TrackingCache._meta.columns[name] for name, _ in columns]
    params = _plain_params(fields, (row.__data__ for row in rows))
    if is_postgres():
        placeholders = "(%s::integer, " + ", ".join(f"%s::{kind}" for _, kind in columns) + ")"
        assignments = ", ".join(f"{name} = v.{name}" for name, _ in columns)
        names = ", ".join(name for name, _ in columns)
        for start in range(0, len(params), 500):
            chunk = params[start:start + 500]
            sql = (f"UPDATE tracking_cache AS t SET {assignments} FROM (VALUES "
                   + ", ".join([placeholders] * len(chunk)) + f") AS v(id, {names}) WHERE t.id = v.id")
            database.execute_sql(sql, [value for row in chunk for value in row])
        return
    assignments = ", ".join(f"{name} = ?" for name, _ in columns)
    cursor = database.cursor()
    cursor.executemany(f"UPDATE tracking_cache SET {assignments} WHERE id = ?", [p[1:] + p[:1] for p in params])


def insert_rows(model: type[BaseModel], rows: Sequence[dict[str, object]]) -> None:
    """Insert many rows (dicts keyed by field name, all with the same keys) in the caller's
    transaction. On PostgreSQL the statement is built once and filled by psycopg2's
    execute_values, which is several times quicker than peewee building a large insert_many for
    1,000 rows (that was most of a bulk registration's time); SQLite uses insert_many."""
    if not rows:
        return
    if not is_postgres():
        model.insert_many(rows).execute()
        return
    from psycopg2.extras import execute_values

    fields = [model._meta.fields[name] for name in rows[0]]
    columns = ", ".join(field.column_name for field in fields)
    params = _plain_params(fields, rows)
    cursor = database.cursor()
    execute_values(cursor, f"INSERT INTO {model._meta.table_name} ({columns}) VALUES %s", params, page_size=1000)


def count_rows(model: type[BaseModel]) -> int:
    """Rows in a table (for admin figures and tests)."""
    return model.select(SQL("1")).count()


# --- webhook ingestion: the inbox's group insert and batch claims ----------------------------

_INBOX_COLUMNS = ("courier", "topic", "external_event_id", "raw_body", "received_at", "processed_at", "status",
                  "error")


def insert_values(model: type[BaseModel], columns: Sequence[str], rows: Sequence[dict[str, Any]]) -> tuple[str, list[Any]]:
    """`INSERT INTO <table> (<columns>) VALUES (...), (...)` and its parameters for rows keyed by
    field name, composed by hand: peewee's insert_many spends more CPU composing the SQL of a
    batch than the database spends running it."""
    fields = [model._meta.fields[name] for name in columns]
    one = "(" + ", ".join([database.param] * len(fields)) + ")"
    sql = (f"INSERT INTO {model._meta.table_name} ({', '.join(field.column_name for field in fields)}) VALUES "
           + ", ".join([one] * len(rows)))
    return sql, [field.db_value(row[field.name]) for row in rows for field in fields]


# Sent before a write whose success is promised to someone else (a webhook answered 200): its
# commit returns only once it is on disk, whatever the server or session default (with
# `synchronous_commit = off` a crash can lose commits the client was already told about).
DURABLE_COMMIT = "SET LOCAL synchronous_commit TO on"


_INBOX_RETURNING = " RETURNING id, courier, external_event_id"


def store_inbox_group(keyed: Sequence[dict[str, object]], rejected: Sequence[dict[str, object]]
                      ) -> tuple[dict[tuple[str, str], int], list[int]]:
    """Insert one group of inbox rows, committed durably as one transaction: `keyed` rows whose
    (courier, event id) is stored already are skipped (`ON CONFLICT DO NOTHING`), `rejected` rows
    are kept as they are. Returns {(courier, event id): new id} of the keyed rows stored and the
    new ids of the rejected rows in the order given. Nothing is stored if it raises.

    On PostgreSQL this is one round trip: `SET LOCAL synchronous_commit TO on; INSERT ...`
    (with both inserts in one statement when there are rejected rows) sent as one query, which
    PostgreSQL runs as one implicit transaction; no BEGIN or COMMIT of their own. Elsewhere (SQLite)
    the inserts run in a write transaction."""
    if not is_postgres():
        with write_transaction():
            stored_rows = _run_inbox_insert(keyed, keyed=True)
            refused_rows = _run_inbox_insert(rejected, keyed=False)
        return ({(courier, event_id): row_id for row_id, courier, event_id in stored_rows},
                sorted(row_id for row_id, _, _ in refused_rows))
    ctes: list[str] = []
    selects: list[str] = []
    params: list[Any] = []
    for name, rows, conflict in (("keyed", keyed, " ON CONFLICT DO NOTHING"), ("refused", rejected, "")):
        if rows:
            sql, row_params = insert_values(WebhookInbox, _INBOX_COLUMNS, rows)
            ctes.append(f"{name} AS ({sql}{conflict}{_INBOX_RETURNING})")
            selects.append(f"SELECT {name == 'keyed'}, id, courier, external_event_id FROM {name}")
            params.extend(row_params)
    if not ctes:
        return {}, []
    returned = database.execute_sql(f"{DURABLE_COMMIT}; WITH {', '.join(ctes)} {' UNION ALL '.join(selects)}",
                                    params).fetchall()
    stored = {(courier, event_id): row_id for is_keyed, row_id, courier, event_id in returned if is_keyed}
    return stored, sorted(row_id for is_keyed, row_id, _, _ in returned if not is_keyed)


def _run_inbox_insert(rows: Sequence[dict[str, object]], *, keyed: bool) -> list[tuple[int, str, str]]:
    if not rows:
        return []
    sql, params = insert_values(WebhookInbox, _INBOX_COLUMNS, rows)
    return database.execute_sql(sql + (" ON CONFLICT DO NOTHING" if keyed else "") + _INBOX_RETURNING,
                                params).fetchall()


def claim_inbox_rows(now: datetime, *, limit: int, lease: timedelta) -> list[WebhookInbox]:
    """Claim up to `limit` pending inbox rows no live claim holds, oldest first, for `lease`; each
    claim counts in `attempts`. Concurrent drains skip each other's rows (FOR UPDATE SKIP LOCKED on
    PostgreSQL; the write lock serialises them on SQLite)."""
    free = (WebhookInbox.status == INBOX_PENDING) & (
        WebhookInbox.claimed_until.is_null() | (WebhookInbox.claimed_until < now))
    waiting = WebhookInbox.select(WebhookInbox.id).where(free).order_by(WebhookInbox.id).limit(limit)
    claim = {"claimed_until": now + lease, "attempts": WebhookInbox.attempts + 1}
    returning = (WebhookInbox.id, WebhookInbox.courier, WebhookInbox.topic, WebhookInbox.external_event_id,
                 WebhookInbox.raw_body, WebhookInbox.attempts, WebhookInbox.received_at)
    if is_postgres():
        with database.atomic():
            query = (WebhookInbox.update(**claim)
                     .where(WebhookInbox.id.in_(waiting.for_update(skip_locked=True))).returning(*returning))
            return sorted(model_rows(query), key=lambda row: row.id)
    with write_transaction():
        ids = [row.id for row in waiting]
        if not ids:
            return []
        WebhookInbox.update(**claim).where(WebhookInbox.id.in_(ids)).execute()
        return list(WebhookInbox.select(*returning).where(WebhookInbox.id.in_(ids)).order_by(WebhookInbox.id))


# --- Delivery estimates (issue 16): writing many shipments' estimate columns at once ----------------

ESTIMATE_WRITE_COLUMNS = (
    ("estimated_delivery", "timestamp"), ("estimated_delivery_earliest", "timestamp"),
    ("estimated_delivery_latest", "timestamp"), ("estimate_source", "varchar"), ("estimate_basis", "varchar"),
    ("first_estimated_delivery", "timestamp"), ("is_delayed", "boolean"), ("delay_reason", "text"),
    ("delayed_since", "timestamp"), ("next_update_due", "timestamp"), ("update_frequency_minutes", "integer"),
)


def bulk_update_estimates(rows: Sequence[TrackingCache]) -> None:
    """Write the estimate, delay and schedule columns of many shipments: one UPDATE ... FROM
    (VALUES ...) per 500 rows on PostgreSQL, one prepared statement on SQLite."""
    if not rows:
        return
    fields = [TrackingCache.id] + [TrackingCache._meta.columns[name] for name, _ in ESTIMATE_WRITE_COLUMNS]
    params = _plain_params(fields, (row.__data__ for row in rows))
    names = [name for name, _ in ESTIMATE_WRITE_COLUMNS]
    if is_postgres():
        placeholders = "(%s::integer, " + ", ".join(f"%s::{kind}" for _, kind in ESTIMATE_WRITE_COLUMNS) + ")"
        assignments = ", ".join(f"{name} = v.{name}" for name in names)
        for start in range(0, len(params), 500):
            chunk = params[start:start + 500]
            database.execute_sql(
                f"UPDATE tracking_cache AS t SET {assignments} FROM (VALUES "
                + ", ".join([placeholders] * len(chunk)) + f") AS v(id, {', '.join(names)}) WHERE t.id = v.id",
                [value for row in chunk for value in row])
        return
    database.cursor().executemany(f"UPDATE tracking_cache SET {', '.join(f'{n} = ?' for n in names)} WHERE id = ?",
                                  [p[1:] + p[:1] for p in params])
