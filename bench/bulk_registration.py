"""Time of `POST /api/admin/shipments/bulk` with 1,000 new registrations on PostgreSQL (target:
well under a second), against a baseline measured in the same run: a bare Starlette route that
parses the same body and answers a result list of the same size. Also shown: the same call with
peewee building the inserts (the path before `models.insert_rows`), and an idempotent replay.

    python -m bench.bulk_registration [--runs 7] [--items 1000]

Needs a PostgreSQL server it may create a database on (BENCH_POSTGRES_URL, default
postgresql://postgres@127.0.0.1:5432/postgres; creates trackcache_bench_bulk). No Redis: the read
cache and coordination run in process."""
from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

from bench.databases import recreate_database

ADMIN_TOKEN = "bench-admin-token-0123456789"


def items(run: str, count: int) -> list[dict[str, str]]:
    return [{"order_id": f"B{run}-{n}", "customer_email": f"buyer{n}@example.com",
             "tracking_number": f"EPB{run}{n:05d}"} for n in range(count)]


def timed(runs: int, call: Callable[[int], Any]) -> tuple[list[float], list[float]]:
    """Wall times and this process's CPU times (all threads: the app runs in process) in ms."""
    took, cpu = [], []
    for run in range(runs):
        started, started_cpu = time.perf_counter(), time.process_time()
        call(run)
        took.append((time.perf_counter() - started) * 1000)
        cpu.append((time.process_time() - started_cpu) * 1000)
    return took, cpu


def summary(name: str, measured: tuple[list[float], list[float]]) -> str:
    took, cpu = measured
    return (f"{name:<44} median {statistics.median(took):7.1f} ms   min {min(took):7.1f} ms   "
            f"max {max(took):7.1f} ms   CPU median {statistics.median(cpu):6.1f} ms")


def baseline_app() -> Any:
    import json

    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def echo(request: Request) -> JSONResponse:
        body = json.loads(await request.body())
        return JSONResponse({"count": len(body["shipments"]), "results": [
            {"index": n, "status": "created", "shipment_id": n, "order_id": item["order_id"],
             "tracking_number": item["tracking_number"], "courier": "easyparcel"}
            for n, item in enumerate(body["shipments"])]})

    return Starlette(routes=[Route("/bulk", echo, methods=["POST"])])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--items", type=int, default=1000)
    args = parser.parse_args()
    admin_url = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    database_url = recreate_database(admin_url, "trackcache_bench_bulk")

    from starlette.testclient import TestClient

    import models
    import settings
    from pipeline import boot
    from web.app import create_app

    config = dataclasses.replace(settings.get(), database_url=database_url, redis_url="",
                                 admin_tokens=(settings.token_digest(ADMIN_TOKEN),),
                                 email_hash_key=settings.Secret("bench-email-hash-key-0123456789"))
    booted = boot.boot(config, migrate=True)
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    with TestClient(baseline_app()) as bare, TestClient(create_app(config, boot=False)) as app:
        def post_bulk(prefix: str, extra: dict[str, str] | None = None) -> Callable[[int], Any]:
            def call(run: int) -> None:
                response = app.post("/api/admin/shipments/bulk", json={"shipments": items(f"{prefix}{run}", args.items)},
                                    headers={**headers, **(extra or {})})
                assert response.status_code == 200 and response.json()["summary"]["created"] == args.items, \
                    response.text[:300]
            return call

        post_bulk("W")(0)  # warm up: connections, imports
        bare.post("/bulk", json={"shipments": items("W", args.items)})
        baseline = timed(args.runs, lambda run: bare.post("/bulk", json={"shipments": items(f"S{run}", args.items)}))
        bulk = timed(args.runs, post_bulk("R"))
        fast_insert = models.insert_rows

        def peewee_insert(model: Any, rows: Any) -> None:
            if rows:
                model.insert_many(rows).execute()

        models.insert_rows = peewee_insert  # type: ignore[assignment]
        try:
            through_peewee = timed(args.runs, post_bulk("P"))
        finally:
            models.insert_rows = fast_insert  # type: ignore[assignment]
        key = {"Idempotency-Key": "bench-replay"}
        body = {"shipments": items("K", args.items)}
        app.post("/api/admin/shipments/bulk", json=body, headers={**headers, **key})
        replay = timed(args.runs, lambda run: app.post("/api/admin/shipments/bulk", json=body,
                                                       headers={**headers, **key}))
    boot.stop(booted)
    load = os.getloadavg()
    print(f"{args.items} registrations per call, {args.runs} runs each (wall time includes waiting on a shared PostgreSQL); load average {load[0]:.1f} {load[1]:.1f} "
          f"{load[2]:.1f}")
    print(summary("baseline: bare Starlette, same body and answer", baseline))
    print(summary("bulk registration (execute_values inserts)", bulk))
    print(summary("bulk registration (peewee insert_many)", through_peewee))
    print(summary("idempotent replay of a bulk call", replay))
    print(f"bulk registration minus baseline: median {statistics.median(bulk[0]) - statistics.median(baseline[0]):.1f} ms")


if __name__ == "__main__":
    main()
