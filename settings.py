"""Settings: the one module that reads the environment (and `.env`), typed and validated once.

Every other module receives values from here (or from boot code that read them here); nothing
else touches `os.environ`. A bad value raises `SettingsError` with one line naming the variable,
the value and what was expected; the command line prints that line and exits non-zero.
"""
from __future__ import annotations

import hashlib
import os
import zoneinfo
from dataclasses import dataclass, field, fields
from datetime import date
from typing import Callable, Mapping, TypeVar
from urllib.parse import urlparse

T = TypeVar("T")

DEFAULT_DATABASE_URL = "sqlite:///trackcache.db"
OPEN_API_BASE_URL = "https://api.easyparcel.com"
LEGACY_API_BASE_URL = "https://connect.easyparcel.my"
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")


class SettingsError(ValueError):
    """A setting has a value the program cannot use; the message is one line for the operator."""


class Secret:
    """A string that never shows itself in a repr, a log line or a traceback."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __repr__(self) -> str:
        return "Secret('**********')" if self._value else "Secret('')"

    __str__ = __repr__


def token_digest(token: str) -> str:
    """Hex SHA-256 of a bearer token, the form in which tokens are compared and may be configured."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


# --- parsers: each takes the raw string and returns a value or raises ValueError(expected) ---

def _positive_int(raw: str) -> int:
    value = int(raw.strip())
    if value <= 0:
        raise ValueError
    return value


_positive_int.expected = "a positive integer"  # type: ignore[attr-defined]


def _non_negative_int(raw: str) -> int:
    value = int(raw.strip())
    if value < 0:
        raise ValueError
    return value


_non_negative_int.expected = "a non-negative integer"  # type: ignore[attr-defined]


def _percent(raw: str) -> int:
    value = int(raw.strip())
    if not 0 <= value <= 100:
        raise ValueError
    return value


_percent.expected = "an integer percentage from 0 to 100"  # type: ignore[attr-defined]


def _positive_float(raw: str) -> float:
    value = float(raw.strip())
    if not value > 0:
        raise ValueError
    return value


_positive_float.expected = "a positive number"  # type: ignore[attr-defined]


def _boolean(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError


_boolean.expected = "true or false"  # type: ignore[attr-defined]


def _log_level(raw: str) -> str:
    lowered = raw.strip().lower()
    if lowered not in LOG_LEVELS:
        raise ValueError
    return lowered


_log_level.expected = "one of " + ", ".join(LOG_LEVELS)  # type: ignore[attr-defined]


def _delays(raw: str) -> tuple[int, ...]:
    values = tuple(_positive_int(part) for part in raw.split(",") if part.strip())
    if not values:
        raise ValueError
    return values


_delays.expected = "a comma-separated list of positive seconds, like 60,300,900"  # type: ignore[attr-defined]


def _dates(raw: str) -> frozenset[date]:
    return frozenset(date.fromisoformat(part.strip()) for part in raw.split(",") if part.strip())


_dates.expected = "a comma-separated list of YYYY-MM-DD dates"  # type: ignore[attr-defined]


def _timezone(raw: str) -> str:
    name = raw.strip()
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError from None
    return name


_timezone.expected = "an IANA time zone name like Asia/Kuala_Lumpur"  # type: ignore[attr-defined]


def _database_url(raw: str) -> str:
    url = raw.strip()
    scheme = urlparse(url).scheme
    if scheme not in ("sqlite", "postgres", "postgresql", "postgres+pool", "postgresql+pool"):
        raise ValueError
    return url


_database_url.expected = "a sqlite:///path or postgresql://user@host/db URL"  # type: ignore[attr-defined]


def _redis_url(raw: str) -> str:
    url = raw.strip()
    if url and urlparse(url).scheme not in ("redis", "rediss", "unix"):
        raise ValueError
    return url


_redis_url.expected = "a redis://host:port/db URL, or empty for the embedded broker"  # type: ignore[attr-defined]


# Durable broker (issue 11): RabbitMQ as an optional broker for the pipeline's messages.
def _broker_url(raw: str) -> str:
    url = raw.strip()
    if url and urlparse(url).scheme not in ("amqp", "amqps", "redis", "rediss"):
        raise ValueError
    return url


_broker_url.expected = ("an amqp://user:password@host:port/vhost URL (RabbitMQ), a redis:// URL, or empty "
                        "for REDIS_URL")  # type: ignore[attr-defined]


def _http_url(raw: str) -> str:
    url = raw.strip().rstrip("/")
    if not url:
        return url
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ValueError
    return url


_http_url.expected = "an http(s):// URL, or empty for the default"  # type: ignore[attr-defined]


def _namespace(raw: str) -> str:
    value = raw.strip()
    if not value or len(value) > 64 or not all(c.isalnum() or c in "-_." for c in value):
        raise ValueError
    return value


_namespace.expected = "1-64 letters, digits, '-', '_' or '.'"  # type: ignore[attr-defined]


def _api_kind(raw: str) -> str:
    lowered = raw.strip().lower()
    if lowered not in ("open", "legacy"):
        raise ValueError
    return lowered


_api_kind.expected = "open or legacy"  # type: ignore[attr-defined]


def _api_version(raw: str) -> str:
    value = raw.strip()
    year, _, month = value.partition("-")
    if not (len(year) == 4 and year.isdigit() and len(month) == 2 and month.isdigit()):
        raise ValueError
    return value


_api_version.expected = "a version like 2026-06"  # type: ignore[attr-defined]


def _token_digests(raw: str) -> tuple[str, ...]:
    # The errors name the entry by position and never quote it: the value is a list of secrets.
    digests = []
    for position, entry in enumerate((part.strip() for part in raw.split(",")), start=1):
        if not entry:
            continue
        if entry.startswith("sha256:"):
            hexdigest = entry[len("sha256:"):].lower()
            if len(hexdigest) != 64 or any(c not in "0123456789abcdef" for c in hexdigest):
                raise ValueError(f"entry {position} is not sha256: followed by 64 hex digits")
            digests.append(hexdigest)
        else:
            if len(entry) < 16:
                raise ValueError(f"entry {position} is shorter than 16 characters")
            digests.append(token_digest(entry))
    return tuple(digests)


_token_digests.expected = (  # type: ignore[attr-defined]
    "comma-separated tokens of at least 16 characters or sha256:<64 hex digits>"
)


def _secret(raw: str) -> Secret:
    return Secret(raw.strip())


_secret.expected = "a string"  # type: ignore[attr-defined]


def _networks(raw: str) -> tuple[str, ...]:
    import ipaddress

    return tuple(str(ipaddress.ip_network(part.strip(), strict=False)) for part in raw.split(",") if part.strip())


_networks.expected = "a comma-separated list of networks like 10.0.0.0/8,127.0.0.1"  # type: ignore[attr-defined]


def _trusted_proxies(raw: str) -> tuple[str, ...]:
    import ipaddress

    networks = []
    for part in (p.strip() for p in raw.split(",")):
        if not part:
            continue
        network = ipaddress.ip_network(part, strict=False)  # "*" and names raise ValueError
        if network.prefixlen == 0:  # 0.0.0.0/0 or ::/0 is "*" by another name
            raise ValueError
        networks.append(str(network))
    return tuple(networks)


_trusted_proxies.expected = (  # type: ignore[attr-defined]
    "a comma-separated list of proxy addresses or networks like 10.0.0.5,172.16.0.0/12 (never *)"
)


def _text(raw: str) -> str:
    return raw.strip()


_text.expected = "a string"  # type: ignore[attr-defined]


# --- integration API (issue 17) parsers -----------------------------------------------------

def _jwt_secret(raw: str) -> Secret:
    value = raw.strip()
    if value and len(value.encode("utf-8")) < 32:
        raise ValueError(_jwt_secret.expected)  # type: ignore[attr-defined]
    return Secret(value)


_jwt_secret.expected = "empty, or a secret of at least 32 bytes (HS256 needs a key as long as its hash)"  # type: ignore[attr-defined]


def _file_path(raw: str) -> str:
    value = raw.strip()
    if value and not os.path.isfile(value):
        raise ValueError(_file_path.expected)  # type: ignore[attr-defined]
    return value


_file_path.expected = "empty, or the path of an existing file"  # type: ignore[attr-defined]


def _cron(raw: str) -> str:
    spec = " ".join(raw.split())
    parts = spec.split(" ")
    if len(parts) != 5 and not spec.startswith("@"):
        raise ValueError
    return spec


_cron.expected = "a five-field cron expression like '*/15 * * * *'"  # type: ignore[attr-defined]


# --- parsers of the notifications settings ---

def _smtp_url(raw: str) -> Secret:
    url = raw.strip()
    if url:
        parsed = urlparse(url)
        if parsed.scheme not in ("smtp", "smtps") or not parsed.hostname:
            raise ValueError
        parsed.port  # noqa: B018 (raises ValueError on a bad port)
    return Secret(url)


_smtp_url.expected = "an smtp://user:pass@host:587 or smtps://host:465 URL, or empty"  # type: ignore[attr-defined]


def _fernet_keys(raw: str) -> Secret:
    keys = [part.strip() for part in raw.split(",") if part.strip()]
    if keys:
        from cryptography.fernet import Fernet

        for key in keys:
            Fernet(key.encode("ascii"))  # raises ValueError when not 32 url-safe base64-encoded bytes
    return Secret(",".join(keys))


_fernet_keys.expected = (  # type: ignore[attr-defined]
    "comma-separated Fernet keys (newest first), e.g. from `trackcache contact-key`"
)


def _statuses(raw: str) -> tuple[str, ...]:
    from pipeline.status import STATUSES

    names = tuple(part.strip() for part in raw.split(",") if part.strip())
    if any(name not in STATUSES for name in names):
        raise ValueError
    return names


_statuses.expected = (  # type: ignore[attr-defined]
    "comma-separated canonical statuses (pending, info_received, in_transit, out_for_delivery, failed_attempt, "
    "available_for_pickup, delivered, exception, returned, cancelled, expired)"
)


def _locale(raw: str) -> str:
    import re

    value = raw.strip()
    if not re.fullmatch(r"[a-z]{2,3}(_[A-Z]{2})?", value):
        raise ValueError
    return value


_locale.expected = "a language code with an email catalog, like en or ms"  # type: ignore[attr-defined]


def _setting(env: str, parse: Callable[[str], T], default: str | None, doc: str, *, secret: bool = False) -> T:
    """Declare one setting; the dataclass field's metadata carries everything `load` needs."""
    return field(metadata={"env": env, "parse": parse, "default": default, "doc": doc, "secret": secret})  # type: ignore[return-value]


@dataclass(frozen=True)
class Settings:
    """Every setting of the service; build one with `load()`, never by hand outside tests."""

    # Scheduling (minutes), from the seed plan.
    pre_shipment_freq: int = _setting("TRACKING_PRE_SHIPMENT_FREQ", _positive_int, "1440",
                                      "Minutes between polls before the parcel is collected.")
    in_transit_freq: int = _setting("TRACKING_IN_TRANSIT_FREQ", _positive_int, "120",
                                    "Minutes between polls while in transit.")
    out_for_delivery_freq: int = _setting("TRACKING_OUT_FOR_DELIVERY_FREQ", _positive_int, "30",
                                          "Minutes between polls while out for delivery.")
    exception_freq: int = _setting("TRACKING_EXCEPTION_FREQ", _positive_int, "60",
                                   "Minutes between polls while in an exception state.")
    delivery_day_max_freq: int = _setting("TRACKING_DELIVERY_DAY_FREQ", _positive_int, "30",
                                          "Longest interval (minutes) on the estimated delivery day.")
    weekend_factor: float = _setting("TRACKING_WEEKEND_FACTOR", _positive_float, "1.5",
                                     "Interval multiplier on weekends and holidays.")
    holidays: frozenset[date] = _setting("TRACKING_HOLIDAYS", _dates, "",
                                         "Extra non-working days (YYYY-MM-DD, comma-separated).")
    jitter_percent: int = _setting("TRACKING_JITTER_PERCENT", _percent, "10",
                                   "Random spread added to each interval, in percent.")
    expire_after_days: int = _setting("TRACKING_EXPIRE_AFTER_DAYS", _positive_int, "30",
                                      "Days without a new event after which a shipment is expired.")
    poll_sweep_cron: str = _setting("TRACKING_POLL_SWEEP_CRON", _cron, "* * * * *",
                                    "When the polling sweep claims due shipments (cron; Sunday is 7).")
    maintenance_cron: str = _setting("TRACKING_MAINTENANCE_CRON", _cron, "*/5 * * * *",
                                     "When the maintenance sweep re-enqueues lost work and expires stale shipments.")
    usage_report_cron: str = _setting("TRACKING_USAGE_REPORT_CRON", _cron, "5 0 * * *",
                                      "When the daily API usage summary is stored (UTC).")
    # Job processing.
    job_batch_size: int = _setting("TRACKING_JOB_BATCH_SIZE", _positive_int, "10",
                                   "Tracking numbers per courier call (capped by the courier's limit).")
    max_concurrent: int = _setting("TRACKING_MAX_CONCURRENT", _positive_int, "3",
                                   "Courier calls in flight at once, across all workers.")
    max_failures: int = _setting("TRACKING_MAX_FAILURES", _positive_int, "5",
                                 "Consecutive failures before a shipment is flagged requires_attention.")
    retry_delays: tuple[int, ...] = _setting("TRACKING_RETRY_DELAYS", _delays, "60,300,900",
                                             "Seconds before each retry of a failed courier call.")
    claim_lease_seconds: int = _setting("TRACKING_CLAIM_LEASE", _positive_int, "900",
                                        "Seconds a sweep's claim on a shipment lasts before it is released.")
    # Courier API management.
    api_timeout_ms: int = _setting("TRACKING_API_TIMEOUT", _positive_int, "10000",
                                   "Courier HTTP timeout in milliseconds.")
    rate_buffer_percent: int = _setting("TRACKING_RATE_BUFFER", _percent, "5",
                                        "Percent of the daily budget reserved for manual refreshes.")
    daily_budget: int = _setting("TRACKING_DAILY_BUDGET", _positive_int, "1000",
                                 "Courier API calls allowed per day (UTC), across all workers.")
    worker_metrics_port: int = _setting("TRACKING_WORKER_METRICS_PORT", _non_negative_int, "0",
                                        "Port of each trackcache worker's Prometheus exporter (Dramatiq's figures and "
                                        "the pipeline counters, at /metrics on every interface); 0 = off.")
    # Cache management.
    cache_ttl_hours: int = _setting("TRACKING_CACHE_TTL", _positive_int, "24",
                                    "Hours after which a customer read triggers a background refresh.")
    cleanup_interval: int = _setting("TRACKING_CLEANUP_INTERVAL", _positive_int, "3600",
                                     "Seconds between cleanup runs.")
    max_events: int = _setting("TRACKING_MAX_EVENTS", _positive_int, "50",
                               "Events kept per shipment (newest first).")
    retention_days: int = _setting("TRACKING_RETENTION_DAYS", _positive_int, "90",
                                   "Days to keep finished shipments active, logs, ledger rows and inbox rows.")
    # Diagnostics.
    enable_debug: bool = _setting("TRACKING_ENABLE_DEBUG", _boolean, "false",
                                  "Verbose diagnostics: debug-level logs in every process, SQL statements "
                                  "included (overrides TRACKING_LOG_LEVEL; never enable in production).")
    log_level: str = _setting("TRACKING_LOG_LEVEL", _log_level, "info", "Log level.")
    # Test couriers: the scripted courier `fake` exists only where this says so.
    enable_test_couriers: bool = _setting("TRACKING_ENABLE_TEST_COURIERS", _boolean, "false",
                                          "Accept the test courier 'fake' (registrations, webhooks): tests and "
                                          "trackcache dev only, never in production.")
    # Storage and broker.
    database_url: str = _setting("DATABASE_URL", _database_url, DEFAULT_DATABASE_URL,
                                 "Database; SQLite file (embedded) or PostgreSQL (production).")
    redis_url: str = _setting("REDIS_URL", _redis_url, "",
                              "Redis for broker, rate limits and read cache; empty = embedded broker.")
    redis_namespace: str = _setting("TRACKING_REDIS_NAMESPACE", _namespace, "trackcache",
                                    "Prefix of every Redis key (queues included), so deployments can share a Redis.")
    # Durable broker (issue 11).
    broker_url: str = _setting("TRACKING_BROKER_URL", _broker_url, "",
                               "Broker for the pipeline's messages: amqp://... for RabbitMQ (durable queues); "
                               "empty = REDIS_URL. Redis is still needed for caches, rate limits and "
                               "coordination.")
    # Access control and secrets.
    admin_tokens: tuple[str, ...] = _setting("TRACKING_ADMIN_TOKENS", _token_digests, "",
                                             "Admin bearer tokens (comma-separated; sha256:<hex> allowed).", secret=True)
    viewer_tokens: tuple[str, ...] = _setting("TRACKING_VIEWER_TOKENS", _token_digests, "",
                                              "Read-only admin tokens (same format).", secret=True)
    internal_api_key: Secret = _setting("TRACKING_INTERNAL_API_KEY", _secret, "",
                                        "Key for /api/internal/* (X-Internal-Key header).", secret=True)
    internal_networks: tuple[str, ...] = _setting("TRACKING_INTERNAL_NETWORKS", _networks, "",
                                                  "If set, /api/internal/* only answers these networks.")
    customer_token_secret: Secret = _setting("TRACKING_CUSTOMER_TOKEN_SECRET", _secret, "",
                                             "Secret the shop signs customer tokens with.", secret=True)
    webhook_secret: Secret = _setting("TRACKING_WEBHOOK_SECRET", _secret, "",
                                      "Secret path segment of the courier webhook URL.", secret=True)
    email_hash_key: Secret = _setting("TRACKING_EMAIL_HASH_KEY", _secret, "",
                                      "Key for the keyed hash of customer emails stored at rest.", secret=True)
    guest_rate_limit: int = _setting("TRACKING_GUEST_RATE_LIMIT", _positive_int, "10",
                                     "Guest tracking lookups per hour per client.")
    customer_rate_limit: int = _setting("TRACKING_CUSTOMER_RATE_LIMIT", _positive_int, "120",
                                        "Signed-in customer lookups per hour per customer.")
    webhook_max_bytes: int = _setting("TRACKING_WEBHOOK_MAX_BYTES", _positive_int, "262144",
                                      "Largest webhook body accepted (bytes).")
    shop_timezone: str = _setting("TRACKING_SHOP_TIMEZONE", _timezone, "Asia/Kuala_Lumpur",
                                  "Time zone the tracking page shows times in.")
    # Trusted proxies (issue 18: forwarded client addresses).
    trusted_proxies: tuple[str, ...] = _setting(
        "TRACKING_TRUSTED_PROXIES", _trusted_proxies, "",
        "Reverse proxies whose X-Forwarded-For/-Proto headers are believed (addresses or networks); empty = "
        "none, the connecting address is the client. Drives uvicorn's forwarded_allow_ips for `serve` and `dev`; "
        "uvicorn's own FORWARDED_ALLOW_IPS is not used.")
    # HTTP API: customer reads.
    read_cache_seconds: int = _setting("TRACKING_READ_CACHE_SECONDS", _positive_int, "300",
                                       "Seconds a customer read stays in the read cache (updates invalidate it sooner).")
    hot_documents: int = _setting("TRACKING_HOT_DOCUMENTS", _positive_int, "10000",
                                  "Order documents each web process keeps in memory in front of the read cache "
                                  "(per audience; invalidated by persist within a second).")
    hot_documents_mb: int = _setting("TRACKING_HOT_DOCUMENTS_MB", _positive_int, "64",
                                     "Memory bound (MiB) of each web process's hot order documents.")
    hot_document_seconds: int = _setting("TRACKING_HOT_DOCUMENT_SECONDS", _positive_int, "30",
                                         "Longest a hot order document is served from a web process's memory "
                                         "(invalidation usually drops it sooner).")
    customer_max_age: int = _setting("TRACKING_CUSTOMER_MAX_AGE", _non_negative_int, "60",
                                     "Cache-Control max-age (seconds) of customer tracking responses.")
    guest_history: int = _setting("TRACKING_GUEST_HISTORY", _positive_int, "10",
                                  "Newest events shown to guests (signed-in customers see all stored events).")
    failed_lookup_cost: int = _setting("TRACKING_FAILED_LOOKUP_COST", _positive_int, "3",
                                       "Rate-limit units a lookup that finds nothing costs (a found one costs 1).")
    stale_refresh_interval: int = _setting("TRACKING_STALE_REFRESH_INTERVAL", _positive_int, "900",
                                           "Seconds between background refreshes that reads of stale data may "
                                           "trigger for one shipment.")
    premium_refresh_interval: int = _setting("TRACKING_PREMIUM_REFRESH_INTERVAL", _positive_int, "300",
                                             "Seconds between refreshes a premium customer may request for one "
                                             "shipment.")
    # HTTP API: alert thresholds (GET /api/admin/tracking/alerts; deploy/prometheus/alerts.yml).
    alert_pending_jobs: int = _setting("TRACKING_ALERT_PENDING_JOBS", _positive_int, "100",
                                       "Critical alert above this many pending ledger jobs.")
    alert_failure_rate: int = _setting("TRACKING_ALERT_FAILURE_RATE", _percent, "10",
                                       "Critical alert above this courier call failure rate (percent, last hour).")
    alert_read_p95_ms: int = _setting("TRACKING_ALERT_READ_P95_MS", _positive_int, "1000",
                                      "Critical alert when the p95 of customer reads is slower (milliseconds).")
    alert_budget_percent: int = _setting("TRACKING_ALERT_BUDGET_PERCENT", _percent, "90",
                                         "Warning when this percentage of today's courier API budget is spent.")
    alert_job_delay_minutes: int = _setting("TRACKING_ALERT_JOB_DELAY_MINUTES", _positive_int, "15",
                                            "Warning when the oldest due pending job has waited longer (minutes).")
    alert_error_spike: int = _setting("TRACKING_ALERT_ERROR_SPIKE", _positive_int, "50",
                                      "Warning above this many 5xx and 429 answers in five minutes.")
    alert_failed_inbox: int = _setting("TRACKING_ALERT_FAILED_INBOX", _positive_int, "10",
                                       "Warning above this many webhooks failed or rejected in the last hour.")
    alert_cache_miss_percent: int = _setting("TRACKING_ALERT_CACHE_MISS_PERCENT", _percent, "50",
                                             "Warning above this read-cache miss rate (percent, last ten minutes).")
    # Integration API (issue 17): standard customer tokens (JWT) and idempotency keys.
    customer_jwt_secret: Secret = _setting("TRACKING_CUSTOMER_JWT_SECRET", _jwt_secret, "",
                                           "Shared secret of HS256 customer JWTs (at least 32 bytes); empty = "
                                           "HS256 JWTs are refused.", secret=True)
    customer_jwks_file: str = _setting("TRACKING_CUSTOMER_JWKS_FILE", _file_path, "",
                                       "JWKS file with the public keys of RS256/ES256 customer JWTs (read again "
                                       "when it changes); empty = RS256/ES256 JWTs are refused.")
    customer_jwt_audience: str = _setting("TRACKING_CUSTOMER_JWT_AUDIENCE", _text, "",
                                          "If set, customer JWTs must carry this `aud`.")
    customer_jwt_issuer: str = _setting("TRACKING_CUSTOMER_JWT_ISSUER", _text, "",
                                        "If set, customer JWTs must carry this `iss`.")
    customer_jwt_leeway: int = _setting("TRACKING_CUSTOMER_JWT_LEEWAY", _non_negative_int, "30",
                                        "Seconds of clock skew allowed on a customer JWT's `exp`, `nbf` and `iat`.")
    idempotency_hours: int = _setting("TRACKING_IDEMPOTENCY_HOURS", _positive_int, "24",
                                      "Hours an admin POST's Idempotency-Key and its first answer are kept.")
    # Pages: the tracking page (/track) and the admin dashboard (/admin).
    session_secret: Secret = _setting("TRACKING_SESSION_SECRET", _secret, "",
                                      "Key that signs dashboard session cookies and tracking-page links; empty = "
                                      "derived from TRACKING_EMAIL_HASH_KEY and TRACKING_CUSTOMER_TOKEN_SECRET.",
                                      secret=True)
    admin_session_hours: int = _setting("TRACKING_ADMIN_SESSION_HOURS", _positive_int, "12",
                                        "Hours a dashboard sign-in lasts.")
    track_link_hours: int = _setting("TRACKING_TRACK_LINK_HOURS", _positive_int, "24",
                                     "Hours the tracking-page link given after a guest lookup stays valid.")
    page_refresh_seconds: int = _setting("TRACKING_PAGE_REFRESH_SECONDS", _positive_int, "30",
                                         "Seconds between the open tracking page's checks for updates.")
    # Notifications: signed webhooks to the shop and emails to customers (pipeline/outbox.py).
    public_url: str = _setting("TRACKING_PUBLIC_URL", _http_url, "",
                               "This service's address as customers reach it (links in emails), e.g. "
                               "https://track.example.com.")
    notify_retry_delays: tuple[int, ...] = _setting("TRACKING_NOTIFY_RETRY_DELAYS", _delays,
                                                    "5,300,1800,7200,18000,36000,36000",
                                                    "Seconds before each retry of a failed webhook or email delivery.")
    notify_timeout: float = _setting("TRACKING_NOTIFY_TIMEOUT", _positive_float, "5",
                                     "Seconds a webhook or SMTP delivery may take before it counts as failed.")
    notify_allow_http: bool = _setting("TRACKING_NOTIFY_ALLOW_HTTP", _boolean, "false",
                                       "Allow http:// webhook endpoints (dev and tests; production wants https).")
    notify_disable_after_days: int = _setting("TRACKING_NOTIFY_DISABLE_AFTER_DAYS", _positive_int, "5",
                                              "Days of failing deliveries after which an endpoint is disabled.")
    notify_sweep_cron: str = _setting("TRACKING_NOTIFY_SWEEP_CRON", _cron, "* * * * *",
                                      "When the notification sweep re-enqueues deliveries the broker lost.")
    contact_keys: Secret = _setting("TRACKING_CONTACT_KEYS", _fernet_keys, "",
                                    "Fernet keys that encrypt customer email addresses at rest, newest first "
                                    "(older ones still decrypt).", secret=True)
    smtp_url: Secret = _setting("TRACKING_SMTP_URL", _smtp_url, "",
                                "SMTP server for customer emails (smtp:// uses STARTTLS when offered, smtps:// "
                                "TLS); empty = no emails.", secret=True)
    email_from: str = _setting("TRACKING_EMAIL_FROM", _text, "",
                               "From address of customer emails, e.g. 'Shop <track@shop.example>'.")
    email_statuses: tuple[str, ...] = _setting("TRACKING_EMAIL_STATUSES", _statuses,
                                               "in_transit,out_for_delivery,delivered,exception",
                                               "Statuses whose arrival sends the customer an email.")
    email_all_shipments: bool = _setting("TRACKING_EMAIL_ALL_SHIPMENTS", _boolean, "false",
                                         "Email every customer, not only shipments registered with notify_email.")
    email_default_locale: str = _setting("TRACKING_EMAIL_LOCALE", _locale, "en",
                                         "Language of emails when the registration names none (en, ms, or any with a catalog).")
    email_template_dir: str = _setting("TRACKING_EMAIL_TEMPLATE_DIR", _text, "",
                                       "Folder of the shop's own email templates (override ours by name).")
    # Delivery estimates and delays (issue 16).
    estimate_min_samples: int = _setting("TRACKING_ESTIMATE_MIN_SAMPLES", _positive_int, "20",
                                         "Fewest finished journeys a level of the estimate hierarchy (route, courier "
                                         "+ destination, courier + origin, courier, all) must hold to answer.")
    estimate_low_percentile: int = _setting("TRACKING_ESTIMATE_LOW_PERCENTILE", _percent, "10",
                                            "Percentile of similar journeys that starts the estimated range.")
    estimate_high_percentile: int = _setting("TRACKING_ESTIMATE_HIGH_PERCENTILE", _percent, "90",
                                             "Percentile of similar journeys that ends the estimated range.")
    delay_percentile: int = _setting("TRACKING_DELAY_PERCENTILE", _percent, "95",
                                     "A shipment longer in its milestone than this percentile of similar journeys "
                                     "is flagged delayed.")
    estimate_history_days: int = _setting("TRACKING_ESTIMATE_HISTORY_DAYS", _positive_int, "180",
                                          "Days of finished journeys the estimates learn from.")
    estimates_cron: str = _setting("TRACKING_ESTIMATES_CRON", _cron, "*/15 * * * *",
                                   "When the estimates job rebuilds the statistics, refreshes every active "
                                   "shipment's estimate and flags delays.")
    alert_delayed_shipments: int = _setting("TRACKING_ALERT_DELAYED_SHIPMENTS", _positive_int, "25",
                                            "Warning above this many active shipments flagged delayed.")
    # Courier: EasyParcel.
    easyparcel_api: str = _setting("EASYPARCEL_API", _api_kind, "open", "Which EasyParcel API: open or legacy.")
    easyparcel_base_url: str = _setting("EASYPARCEL_BASE_URL", _http_url, "",
                                        "EasyParcel host (default: the live host of the chosen API).")
    easyparcel_api_version: str = _setting("EASYPARCEL_API_VERSION", _api_version, "2026-06",
                                           "Open API version in the URL path.")
    easyparcel_client_id: str = _setting("EASYPARCEL_CLIENT_ID", _text, "", "Open API OAuth client id.")
    easyparcel_client_secret: Secret = _setting("EASYPARCEL_CLIENT_SECRET", _secret, "",
                                                "Open API OAuth client secret.", secret=True)
    easyparcel_api_key: Secret = _setting("EASYPARCEL_API_KEY", _secret, "",
                                          "Legacy connect API key.", secret=True)
    easyparcel_timezone: str = _setting("EASYPARCEL_TIMEZONE", _timezone, "Asia/Kuala_Lumpur",
                                        "Zone of the courier's naive timestamps.")
    # Webhook ingestion (issue 13): group commit in the receiver, inbox batches through the pipeline.
    webhook_group_window_ms: int = _setting("TRACKING_WEBHOOK_GROUP_WINDOW_MS", _non_negative_int, "2",
                                            "Milliseconds the receiver waits for more webhooks to share one "
                                            "transaction (0: commit whatever has arrived at once).")
    webhook_group_max: int = _setting("TRACKING_WEBHOOK_GROUP_MAX", _positive_int, "500",
                                      "Most webhooks one group commit of the receiver stores.")
    inbox_batch_size: int = _setting("TRACKING_INBOX_BATCH_SIZE", _positive_int, "300",
                                     "Most inbox rows one drain claims and persists as one batch.")
    inbox_drains_per_process: int = _setting("TRACKING_INBOX_DRAINS_PER_PROCESS", _positive_int, "1",
                                             "Inbox drains a worker process runs at once (the webhook queue's "
                                             "prefetch with the Redis and RabbitMQ brokers); its other threads "
                                             "stay free for polls, manual refreshes and notifications.")
    inbox_nudge_ms: int = _setting("TRACKING_INBOX_NUDGE_MS", _non_negative_int, "50",
                                   "Milliseconds between the drain messages a web process sends after its "
                                   "group commits (the last commit of a burst is always followed by one).")
    inbox_lease_seconds: int = _setting("TRACKING_INBOX_LEASE", _positive_int, "60",
                                        "Seconds a drain's claim on inbox rows lasts; a worker killed mid-batch "
                                        "leaves its rows to the next drain after this.")
    inbox_max_claims: int = _setting("TRACKING_INBOX_MAX_CLAIMS", _positive_int, "5",
                                     "Claims of an inbox row that each ended without a result (its worker died) "
                                     "before the row is marked failed; `trackcache inbox replay` retries it.")

    @property
    def is_embedded(self) -> bool:
        """True when no Redis is configured: in-process broker, worker and caches."""
        return not self.redis_url

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def cleanup_cron(self) -> str:
        """TRACKING_CLEANUP_INTERVAL as a cron spec: every N minutes below an hour, else every N
        hours (rounded), at most daily."""
        minutes = max(1, round(self.cleanup_interval / 60))
        if minutes < 60:
            return f"*/{minutes} * * * *"
        hours = round(minutes / 60)
        return "0 0 * * *" if hours >= 24 else f"0 */{hours} * * *"

    @property
    def effective_log_level(self) -> str:
        """The log level processes use: debug when TRACKING_ENABLE_DEBUG is on, else TRACKING_LOG_LEVEL."""
        return "debug" if self.enable_debug else self.log_level

    @property
    def api_timeout_seconds(self) -> float:
        return self.api_timeout_ms / 1000.0

    @property
    def courier_base_url(self) -> str:
        """The EasyParcel host to call: the configured one, else the live host of the chosen API."""
        if self.easyparcel_base_url:
            return self.easyparcel_base_url
        return OPEN_API_BASE_URL if self.easyparcel_api == "open" else LEGACY_API_BASE_URL

    def production_problems(self, *, worker_processes: int = 1) -> list[str]:
        """What makes these settings unsafe to run in production (empty when safe)."""
        problems = []
        if not self.admin_tokens:
            problems.append("TRACKING_ADMIN_TOKENS is empty: nobody could use the admin API")
        if len(self.internal_api_key.reveal()) < 16:
            problems.append("TRACKING_INTERNAL_API_KEY must be set to at least 16 characters")
        if len(self.webhook_secret.reveal()) < 16:
            problems.append("TRACKING_WEBHOOK_SECRET must be set to at least 16 characters")
        if len(self.customer_token_secret.reveal()) < 16:
            problems.append("TRACKING_CUSTOMER_TOKEN_SECRET must be set to at least 16 characters")
        if len(self.email_hash_key.reveal()) < 16:
            problems.append("TRACKING_EMAIL_HASH_KEY must be set to at least 16 characters")
        if self.is_sqlite and worker_processes > 1:
            problems.append("SQLite cannot be shared by several worker processes: set DATABASE_URL to PostgreSQL")
        if self.enable_debug:
            problems.append("TRACKING_ENABLE_DEBUG is on")
        if self.enable_test_couriers:
            problems.append("TRACKING_ENABLE_TEST_COURIERS is on: the test courier 'fake' would be accepted")
        if self.smtp_url and not self.contact_keys:
            problems.append("TRACKING_SMTP_URL is set but TRACKING_CONTACT_KEYS is empty: addresses cannot be stored")
        if self.smtp_url and not (self.email_from and self.public_url):
            problems.append("TRACKING_SMTP_URL is set: TRACKING_EMAIL_FROM and TRACKING_PUBLIC_URL are needed too")
        if self.broker_url and not self.redis_url:
            problems.append("TRACKING_BROKER_URL needs REDIS_URL too (read cache, rate limits and coordination "
                            "stay in Redis)")
        return problems

    @property
    def uses_rabbitmq(self) -> bool:
        """True when the pipeline's messages travel through RabbitMQ (TRACKING_BROKER_URL=amqp://...)."""
        return self.broker_url.startswith(("amqp://", "amqps://"))

    def production_warnings(self) -> list[str]:
        """What a production operator should know but may have handled elsewhere (a network fence,
        a proxy): `settings --check` prints these; processes still start."""
        warnings = []
        if not self.internal_networks:
            warnings.append("TRACKING_INTERNAL_NETWORKS is empty: /metrics answers every client address (internal "
                            "routes still need their key); list your monitoring networks, or fence /metrics off")
        return warnings


def describe() -> list[dict[str, str]]:
    """The settings table for the README and `trackcache settings`: variable, default, meaning."""
    rows = []
    for spec in fields(Settings):
        meta = spec.metadata
        rows.append({
            "variable": meta["env"],
            "default": "(unset)" if not meta["default"] else meta["default"],
            "expected": meta["parse"].expected,
            "doc": meta["doc"],
        })
    return rows


def load(environ: Mapping[str, str] | None = None, *, dotenv_path: str | None = ".env") -> Settings:
    """Build validated settings from an environment (default: `os.environ` plus a `.env` file).

    Raises:
        SettingsError: a variable holds a value that cannot be used; the message names it.
    """
    if environ is None:
        merged: dict[str, str] = {}
        if dotenv_path and os.path.exists(dotenv_path):
            from dotenv import dotenv_values

            merged.update({k: v for k, v in dotenv_values(dotenv_path).items() if v is not None})
        merged.update(os.environ)  # the real environment wins over .env, as in python-dotenv
        environ = merged
    values = {}
    for spec in fields(Settings):
        meta = spec.metadata
        raw = environ.get(meta["env"])
        if raw is None:
            raw = meta["default"]
        parse = meta["parse"]
        try:
            values[spec.name] = parse(raw)
        except (ValueError, TypeError) as error:
            # A secret's value is never shown; its parser may say which part is wrong instead.
            shown = "<hidden>" + (f" ({error})" if str(error) else "") if meta["secret"] else repr(raw)
            raise SettingsError(f"{meta['env']} must be {parse.expected}, got {shown}") from None
    return Settings(**values)


_current: Settings | None = None


def get() -> Settings:
    """The process's settings, loaded and validated on first use.

    Raises:
        SettingsError: see `load`.
    """
    global _current
    if _current is None:
        _current = load()
    return _current


def use(settings: Settings | None) -> None:
    """Replace the process's settings (boot code and tests); None reloads from the environment."""
    global _current
    _current = settings
