"""Server time of the customer tracking page (GET /track/view, the result page a guest lands on)
from a warm read cache: the embedded mode (SQLite, in-process cache) and production's shape
(PostgreSQL, Redis read cache). The target is under 100 ms.

    python -m bench.tracking_page [--requests 2000] [--events 50] [--mode embedded|redis|both]

Server time is the page's own `Server-Timing: app;dur=...` (handler start to rendered HTML); the
in-process round trip through the whole ASGI stack (middleware included) is shown beside it.
The redis mode needs PostgreSQL (BENCH_POSTGRES_URL, default
postgresql://postgres@127.0.0.1:5432/postgres; a database is created) and Redis (BENCH_REDIS_URL,
default redis://127.0.0.1:6379/12, flushed)."""
from __future__ import annotations

import argparse
import dataclasses
import os
import re
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta

from bench.databases import recreate_database

SERVER_TIMING = re.compile(r"app;dur=([\d.]+)")


def quantiles(values: list[float]) -> str:
    ordered = sorted(values)

    def pick(pct: int) -> float:
        return ordered[min(len(ordered) - 1, int(len(ordered) * pct / 100))]

    return (f"p50 {statistics.median(ordered):.2f} ms, p95 {pick(95):.2f} ms, p99 {pick(99):.2f} ms, "
            f"max {ordered[-1]:.2f} ms")


def prepare_postgres(admin_url: str) -> str:
    return recreate_database(admin_url, "trackcache_bench_page")


def run(mode: str, *, requests: int, events: int) -> None:
    from starlette.testclient import TestClient

    import models
    import settings
    from models import TrackingCache
    from pipeline import boot, read_cache, runtime, service
    from pipeline.registration import ShipmentRegistration
    from settings import Secret
    from web import sessions
    from web.app import create_app

    if mode == "redis":
        import redis

        database_url = prepare_postgres(os.environ.get("BENCH_POSTGRES_URL",
                                                       "postgresql://postgres@127.0.0.1:5432/postgres"))
        redis_url = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")
        with redis.Redis.from_url(redis_url) as client:
            client.flushdb()
    else:
        database_url = f"sqlite:///{tempfile.mkdtemp(prefix='trackcache-bench-')}/bench.db"
        redis_url = ""
    config = dataclasses.replace(settings.load({}, dotenv_path=None), database_url=database_url,
                                 redis_url=redis_url, email_hash_key=Secret("bench-email-hash-key-012345"),
                                 customer_token_secret=Secret("bench-customer-secret-0123456789"))
    booted = boot.boot(config, migrate=True)
    try:
        # one order with a long history (guests see the newest TRACKING_GUEST_HISTORY events)
        service.register_shipment(ShipmentRegistration(order_id="BENCH-1", customer_email="buyer@example.com",
                                                       tracking_number="EPBENCH0001", courier="easyparcel"))
        now = datetime.now(UTC)
        history = [{"time": (now - timedelta(hours=events - i)).isoformat().replace("+00:00", "Z"),
                    "status": "in_transit", "raw_code": "4", "fingerprint": f"f{i}",
                    "raw_text": f"Arrived at hub {i} (ref 0123456789)",
                    "location": f"Hub {i}, 4{i:04d} Shah Alam, Selangor, MY"} for i in range(events)]
        TrackingCache.update(tracking_events=history, current_status="in_transit",
                             last_api_update=now).execute()
        read_cache.invalidate(runtime.current().coordination, ["BENCH-1"])
        models.database.close()
        link = sessions.make_track_link(sessions.key_from_config(config), "BENCH-1")
        app = create_app(config, boot=False)
        server_ms, round_trip_ms, hits = [], [], 0
        with TestClient(app) as client:
            for index in range(50 + requests):
                started = time.perf_counter()
                response = client.get("/track/view", params={"t": link})
                elapsed = (time.perf_counter() - started) * 1000
                assert response.status_code == 200, response.text[:500]
                if index < 50:
                    continue  # warm-up (the first read fills the read cache)
                timing = response.headers["server-timing"]
                server_ms.append(float(SERVER_TIMING.search(timing).group(1)))
                round_trip_ms.append(elapsed)
                hits += 'desc="hit"' in timing
        print(f"{mode}: {requests} warm reads of GET /track/view ({events} stored events, "
              f"{hits}/{requests} read-cache hits)")
        print(f"  server time (Server-Timing) {quantiles(server_ms)}")
        print(f"  in-process round trip       {quantiles(round_trip_ms)}")
    finally:
        boot.stop(booted)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--events", type=int, default=50)
    parser.add_argument("--mode", choices=("embedded", "redis", "both"), default="both")
    args = parser.parse_args()
    for mode in ("embedded", "redis") if args.mode == "both" else (args.mode,):
        run(mode, requests=args.requests, events=args.events)


if __name__ == "__main__":
    main()
