"""Settings: the seed's defaults, one-line errors naming the variable, secrets kept hidden."""
from __future__ import annotations

from datetime import date

import pytest

import settings


def test_defaults_match_the_seed_plan():
    config = settings.load({}, dotenv_path=None)
    assert config.pre_shipment_freq == 1440
    assert config.in_transit_freq == 120
    assert config.out_for_delivery_freq == 30
    assert config.exception_freq == 60
    assert config.job_batch_size == 10
    assert config.max_concurrent == 3
    assert config.max_failures == 5
    assert config.api_timeout_ms == 10000
    assert config.rate_buffer_percent == 5
    assert config.daily_budget == 1000
    assert config.cache_ttl_hours == 24
    assert config.cleanup_interval == 3600
    assert config.max_events == 50
    assert config.retry_delays == (60, 300, 900)
    assert config.enable_debug is False
    assert config.log_level == "info"
    assert config.guest_rate_limit == 10
    assert config.customer_rate_limit == 120
    assert config.easyparcel_timezone == "Asia/Kuala_Lumpur"
    assert config.easyparcel_api == "open"


def test_default_database_is_an_sqlite_file_in_the_working_directory_and_broker_is_embedded():
    config = settings.load({}, dotenv_path=None)
    assert config.database_url == "sqlite:///trackcache.db"
    assert config.is_sqlite and config.is_embedded


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("TRACKING_JOB_BATCH_SIZE", "abc", "TRACKING_JOB_BATCH_SIZE must be a positive integer, got 'abc'"),
        ("TRACKING_JOB_BATCH_SIZE", "0", "TRACKING_JOB_BATCH_SIZE must be a positive integer, got '0'"),
        ("TRACKING_RATE_BUFFER", "150", "TRACKING_RATE_BUFFER must be an integer percentage from 0 to 100, got '150'"),
        ("TRACKING_ENABLE_DEBUG", "maybe", "TRACKING_ENABLE_DEBUG must be true or false, got 'maybe'"),
        ("TRACKING_LOG_LEVEL", "loud", "TRACKING_LOG_LEVEL must be one of debug, info, warning, error, critical, got 'loud'"),
        ("TRACKING_RETRY_DELAYS", "60,x", "TRACKING_RETRY_DELAYS must be a comma-separated list of positive seconds, like 60,300,900, got '60,x'"),
        ("DATABASE_URL", "mysql://x/y", "DATABASE_URL must be a sqlite:///path or postgresql://user@host/db URL, got 'mysql://x/y'"),
        ("REDIS_URL", "http://x", "REDIS_URL must be a redis://host:port/db URL, or empty for the embedded broker, got 'http://x'"),
        ("EASYPARCEL_API", "new", "EASYPARCEL_API must be open or legacy, got 'new'"),
        ("EASYPARCEL_TIMEZONE", "Mars/Base", "EASYPARCEL_TIMEZONE must be an IANA time zone name like Asia/Kuala_Lumpur, got 'Mars/Base'"),
        ("TRACKING_HOLIDAYS", "2026-13-01", "TRACKING_HOLIDAYS must be a comma-separated list of YYYY-MM-DD dates, got '2026-13-01'"),
    ],
)
def test_a_bad_value_gives_one_line_naming_variable_value_and_expectation(variable, value, message):
    with pytest.raises(settings.SettingsError) as caught:
        settings.load({variable: value}, dotenv_path=None)
    assert str(caught.value) == message
    assert "\n" not in str(caught.value)


def test_a_bad_token_list_does_not_echo_the_tokens():
    with pytest.raises(settings.SettingsError) as caught:
        settings.load({"TRACKING_ADMIN_TOKENS": "short"}, dotenv_path=None)
    assert str(caught.value).startswith("TRACKING_ADMIN_TOKENS must be comma-separated tokens")


def test_dotenv_file_is_honoured_and_the_environment_wins(tmp_path, monkeypatch):
    dotenv = tmp_path / ".env"
    dotenv.write_text("TRACKING_JOB_BATCH_SIZE=25\nTRACKING_MAX_EVENTS=7\n")
    monkeypatch.setenv("TRACKING_MAX_EVENTS", "9")
    config = settings.load(dotenv_path=str(dotenv))
    assert config.job_batch_size == 25
    assert config.max_events == 9


def test_secrets_never_show_in_repr():
    config = settings.load({"TRACKING_WEBHOOK_SECRET": "super-secret-value-123"}, dotenv_path=None)
    assert "super-secret-value-123" not in repr(config)
    assert config.webhook_secret.reveal() == "super-secret-value-123"


def test_tokens_may_be_configured_plain_or_as_sha256_digests():
    digest = settings.token_digest("another-admin-token-xyz")
    config = settings.load(
        {"TRACKING_ADMIN_TOKENS": f"first-admin-token-abcdef, sha256:{digest.upper()}"}, dotenv_path=None
    )
    assert config.admin_tokens == (settings.token_digest("first-admin-token-abcdef"), digest)


def test_holidays_parse_to_dates():
    config = settings.load({"TRACKING_HOLIDAYS": "2026-08-31, 2026-09-16"}, dotenv_path=None)
    assert config.holidays == frozenset({date(2026, 8, 31), date(2026, 9, 16)})


def test_default_secrets_are_unsafe_for_production():
    problems = settings.load({}, dotenv_path=None).production_problems()
    joined = " ".join(problems)
    for variable in ("TRACKING_ADMIN_TOKENS", "TRACKING_INTERNAL_API_KEY", "TRACKING_WEBHOOK_SECRET",
                     "TRACKING_CUSTOMER_TOKEN_SECRET", "TRACKING_EMAIL_HASH_KEY"):
        assert variable in joined


def test_sqlite_with_several_worker_processes_is_unsafe():
    config = settings.load({
        "TRACKING_ADMIN_TOKENS": "a-long-enough-admin-token",
        "TRACKING_INTERNAL_API_KEY": "k" * 20, "TRACKING_WEBHOOK_SECRET": "w" * 20,
        "TRACKING_CUSTOMER_TOKEN_SECRET": "c" * 20, "TRACKING_EMAIL_HASH_KEY": "e" * 20,
    }, dotenv_path=None)
    assert config.production_problems(worker_processes=1) == []
    assert any("SQLite" in p for p in config.production_problems(worker_processes=2))


def test_every_setting_is_described_for_the_readme():
    rows = settings.describe()
    variables = {row["variable"] for row in rows}
    assert {"TRACKING_JOB_BATCH_SIZE", "DATABASE_URL", "REDIS_URL", "EASYPARCEL_BASE_URL"} <= variables
    assert all(row["doc"] for row in rows)


def test_courier_base_url_defaults_to_the_live_host_of_the_chosen_api():
    assert settings.load({}, dotenv_path=None).courier_base_url == "https://api.easyparcel.com"
    legacy = settings.load({"EASYPARCEL_API": "legacy"}, dotenv_path=None)
    assert legacy.courier_base_url == "https://connect.easyparcel.my"
    custom = settings.load({"EASYPARCEL_BASE_URL": "http://127.0.0.1:8100/"}, dotenv_path=None)
    assert custom.courier_base_url == "http://127.0.0.1:8100"
