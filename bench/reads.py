"""Customer reads against the bare framework (`make bench-reads`, issue 12).

Creates its own PostgreSQL database with 100k orders (one shipment each) and its own Redis
namespace, starts a bare Starlette app (one route answering a constant JSON) and `trackcache
serve` with the same server setup (web.server: uvloop, httptools, TCP_NODELAY, SO_REUSEPORT per
worker), warms both, and drives them with `wrk` alternately A/B/A/B (3 runs each) for guest,
customer-token and /healthz reads at 100 and 1,000 connections, with 1 and 2 web workers. Then a
fixed offered rate (2,000 req/s over 1,000 connections, latency from each request's scheduled
send time, so a slow server cannot hide its queue) against guest reads, and the embedded mode
(SQLite, no Redis) against bare. Prints one table and writes it to BENCHMARKS.md.

    python -m bench.reads [--duration 5] [--rate-seconds 30] [--no-write]

Needs `wrk` (Debian: `apt-get install wrk`), PostgreSQL at BENCH_POSTGRES_URL (default
postgresql://postgres@127.0.0.1:5432/postgres) and Redis at BENCH_REDIS_URL (default
redis://127.0.0.1:6379/12). Drops only the database and Redis namespace it creates."""
from __future__ import annotations

import argparse
import asyncio
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.databases import recreate_database
from bench.markdown import write_section

ROOT = Path(__file__).resolve().parent.parent
ORDERS = 100_000
HOT_ORDERS = 1_000  # the orders the load reads (customers asking about their recent orders)
DATABASE = "trackcache_bench_reads"
SECRETS = {
    "TRACKING_ADMIN_TOKENS": "bench-admin-token-0123456789abcdef",
    "TRACKING_INTERNAL_API_KEY": "bench-internal-key-0123456789abcdef",
    "TRACKING_CUSTOMER_TOKEN_SECRET": "bench-customer-secret-0123456789abcdef",
    "TRACKING_WEBHOOK_SECRET": "bench-webhook-secret-0123456789abcdef",
    "TRACKING_EMAIL_HASH_KEY": "bench-email-hash-key-0123456789abcdef",
    "TRACKING_CONTACT_KEYS": "",
    # The load must measure reads, not refusals.
    "TRACKING_GUEST_RATE_LIMIT": "1000000000",
    "TRACKING_CUSTOMER_RATE_LIMIT": "1000000000",
    "TRACKING_LOG_LEVEL": "WARNING",
}


# --- data ------------------------------------------------------------------------------------------

def email_of(n: int) -> str:
    return f"buyer{n}@example.com"


def seed(database_url: str, count: int) -> None:
    """`count` orders, one fresh in-transit shipment each, straight into the tables."""
    import migrations
    import models
    from models import Order, TrackingCache

    db = models.connect(database_url)
    migrations.migrate(db)
    key = SECRETS["TRACKING_EMAIL_HASH_KEY"]
    now = datetime.now(UTC)
    events = [{"time": (now - timedelta(hours=h)).isoformat(), "status": "in_transit", "raw_code": "3",
               "raw_text": f"Parcel processed at sorting centre {h}", "location": "Shah Alam Hub, Selangor, MY"}
              for h in range(6, 0, -1)]
    for start in range(0, count, 5_000):
        numbers = range(start, min(count, start + 5_000))
        with db.atomic():
            Order.insert_many([{"id": f"BR-{n}", "customer_id": f"cust-{n}",
                                "customer_email_hash": models.hash_email(email_of(n), key)} for n in numbers]).execute()
            TrackingCache.insert_many([{
                "order": f"BR-{n}", "courier_tracking_number": f"BRT{n:08d}", "courier_service": "fake",
                "current_status": "in_transit", "tracking_events": events, "last_api_update": now,
                "next_update_due": now + timedelta(days=2), "last_event_at": now} for n in numbers]).execute()
    db.close()


# --- servers -------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    name: str
    port: int
    process: subprocess.Popen[bytes]

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start(name: str, command: list[str], env: dict[str, str], port: int) -> Server:
    log = open(Path(tempfile.gettempdir()) / f"bench-reads-{name}-{port}.log", "wb")  # noqa: SIM115
    process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return Server(name, port, process)
        except OSError:
            if process.poll() is not None:
                raise SystemExit(f"{name} did not start; see {log.name}") from None
            time.sleep(0.2)
    raise SystemExit(f"{name} did not listen on {port} within 60 s")


def start_bare(workers: int) -> Server:
    port = free_port()
    return start("bare", [sys.executable, "-m", "bench.reads", "serve-bare", str(port), str(workers)],
                 dict(os.environ), port)


def start_trackcache(env: dict[str, str], workers: int) -> Server:
    port = free_port()
    return start(f"serve-{workers}", [str(Path(sys.executable).parent / "trackcache"), "serve", "--port", str(port),
                                      "--workers", str(workers)], env, port)


def start_embedded(env: dict[str, str]) -> Server:
    port = free_port()
    return start("embedded", [sys.executable, "-m", "bench.reads", "serve-embedded", str(port)], env, port)


# --- load ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Figures:
    rps: float
    p50_ms: float
    p99_ms: float


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip()).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[unit]


def wrk(port: int, script: Path, connections: int, seconds: float) -> Figures:
    out = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency", "--timeout", "10s",
                          "-s", str(script), f"http://127.0.0.1:{port}"], capture_output=True, text=True,
                         check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"\s50%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"\s99%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    if "Non-2xx" in out:
        raise SystemExit(f"wrk saw error answers:\n{out}")
    return Figures(rps, p50, p99)


def warm(port: int, kinds: tuple[str, ...] = ("guest", "customer")) -> None:
    """Read every hot order once per audience, so the load starts on a warm read cache (a miss
    goes to the database on a thread; the load is about hits)."""
    import requests

    from web.auth import mint_customer_token

    with requests.Session() as session:
        for n in range(HOT_ORDERS):
            for kind in kinds:
                if kind == "guest":
                    params = {"order_id": f"BR-{n}", "email": email_of(n)}
                    headers = {}
                else:
                    params = {"order_id": f"BR-{n}"}
                    token = mint_customer_token(SECRETS["TRACKING_CUSTOMER_TOKEN_SECRET"], f"cust-{n}")
                    headers = {"Authorization": f"Bearer {token}"}
                response = session.get(f"http://127.0.0.1:{port}/api/customer/track-order", params=params,
                                       headers=headers, timeout=30)
                if response.status_code != 200:
                    raise SystemExit(f"warming failed: {response.status_code} {response.text[:200]}")


def lua_script(directory: Path, kind: str) -> Path:
    """A wrk script cycling over the hot orders (guest, customer) or /healthz; the bare app
    answers every path alike."""
    from web.auth import mint_customer_token

    lines = ["local paths = {}", "local tokens = {}"]
    for n in range(HOT_ORDERS):
        if kind == "guest":
            lines.append(f'paths[{n + 1}] = "/api/customer/track-order?order_id=BR-{n}&email=buyer{n}%40example.com"')
        elif kind == "customer":
            token = mint_customer_token(SECRETS["TRACKING_CUSTOMER_TOKEN_SECRET"], f"cust-{n}")
            lines.append(f'paths[{n + 1}] = "/api/customer/track-order?order_id=BR-{n}"')
            lines.append(f'tokens[{n + 1}] = "Bearer {token}"')
    if kind == "healthz":
        lines.append('paths[1] = "/healthz"')
    lines += ["local i = 0", "request = function()", "  i = i % #paths + 1",
              '  local headers = {}', '  if tokens[i] then headers["Authorization"] = tokens[i] end',
              '  return wrk.format("GET", paths[i], headers)', "end"]
    path = directory / f"{kind}.lua"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


async def fixed_rate(port: int, paths: list[str], rate: float, connections: int, seconds: float) -> dict[str, float]:
    """`rate` requests/s for `seconds` over `connections` keep-alive connections; each latency is
    measured from the request's scheduled send time (no coordinated omission). The connections are
    opened and used once before the clock starts: a storm of 1,000 connects overflows accept
    queues and costs seconds of SYN retransmits (wrk's 1,000-connection rows show it, bare
    Starlette's too), which says nothing about reads."""
    total = int(rate * seconds)
    queue: asyncio.Queue[tuple[int, float]] = asyncio.Queue()
    latencies: list[float] = []
    errors = 0

    async def exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str) -> bytes:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(re.search(rb"(?i)content-length:\s*(\d+)", head).group(1))  # type: ignore[union-attr]
        await reader.readexactly(length)
        return head

    async def opened(n: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        await exchange(reader, writer, paths[n % len(paths)])
        return reader, writer

    streams = []
    for start in range(0, connections, 100):  # in steps, so no accept queue overflows
        streams += await asyncio.gather(*[opened(n) for n in range(start, min(connections, start + 100))])

    async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal errors
        while True:
            n, at = await queue.get()
            if n < 0:
                break
            head = await exchange(reader, writer, paths[n % len(paths)])
            latencies.append(time.perf_counter() - at)
            if not head.startswith(b"HTTP/1.1 200"):
                errors += 1
        writer.close()

    workers = [asyncio.create_task(connection(reader, writer)) for reader, writer in streams]
    started = time.perf_counter() + 0.5
    for n in range(total):
        at = started + n / rate
        delay = at - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        queue.put_nowait((n, at))
    for _ in workers:
        queue.put_nowait((-1, 0.0))
    await asyncio.gather(*workers)
    latencies.sort()
    return {"offered": rate, "answered": len(latencies), "errors": errors,
            "p50_ms": latencies[len(latencies) // 2] * 1000, "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000,
            "achieved": len(latencies) / (time.perf_counter() - started)}


# --- the comparison -----------------------------------------------------------------------------------

@dataclass
class Row:
    workers: int | str
    kind: str
    connections: int
    bare: list[Figures]
    ours: list[Figures]

    @staticmethod
    def median(figures: list[Figures]) -> Figures:
        ordered = sorted(figures, key=lambda f: f.rps)
        return ordered[len(ordered) // 2]

    def line(self) -> str:
        bare, ours = self.median(self.bare), self.median(self.ours)
        return (f"| {self.workers} | {self.kind} | {self.connections} | {bare.rps:,.0f} | {bare.p50_ms:.1f} / "
                f"{bare.p99_ms:.1f} | {ours.rps:,.0f} | {ours.p50_ms:.1f} / {ours.p99_ms:.1f} | "
                f"{ours.rps / bare.rps:.0%} |")


def alternate(bare: Server, ours: Server, script: Path, connections: int, seconds: float, runs: int) -> Row:
    bare_figures, our_figures = [], []
    for _ in range(runs):
        bare_figures.append(wrk(bare.port, script, connections, seconds))
        our_figures.append(wrk(ours.port, script, connections, seconds))
    return Row(0, "", connections, bare_figures, our_figures)


def measure(args: argparse.Namespace) -> str:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: `apt-get install wrk` (Debian's package)")
    import redis

    admin_url = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    redis_url = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")
    namespace = f"trackcache-bench-reads-{os.getpid()}"
    database_url = recreate_database(admin_url, DATABASE)
    print(f"seeding {args.orders:,} orders ...", flush=True)
    seed(database_url, args.orders)
    env = {**os.environ, **SECRETS, "DATABASE_URL": database_url, "REDIS_URL": redis_url,
           "TRACKING_REDIS_NAMESPACE": namespace}
    rows: list[Row] = []
    scripts_dir = Path(tempfile.mkdtemp(prefix="bench-reads-"))
    scripts = {kind: lua_script(scripts_dir, kind) for kind in ("guest", "customer", "healthz")}
    rate_result: dict[str, float] = {}
    try:
        for workers in args.workers:
            bare, ours = start_bare(workers), start_trackcache(env, workers)
            try:
                warm(ours.port)
                for script in scripts.values():  # and every web process's hot documents
                    wrk(bare.port, script, 10, 2)
                    wrk(ours.port, script, 10, max(2.0, args.duration / 2))
                for kind, script in scripts.items():
                    for connections in (100, 1000):
                        row = alternate(bare, ours, script, connections, args.duration, args.runs)
                        row.workers, row.kind = workers, kind
                        print(row.line(), flush=True)
                        rows.append(row)
                if workers == args.workers[-1]:
                    paths = [f"/api/customer/track-order?order_id=BR-{n}&email=buyer{n}%40example.com"
                             for n in range(HOT_ORDERS)]
                    rate_result = asyncio.run(fixed_rate(ours.port, paths, args.rate, 1000, args.rate_seconds))
                    rate_result["workers"] = workers
                    print(f"fixed rate: {rate_result}", flush=True)
            finally:
                bare.stop()
                ours.stop()
        embedded_dir = Path(tempfile.mkdtemp(prefix="bench-reads-embedded-"))
        embedded_url = f"sqlite:///{embedded_dir / 'trackcache.db'}"
        seed(embedded_url, min(args.orders, 10_000))
        embedded_env = {**env, "DATABASE_URL": embedded_url, "REDIS_URL": ""}
        bare, ours = start_bare(1), start_embedded(embedded_env)
        try:
            warm(ours.port, kinds=("guest",))
            wrk(bare.port, scripts["guest"], 10, 2)
            wrk(ours.port, scripts["guest"], 10, max(2.0, args.duration / 2))
            row = alternate(bare, ours, scripts["guest"], 100, args.duration, args.runs)
            row.workers, row.kind = "embedded (1)", "guest"
            print(row.line(), flush=True)
            rows.append(row)
        finally:
            bare.stop()
            ours.stop()
            shutil.rmtree(embedded_dir, ignore_errors=True)
    finally:
        shutil.rmtree(scripts_dir, ignore_errors=True)
        client = redis.Redis.from_url(redis_url)
        for key in client.scan_iter(match=namespace + ":*", count=1000):
            client.delete(key)
        client.close()
    return report(rows, rate_result, args)


def report(rows: list[Row], rate: dict[str, float], args: argparse.Namespace) -> str:
    load = os.getloadavg()
    lines = ["## Customer reads against bare Starlette (`make bench-reads`)", "",
             f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.node()} ({os.cpu_count()} cores, load average "
             f"{load[0]:.1f} at the end), `python -m bench.reads {' '.join(sys.argv[1:])}`".rstrip() + ": "
             f"{args.orders:,} orders in PostgreSQL, Redis read cache, reads cycling over {HOT_ORDERS:,} orders; "
             f"`wrk -t2`, {args.duration:g} s per run, bare and trackcache alternately, {args.runs} runs each "
             "(median shown).", "",
             ("| web workers | read | connections | bare req/s | bare p50 / p99 ms | trackcache req/s | "
              "p50 / p99 ms | of bare |"), "|---|---|---|---|---|---|---|---|"]
    lines += [row.line() for row in rows]
    if rate:
        lines += ["", (f"Fixed offered rate, guest reads, {rate['workers']} web workers, 1,000 connections "
                       f"(opened and used once before the clock starts), {args.rate_seconds:g} s: offered "
                       f"{rate['offered']:,.0f}/s, answered {rate['answered']:,.0f} ({rate['achieved']:,.0f}/s, "
                       f"{rate['errors']:.0f} not 200), latency from the scheduled send time p50 "
                       f"{rate['p50_ms']:.1f} ms, p99 {rate['p99_ms']:.1f} ms.")]
    return "\n".join(lines)


# --- the servers' own entry points -----------------------------------------------------------------

def serve_bare(port: int, workers: int) -> None:
    from web import server

    server.serve(host="127.0.0.1", port=port, workers=workers, options={"log_level": "warning",
                                                                        "access_log": False},
                 app="bench.bare_app:app")


def serve_embedded(port: int) -> None:
    """The app as `trackcache dev` serves it: SQLite, in-process coordination, no Redis."""
    from web import server

    server.serve(host="127.0.0.1", port=port, workers=1, options={"log_level": "warning", "access_log": False})


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "serve-bare":
        serve_bare(int(sys.argv[2]), int(sys.argv[3]))
        return
    if len(sys.argv) > 1 and sys.argv[1] == "serve-embedded":
        serve_embedded(int(sys.argv[2]))
        return
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=5, help="seconds per wrk run (default 5)")
    parser.add_argument("--runs", type=int, default=3, help="runs of each server per row (default 3)")
    parser.add_argument("--workers", type=lambda v: [int(w) for w in v.split(",")], default=[1, 2])
    parser.add_argument("--orders", type=int, default=ORDERS)
    parser.add_argument("--rate", type=float, default=2000)
    parser.add_argument("--rate-seconds", type=float, default=30)
    parser.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    args = parser.parse_args()
    section = measure(args)
    print(section)
    if not args.no_write:
        write_section("bench-reads", section)


if __name__ == "__main__":
    main()
