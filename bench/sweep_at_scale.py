"""How long the polling sweep takes to claim and enqueue 100k due shipments out of 1M rows
(PostgreSQL + Redis broker, no worker consuming).

    python -m bench.sweep_at_scale [--rows 1000000] [--due 100000]

Needs a PostgreSQL server it may create a database on (BENCH_POSTGRES_URL, default
postgresql://postgres@127.0.0.1:5432/postgres) and Redis (BENCH_REDIS_URL, default
redis://127.0.0.1:6379/12, flushed)."""
from __future__ import annotations

import argparse
import dataclasses
import os
import time

import redis

from bench.databases import recreate_database


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--due", type=int, default=100_000)
    args = parser.parse_args()
    admin_url = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    redis_url = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")
    database_url = recreate_database(admin_url, "trackcache_bench_sweep")
    with redis.Redis.from_url(redis_url) as client:
        client.flushdb()

    import models
    import settings
    from pipeline import boot, service

    config = dataclasses.replace(settings.get(), database_url=database_url, redis_url=redis_url,
                                 daily_budget=1_000_000, job_batch_size=100)
    booted = boot.boot(config, migrate=True)
    db = models.database
    started = time.monotonic()
    db.execute_sql("INSERT INTO orders (id, customer_email_hash) "
                   "SELECT 'B-' || g, 'x' FROM generate_series(1, %s) AS g", (args.rows,))
    db.execute_sql(
        "INSERT INTO tracking_cache (order_id, courier_tracking_number, courier_service, current_status,"
        " last_status_update, last_api_update, next_update_due)"
        " SELECT 'B-' || g, 'EPB' || lpad(g::text, 8, '0'), 'easyparcel', 'in_transit', now(), now(),"
        "  CASE WHEN g <= %s THEN now() - interval '1 minute' ELSE now() + interval '1 hour' END"
        " FROM generate_series(1, %s) AS g", (args.due, args.rows))
    db.execute_sql("ANALYZE tracking_cache")
    print(f"loaded {args.rows:,} shipments ({args.due:,} due) in {time.monotonic() - started:.1f} s")
    started = time.monotonic()
    enqueued = service.run_poll_sweep()
    elapsed = time.monotonic() - started
    depths = service.queue_depths()
    print(f"sweep claimed and enqueued {enqueued:,} shipments in {elapsed:.1f} s "
          f"({enqueued / elapsed:,.0f} shipments/s); scheduled queue: {depths['scheduled']:,} messages")
    boot.stop(booted)


if __name__ == "__main__":
    main()
