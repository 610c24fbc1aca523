"""Shared test fixtures: the environment is set here before `settings` is imported anywhere,
and services (PostgreSQL, Redis) are found or, under CI=true, demanded."""
from __future__ import annotations

import dataclasses
import os
import sys
import tempfile
from pathlib import Path

# Settings come from the environment: pin every value the tests rely on before any import of
# `settings`, and keep a developer's .env out of the test run.
_TEST_ENV = {
    "TRACKING_ADMIN_TOKENS": "test-admin-token-0123456789",
    "TRACKING_VIEWER_TOKENS": "test-viewer-token-0123456789",
    "TRACKING_INTERNAL_API_KEY": "test-internal-key-0123456789",
    "TRACKING_CUSTOMER_TOKEN_SECRET": "test-customer-secret-0123456789",
    "TRACKING_WEBHOOK_SECRET": "test-webhook-secret-0123456789",
    "TRACKING_EMAIL_HASH_KEY": "test-email-hash-key-0123456789",
    "DATABASE_URL": "sqlite:///" + str(Path(tempfile.gettempdir()) / f"trackcache-test-{os.getpid()}.db"),
    "REDIS_URL": "",
    "TRACKING_JITTER_PERCENT": "0",
    # Every Redis key of this session (queues included) under its own prefix: sessions running
    # at once on one machine never see each other's messages.
    "TRACKING_REDIS_NAMESPACE": f"trackcache-test-{os.getpid()}",
}
os.environ.update(_TEST_ENV)
sys.path.insert(0, str(Path(__file__).resolve().parent))

import pytest  # noqa: E402

import settings  # noqa: E402
from services import drop_database, recreate_database, redis_test_url, require_service  # noqa: E402

# A developer's .env is not read in tests: the values above are the whole configuration. The test
# courier is on for this process only, not in os.environ: production processes the tests start
# must refuse it like a real deployment would.
settings.use(dataclasses.replace(settings.load(dotenv_path=None), enable_test_couriers=True))



def pytest_collection_modifyitems(config, items):
    """Mark each test by its layer folder so `-m unit` and friends select them; leave out the
    full-scale fault scenarios unless the mark expression names them (`make faults` does)."""
    if "full_scale" not in (config.getoption("markexpr") or ""):
        kept = [item for item in items if item.get_closest_marker("full_scale") is None]
        if len(kept) != len(items):
            config.hook.pytest_deselected(items=[item for item in items if item not in kept])
            items[:] = kept
    for item in items:
        parts = Path(str(item.fspath)).parts
        for layer in ("unit", "integration", "e2e", "browser"):
            if layer in parts:
                item.add_marker(getattr(pytest.mark, layer))


@pytest.fixture(scope="session")
def postgres_url():
    """URL of a dedicated, freshly created test database on the local PostgreSQL (dropped after)."""
    # One database per test session, so that two sessions on one machine never share tables.
    name = f"trackcache_test_{os.getpid()}"
    yield recreate_database(name)
    drop_database(name)


@pytest.fixture(scope="session")
def redis_url() -> str:
    url = redis_test_url()
    require_service("Redis", url)
    return url


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'trackcache.db'}"


def _truncate_all(db) -> None:
    import models

    tables = [m._meta.table_name for m in models.ALL_MODELS]
    if models.is_postgres(db):
        db.execute_sql(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE")
    else:
        for table in reversed(tables):
            db.execute_sql(f"DELETE FROM {table}")


_migrated: set[str] = set()


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request, tmp_path):
    """A migrated, empty database bound to the models: SQLite and PostgreSQL in turn."""
    import migrations
    import models

    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'trackcache.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    database = models.connect(url)
    database.connect(reuse_if_open=True)
    if url not in _migrated:
        migrations.migrate(database)
        if request.param == "postgresql":
            _migrated.add(url)
    _truncate_all(database)
    yield database
    database.close()
    if hasattr(database, "close_all"):
        database.close_all()


@pytest.fixture
def pg_db(postgres_url):
    """A migrated, empty PostgreSQL database bound to the models."""
    import migrations
    import models

    database = models.connect(postgres_url)
    database.connect(reuse_if_open=True)
    if postgres_url not in _migrated:
        migrations.migrate(database)
        _migrated.add(postgres_url)
    _truncate_all(database)
    yield database
    database.close()
    database.close_all()
