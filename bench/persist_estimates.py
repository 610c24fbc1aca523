"""What the delivery-estimate refresh adds to persist: batches of 100 shipments changing milestone
(pending -> in transit, the simulator's journeys read by the real adapter) persisted on PostgreSQL,
with and without `refresh_estimates_after_persist`'s work, over 3,000 journey facts of history.

    python -m bench.persist_estimates [--batches 10] [--history 3000]

Needs PostgreSQL (BENCH_POSTGRES_URL, default postgresql://postgres@127.0.0.1:5432/postgres; the
database trackcache_bench_estimates is created for it). Statistics are built once before the
measured batches (they are cached per process), so the figure is the per-batch cost."""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from datetime import UTC, datetime, timedelta

from bench.databases import recreate_database


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=10)
    parser.add_argument("--history", type=int, default=3000)
    args = parser.parse_args()

    import migrations
    import models
    import settings
    from models import JourneyFact, Order, TrackingCache
    from pipeline import estimating, store
    from pipeline.couriers.base import HttpResponse
    from pipeline.couriers.easyparcel import EasyParcel
    from pipeline.runtime import schedule_policy
    from sim import journeys as J
    from sim.history import finished_shipments

    url = recreate_database(os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
                            "trackcache_bench_estimates")
    db = models.connect(url)
    db.connect(reuse_if_open=True)
    migrations.migrate(db)
    config = settings.get()
    estimate_config = estimating.config_from(config)
    policy = schedule_policy(config)
    now = datetime.now(UTC)
    history = finished_shipments(args.history, "bench", end=now, days=120, calendar=estimate_config.calendar)
    JourneyFact.insert_many([estimating.fact_row(s.fact, shipment_id=None) for s in history]).execute()
    estimating.statistics(estimate_config, now, rebuild=True)
    adapter = EasyParcel()

    def batch(name: str, index: int) -> list[store.ItemChange]:
        numbers = [f"BENCH{name}{index:03d}{n:03d}" for n in range(100)]
        Order.insert_many([{"id": f"O-{number}", "customer_email_hash": "x"} for number in numbers]).execute()
        TrackingCache.insert_many([{"order": f"O-{number}", "courier_tracking_number": number,
                                    "courier_service": "easyparcel"} for number in numbers]).execute()
        items = [J.render_openapi_item(J.build_journey(number, "bench", now - timedelta(hours=10)), now, "2026-06",
                                       "bench") for number in numbers]
        body = json.dumps(J.openapi_tracking_response(items, len(items), 0, "bench")).encode()
        result = adapter.parse_tracking_response(HttpResponse(200, {}, body), numbers)
        return store.changes_against(store.load_shipments("easyparcel", numbers), result, is_poll=True)

    context = store.PollContext(lane="scheduled", trigger="scheduled")
    timings: dict[str, list[float]] = {"persist only": [], "persist + estimates": []}
    for index in range(args.batches):
        for name, values in timings.items():
            items = batch(name.split()[-1][:4], index)
            started = time.perf_counter()
            report = store.persist_changes("easyparcel", items, context, now=datetime.now(UTC), policy=policy,
                                           max_events=100)
            if name == "persist + estimates":
                estimating.refresh_after_persist(report.status_changes, estimate_config, now=datetime.now(UTC),
                                                 schedule_policy=policy)
            values.append((time.perf_counter() - started) * 1000)
            assert len(report.status_changes) == 100, report
    estimated = TrackingCache.select().where(TrackingCache.estimate_source == "history").count()
    for name, values in timings.items():
        print(f"{name:>22}: median {statistics.median(values):.1f} ms per batch of 100 "
              f"(min {min(values):.1f}, max {max(values):.1f}; {len(values)} batches)")
    print(f"shipments with an estimate from history: {estimated} of {100 * args.batches}")
    models.database.close()


if __name__ == "__main__":
    main()
