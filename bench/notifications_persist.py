"""What notifications cost persist: batches of 100 status changes persisted on PostgreSQL with no
endpoint and no opted-in customer (the baseline, measured in the same run) against three
subscribed endpoints and every customer opted in to emails (one outbox INSERT of 700 rows per
batch). Run: `python -m bench.notifications_persist` (its own database, dropped after)."""
from __future__ import annotations

import dataclasses
import os
import statistics
import time
from datetime import UTC, datetime, timedelta

BATCH = 100
ROUNDS = 20


def main() -> None:
    os.environ.setdefault("TRACKING_EMAIL_HASH_KEY", "bench-email-hash-key-0123456789")
    import migrations
    import models
    import settings
    from bench.databases import recreate_database
    from pipeline import outbox, runtime, service, store
    from pipeline.canonical import TrackingEvent, TrackingUpdate
    from pipeline.contacts import new_key
    from pipeline.registration import ShipmentRegistration

    admin = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    name = f"trackcache_bench_notify_{os.getpid()}"
    url = recreate_database(admin, name)
    config = dataclasses.replace(settings.load(dotenv_path=None), database_url=url, redis_url="",
                                 contact_keys=settings.Secret(new_key()), smtp_url=settings.Secret("smtp://127.0.0.1:1"),
                                 enable_test_couriers=True)
    settings.use(config)
    db = models.connect(url)
    migrations.migrate(db)
    rt = runtime.install(runtime.build(config))
    assert rt is not None
    now = datetime.now(UTC)

    def run(label: str, prefix: str, notify: bool) -> list[float]:
        numbers = [f"{prefix}{i:06d}" for i in range(BATCH * ROUNDS)]
        service.register_many([(ShipmentRegistration(order_id=f"O-{n}", customer_email=f"{n}@example.com",
                                                     tracking_number=n, courier="fake", notify_email=notify), None)
                               for n in numbers])
        timings = []
        for start in range(0, len(numbers), BATCH):
            items = [store.ItemChange(tracking_number=n, kind=store.UPDATE, update=TrackingUpdate(
                courier="fake", tracking_number=n, events=(TrackingEvent(
                    time=now - timedelta(hours=1), raw_text="Out for delivery", status="out_for_delivery"),)))
                for n in numbers[start:start + BATCH]]
            context = store.PollContext(lane="webhook", trigger="webhook")
            began = time.perf_counter()
            report = store.persist_changes("fake", items, context, now=now, policy=rt.policy, max_events=50)
            timings.append((time.perf_counter() - began) * 1000)
            assert len(report.status_changes) == BATCH
        print(f"{label}: p50 {statistics.median(timings):.1f} ms, mean {statistics.mean(timings):.1f} ms per batch "
              f"of {BATCH} status changes ({models.count_rows(models.NotificationOutbox)} outbox rows so far)")
        return timings

    try:
        run("baseline (no endpoint, no email)", "BASE", notify=False)
        for index in range(3):
            outbox.create_endpoint(f"https://shop{index}.example/hooks", ["*"], "bench", now=now)
        run("3 endpoints subscribed to all + every customer emailed", "NOTE", notify=True)
    finally:
        runtime.install(None)
        db.close()
        db.close_all()
        import psycopg2

        conn = psycopg2.connect(admin)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.close()


if __name__ == "__main__":
    main()
