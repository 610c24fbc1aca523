"""Webhook ingestion end to end (`make bench-webhooks`): `trackcache serve --workers 2` and
`trackcache worker --processes 2` on a PostgreSQL database and a Redis namespace of the benchmark's
own, 10,000 registered shipments, and fixed-rate generators (bench/webhook_load.py, two
processes) offering EasyParcel webhooks, each a new event, at each rate for a fixed time.

    python -m bench.webhooks [--rates 500,1000,2000,3000] [--duration 60] [--app-root DIR] [--no-write]

Per rate it records: accepted/s (200 answers), persisted/s (inbox rows processed, counted in the
database, during the load), the backlog (accepted, not yet processed) every half second and 10 s
after the load stops, POST p50/p99 (from each request's scheduled send time), and POST -> visible
p50/p99: probe orders get a webhook while the load runs and are read through the customer API
until the new scan shows. A no-op Dramatiq pipeline (bench/noop_pipeline.py) drained from a
backlog by the same number of worker processes and threads is the baseline of the same run. The
table and a PNG plot of the backlog over time go into BENCHMARKS.md. `--app-root` runs the
processes from another checkout (e.g. an older commit, for before/after figures).

Needs PostgreSQL (BENCH_POSTGRES_URL, default postgresql://postgres@127.0.0.1:5432/postgres; the
database trackcache_bench_webhooks is created) and Redis (BENCH_REDIS_URL, default
redis://127.0.0.1:6379/12; only keys under the benchmark's own namespace are touched)."""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import psycopg2
import psycopg2.extras
import requests

from bench.databases import recreate_database
from bench.markdown import write_section
from bench.webhook_load import load_number, webhook_body

ROOT = Path(__file__).resolve().parents[1]
SHIPMENTS = 10_000
PROBES = 20
WEB_WORKERS = 2
WORKER_PROCESSES = 2
WORKER_THREADS = 4
SECRET = "bench-webhook-secret-0123456789"
CUSTOMER_SECRET = "bench-customer-secret-0123456789"
DATABASE = "trackcache_bench_webhooks"


def pick(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * pct / 100))] if ordered else float("nan")


@dataclass
class RateResult:
    rate: int
    offered: int = 0
    answered_200: int = 0
    other_answers: dict[str, int] = field(default_factory=dict)
    accepted_per_s: float = 0.0
    persisted_per_s: float = 0.0
    post_p50_ms: float = 0.0
    post_p99_ms: float = 0.0
    visible_p50_ms: float = 0.0
    visible_p99_ms: float = 0.0
    visible_samples: int = 0
    backlog_at_stop: int = 0
    backlog_10s_after: int = 0
    drained_after_s: float | None = None
    backlog: list[tuple[float, int]] = field(default_factory=list)
    load: str = ""


class Monitor:
    """Samples the backlog (pending inbox rows, an index scan) every half second; counts processed
    rows (a scan of the whole inbox) only when asked, at the load's start and stop, so that the
    measuring takes as little as possible of the database it measures."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self.conn = psycopg2.connect(database_url)
        self.conn.autocommit = True
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def pending(self) -> int:
        with self.conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM webhook_inbox WHERE status = 'pending'")
            return cur.fetchone()[0]

    def processed(self) -> int:
        with psycopg2.connect(self.database_url) as conn, conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM webhook_inbox WHERE status = 'processed'")
            count = cur.fetchone()[0]
        conn.close()
        return count

    def start(self) -> None:
        self._stop.clear()
        self.samples = []

        def loop() -> None:
            while not self._stop.is_set():
                self.samples.append((time.time(), self.pending()))
                self._stop.wait(0.5)

        self._thread = threading.Thread(target=loop, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()


class Probes:
    """While the load runs: a webhook with a new scan for a probe order, then customer reads every
    50 ms until the scan shows; the time from the webhook's send to the first read that shows it."""

    def __init__(self, base: str, tokens: list[str], label: str, sequence_base: int) -> None:
        self.sequence_base = sequence_base
        self.base = base
        self.tokens = tokens
        self.label = label
        self.latencies: list[float] = []
        self.misses = 0
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def _run(self, worker: int) -> None:
        session = requests.Session()
        n = 0
        while not self._stop.is_set():
            probe = (worker + n * 3) % PROBES
            n += 1
            text = f"Probe scan {self.label} {worker} {n}"
            sequence = 10_000_000 + self.sequence_base + worker * 100_000 + n
            body = webhook_body(f"EPPROBE{probe:03d}", f"probe-{self.label}-{worker}-{n}", sequence, text)
            sent = time.time()
            answer = session.post(f"{self.base}/api/webhooks/easyparcel/{SECRET}", data=body, timeout=30)
            if answer.status_code != 200:
                self.misses += 1
                continue
            deadline = sent + 30
            while time.time() < deadline:
                read = session.get(f"{self.base}/api/customer/track-order", params={"order_id": f"PROBE-{probe}"},
                                   headers={"Authorization": f"Bearer {self.tokens[probe]}"}, timeout=30)
                if read.status_code == 200 and text in read.text:
                    self.latencies.append((time.time() - sent) * 1000)
                    break
                time.sleep(0.05)
            else:
                self.misses += 1
            self._stop.wait(0.2)

    def start(self) -> None:
        self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(3)]
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(35)


def seed(database_url: str) -> list[str]:
    """10,000 load shipments and 20 probe orders (with customer ids), next polls far away; returns
    the probes' customer tokens."""
    sys.path.insert(0, str(ROOT))
    from web.auth import mint_customer_token

    now = datetime.now(timezone.utc).replace(tzinfo=None)
    far = now.replace(year=now.year + 1)
    conn = psycopg2.connect(database_url)
    with conn, conn.cursor() as cur:
        orders = [(f"B-{i}", None, "0" * 64, now) for i in range(SHIPMENTS)]
        orders += [(f"PROBE-{i}", f"probe-customer-{i}", "0" * 64, now) for i in range(PROBES)]
        psycopg2.extras.execute_values(cur, "INSERT INTO orders (id, customer_id, customer_email_hash, created_at) "
                                            "VALUES %s", orders, page_size=2000)
        shipments = [(f"B-{i}", load_number(i)) for i in range(SHIPMENTS)]
        shipments += [(f"PROBE-{i}", f"EPPROBE{i:03d}") for i in range(PROBES)]
        psycopg2.extras.execute_values(
            cur, "INSERT INTO tracking_cache (order_id, courier_tracking_number, courier_service, current_status, "
                 "last_status_update, tracking_events, last_api_update, next_update_due, update_frequency_minutes, "
                 "created_at, updated_at) VALUES %s",
            [(order, number, "easyparcel", "in_transit", now, "[]", now, far, 120, now, now)
             for order, number in shipments], page_size=2000)
    conn.close()
    return [mint_customer_token(CUSTOMER_SECRET, f"probe-customer-{i}") for i in range(PROBES)]


def start(env: dict[str, str], app_root: Path, log: Path, *args: str) -> subprocess.Popen:
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, "-c", "import sys, cli; sys.exit(cli.main())", *args], cwd=app_root,
                                env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def stop(process: subprocess.Popen) -> None:
    import signal

    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def load_average() -> str:
    return "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def noop_baseline(redis_url: str, namespace: str, count: int = 10_000) -> dict[str, float]:
    """Messages per second a no-op three-stage Dramatiq pipeline drains from a backlog."""
    import redis

    env = {**os.environ, "BENCH_NOOP_REDIS_URL": redis_url, "BENCH_NOOP_NAMESPACE": namespace,
           "PYTHONPATH": str(ROOT)}
    client = redis.Redis.from_url(redis_url)
    subprocess.run([sys.executable, "-c", f"from bench import noop_pipeline; noop_pipeline.enqueue({count})"],
                   env=env, cwd=ROOT, check=True)
    worker = subprocess.Popen([sys.executable, "-m", "dramatiq", "bench.noop_pipeline", "--processes",
                               str(WORKER_PROCESSES), "--threads", str(WORKER_THREADS)], env=env, cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    first = None
    try:
        deadline = time.time() + 300
        while time.time() < deadline:
            done = int(client.get(f"{namespace}:done") or 0)
            if done and first is None:
                first = (time.time(), done)
            if done >= count:
                break
            time.sleep(0.1)
        end = time.time()
    finally:
        stop(worker)
        for key in client.scan_iter(match=f"{namespace}*", count=1000):
            client.delete(key)
    assert first is not None
    pipelines = (count - first[1]) / max(1e-6, end - first[0])
    return {"pipelines_per_s": pipelines, "messages_per_s": pipelines * 3}


def run_rate(rate: int, duration: float, *, port: int, monitor: Monitor, tokens: list[str], workdir: Path,
             sequence_base: int) -> RateResult:
    result = RateResult(rate=rate)
    generators = 2
    start_at = time.time() + 4  # the generators build their requests before it
    outs = [workdir / f"load-{rate}-{g}.json" for g in range(generators)]
    monitor.start()
    probes = Probes(f"http://127.0.0.1:{port}", tokens, label=str(rate), sequence_base=sequence_base)
    procs = [subprocess.Popen([sys.executable, "-m", "bench.webhook_load", "--port", str(port), "--secret", SECRET,
                               "--rate", str(rate / generators), "--duration", str(duration), "--start-at",
                               str(start_at), "--shipments", str(SHIPMENTS), "--stride", str(generators),
                               "--offset", str(g), "--sequence-base", str(sequence_base), "--label", f"r{rate}",
                               "--out", str(outs[g])], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
             for g in range(generators)]
    time.sleep(max(0.0, start_at - time.time()))
    processed_at_start = monitor.processed()
    probes.start()
    time.sleep(duration / 2)
    result.load = load_average()
    time.sleep(max(0.0, start_at + duration - time.time()))
    processed_at_stop = monitor.processed()
    probes.stop()
    for proc in procs:
        proc.wait(timeout=120)
    stopped_at = start_at + duration
    latencies: list[float] = []
    for out in outs:
        data = json.loads(out.read_text())
        result.offered += data["sent"]
        if data.get("unanswered"):
            result.other_answers["no answer within 30 s of the load's end"] = (
                result.other_answers.get("no answer within 30 s of the load's end", 0) + data["unanswered"])
        for scheduled, done, status in data["results"]:
            latencies.append((done - scheduled) * 1000)
            if status == 200:
                result.answered_200 += 1
            else:
                name = "connection error" if status == -1 else str(status)
                result.other_answers[name] = result.other_answers.get(name, 0) + 1
    # after the load: the backlog 10 s later, and how long it took to reach zero (at most 60 s)
    while time.time() < stopped_at + 10:
        time.sleep(0.2)
    deadline = stopped_at + 60
    while time.time() < deadline:
        pending = monitor.pending()
        if pending == 0:
            result.drained_after_s = time.time() - stopped_at
            break
        time.sleep(0.5)
    monitor.stop()
    result.accepted_per_s = result.answered_200 / duration
    result.persisted_per_s = (processed_at_stop - processed_at_start) / duration
    result.post_p50_ms, result.post_p99_ms = statistics.median(latencies), pick(latencies, 99)
    result.visible_samples = len(probes.latencies)
    if probes.latencies:
        result.visible_p50_ms = statistics.median(probes.latencies)
        result.visible_p99_ms = pick(probes.latencies, 99)
    result.backlog = [(t - start_at, pending) for t, pending in monitor.samples]
    at_stop = [p for t, p in monitor.samples if t <= stopped_at]
    result.backlog_at_stop = at_stop[-1] if at_stop else 0
    after = [p for t, p in monitor.samples if t >= stopped_at + 10]
    result.backlog_10s_after = after[0] if after else 0
    return result


def plot(results: list[RateResult], path: Path, duration: float, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(8, 4.5))
    for result in results:
        axes.plot([t for t, _ in result.backlog], [p for _, p in result.backlog], label=f"{result.rate}/s offered")
    axes.axvline(duration, color="grey", linestyle="--", linewidth=1)
    axes.text(duration, axes.get_ylim()[1] * 0.95, " load stops", color="grey", fontsize=8)
    axes.set_xlabel("seconds since the load started")
    axes.set_ylabel("backlog (accepted, not yet persisted)")
    axes.set_title(title, fontsize=10)
    axes.legend()
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def table(results: list[RateResult], baseline: dict[str, float]) -> str:
    lines = ["| offered/s | answered 200 | other answers | accepted/s | persisted/s (during load) | backlog at stop "
             "| backlog +10 s | drained after | POST p50 / p99 | POST → visible p50 / p99 (n) | load avg |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        drained = f"{r.drained_after_s:.1f} s" if r.drained_after_s is not None else "> 60 s"
        others = ", ".join(f"{k}: {v}" for k, v in sorted(r.other_answers.items())) or "none"
        lines.append(f"| {r.rate} | {r.answered_200} / {r.offered} | {others} | {r.accepted_per_s:.0f} | "
                     f"{r.persisted_per_s:.0f} | {r.backlog_at_stop} | {r.backlog_10s_after} | {drained} | "
                     f"{r.post_p50_ms:.1f} / {r.post_p99_ms:.1f} ms | {r.visible_p50_ms:.0f} / {r.visible_p99_ms:.0f} ms "
                     f"({r.visible_samples}) | {r.load} |")
    lines.append("")
    lines.append(f"Baseline in the same run: a no-op three-stage Dramatiq pipeline, {WORKER_PROCESSES} processes × "
                 f"{WORKER_THREADS} threads, drains {baseline['messages_per_s']:.0f} messages/s "
                 f"({baseline['pipelines_per_s']:.0f} pipelines/s) from a backlog.")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", default="500,1000,2000,3000")
    parser.add_argument("--duration", type=float, default=60)
    parser.add_argument("--app-root", default=str(ROOT), help="checkout whose serve and worker are measured")
    parser.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    parser.add_argument("--worker-threads", type=int, default=WORKER_THREADS, help="threads per worker process")
    args = parser.parse_args()
    rates = [int(r) for r in args.rates.split(",")]
    app_root = Path(args.app_root).resolve()
    admin_url = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    redis_url = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")
    namespace = f"trackcache-bench-webhooks-{os.getpid()}"
    database_url = recreate_database(admin_url, DATABASE)
    workdir = Path(tempfile.mkdtemp(prefix="trackcache-bench-webhooks-"))
    log = workdir / "processes.log"
    port = 18000 + os.getpid() % 1000
    env = {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": redis_url, "TRACKING_REDIS_NAMESPACE": namespace,
           "TRACKING_WEBHOOK_SECRET": SECRET, "TRACKING_CUSTOMER_TOKEN_SECRET": CUSTOMER_SECRET,
           "TRACKING_EMAIL_HASH_KEY": "bench-email-hash-key-0123456789",
           "TRACKING_ADMIN_TOKENS": "bench-admin-token-0123456789", "TRACKING_INTERNAL_API_KEY": "bench-internal-0123456789",
           "TRACKING_CUSTOMER_RATE_LIMIT": "100000000", "TRACKING_LOG_LEVEL": "warning",
           "EASYPARCEL_CLIENT_ID": "bench", "EASYPARCEL_CLIENT_SECRET": "bench",
           "EASYPARCEL_BASE_URL": "http://127.0.0.1:9", "PYTHONPATH": str(app_root)}
    subprocess.run([sys.executable, "-c", "import sys, cli; sys.exit(cli.main())", "migrate"], cwd=app_root, env=env,
                   check=True, stdout=subprocess.DEVNULL)
    tokens = seed(database_url)
    print(f"load before: {load_average()}; logs in {log}", flush=True)
    baseline = noop_baseline(redis_url, f"{namespace}-noop")
    print(f"no-op pipeline baseline: {baseline['messages_per_s']:.0f} messages/s", flush=True)
    processes = [start(env, app_root, log, "serve", "--workers", str(WEB_WORKERS), "--port", str(port)),
                 start(env, app_root, log, "worker", "--processes", str(WORKER_PROCESSES), "--threads",
                       str(args.worker_threads))]
    monitor = Monitor(database_url)
    results: list[RateResult] = []
    try:
        deadline = time.time() + 60
        while True:
            if time.time() > deadline or any(p.poll() is not None for p in processes):
                raise SystemExit(f"the processes did not start; see {log}:\n" + log.read_text()[-2000:])
            try:
                if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                time.sleep(0.5)
        time.sleep(3)  # both web workers up
        for index, rate in enumerate(rates):
            result = run_rate(rate, args.duration, port=port, monitor=monitor, tokens=tokens, workdir=workdir,
                              sequence_base=index * 1_000_000)
            results.append(result)
            print(table([result], baseline).splitlines()[2], flush=True)
    finally:
        for process in processes:
            stop(process)
        try:
            import redis

            client = redis.Redis.from_url(redis_url)
            for key in client.scan_iter(match=f"{namespace}:*", count=1000):
                client.delete(key)
        except Exception as error:  # the figures matter more than the cleanup
            print(f"could not clean the Redis namespace {namespace}: {error}")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=app_root, capture_output=True,
                            text=True).stdout.strip() or "unknown"
    title = (f"Webhook backlog over time (serve --workers {WEB_WORKERS}, worker --processes {WORKER_PROCESSES}, "
             f"commit {commit})")
    body = table(results, baseline)
    print(body)
    if args.no_write:
        return
    png = ROOT / "docs" / "bench-webhooks-backlog.png"
    plot(results, png, args.duration, title)
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    section = (f"## Webhook ingestion (`make bench-webhooks`)\n\n"
               f"{stamp}, commit {commit}; {SHIPMENTS:,} shipments, `serve --workers {WEB_WORKERS}`, "
               f"`worker --processes {WORKER_PROCESSES} --threads {WORKER_THREADS}`, PostgreSQL and Redis on the "
               f"same 2-core machine (shared with other work: see the load average column), each rate for "
               f"{args.duration:.0f} s, every webhook a new event. Latencies are from each request's scheduled send "
               f"time; persisted/s is counted in the database during the load.\n\n{body}\n\n"
               f"![backlog over time](docs/bench-webhooks-backlog.png)\n")
    write_section("bench-webhooks", section)


if __name__ == "__main__":
    main()
