"""Finding the test services. Locally a missing service skips its tests with a reason naming
it; under CI=true the same absence fails them, so CI can never pass by skipping."""
from __future__ import annotations

import os
import socket
from urllib.parse import urlparse

import pytest

DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS = "redis://127.0.0.1:6379/9"


def postgres_admin_url() -> str:
    """A PostgreSQL URL with rights to create databases (TEST_POSTGRES_URL overrides)."""
    return os.environ.get("TEST_POSTGRES_URL", DEFAULT_POSTGRES)


def redis_test_url() -> str:
    """The Redis database the tests may flush (TEST_REDIS_URL overrides)."""
    return os.environ.get("TEST_REDIS_URL", DEFAULT_REDIS)


def is_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def is_reachable(url: str) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 0), timeout=2):
            return True
    except OSError:
        return False


def require_service(name: str, url: str) -> None:
    """Skip (locally) or fail (CI=true) the calling test when a service is not reachable."""
    if is_reachable(url):
        return
    parsed = urlparse(url)
    reason = f"{name} is not reachable at {parsed.hostname}:{parsed.port}"
    if is_ci():
        pytest.fail(f"{reason} (CI=true: service tests must not skip)", pytrace=False)
    pytest.skip(reason)


def recreate_database(name: str, *, migrate: bool = False) -> str:
    """Drop and create a test database on the local PostgreSQL; returns its URL (migrated if asked)."""
    import psycopg2

    admin_url = postgres_admin_url()
    require_service("PostgreSQL", admin_url)
    conn = psycopg2.connect(admin_url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        cur.execute(f"CREATE DATABASE {name}")
    conn.close()
    url = admin_url.rsplit("/", 1)[0] + "/" + name
    if migrate:
        import migrations
        import models

        db = models.open_database(url)
        migrations.migrate(db)
        db.close()
    return url


def drop_database(name: str) -> None:
    """Drop a test database, after closing this process's pooled connections to it."""
    import psycopg2

    import models

    if models.database.obj is not None:
        models.database.close()
        close_all = getattr(models.database.obj, "close_all", None)
        if close_all:
            close_all()
    conn = psycopg2.connect(postgres_admin_url())
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    conn.close()
