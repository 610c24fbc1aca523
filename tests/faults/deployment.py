"""A whole production deployment on this machine for the fault scenarios: a private PostgreSQL
cluster and a private Redis (so a scenario may stop them), the broker (that Redis, or a RabbitMQ
vhost of the scenario's own), the courier simulator with its clock stopped, and `trackcache serve`,
`worker` and `scheduler` as real processes; plus the courier's side of the traffic (webhooks sent
and retried until acknowledged, as a courier does) and the audit that counts, against the
simulator's ground truth, what was sent, accepted, persisted, lost, duplicated and regressed."""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests
from private_services import PrivatePostgres, PrivateRedis
from processes import ROOT, free_port, start_cli, stop, wait_until

SEED = "trackcache-faults"
WEBHOOK_SECRET = "faults-webhook-secret-0123456789"
ADMIN_TOKEN = "faults-admin-token-0123456789"
VIEWER_TOKEN = "faults-viewer-token-0123456789"
INTERNAL_KEY = "faults-internal-key-0123456789"
CUSTOMER_SECRET = "faults-customer-secret-0123456789"
EMAIL_HASH_KEY = "faults-email-hash-key-0123456789"
SECRETS = (WEBHOOK_SECRET, ADMIN_TOKEN, VIEWER_TOKEN, INTERNAL_KEY, CUSTOMER_SECRET, EMAIL_HASH_KEY)
# Scenario prefixes of the simulator whose journeys have several events by the epoch.
PREFIXES = ("EPDEL", "EPTRN", "EPOFD", "EPFAD", "EPEXC")
FINAL = {"delivered", "returned", "expired", "cancelled"}
# Every log file a deployment of this test session wrote (grepped for secrets at the end).
PRODUCED_LOGS: list[Path] = []


def descendants(pid: int) -> list[int]:
    """Every process under `pid` (children before their own children), from /proc."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found: list[int] = []
    queue = [pid]
    while queue:
        children = parents.get(queue.pop(0), [])
        found.extend(children)
        queue.extend(children)
    return found


def tracking_numbers(tag: str, count: int) -> list[str]:
    """`count` simulator numbers spread over the scenarios with visible history (EPDEL..., EPTRN...)."""
    return [f"{PREFIXES[i % len(PREFIXES)]}{tag}{i:05d}" for i in range(count)]


@dataclass
class Deployment:
    """Private services plus the product's processes; `start()` / `close()`."""

    workdir: Path
    broker: str  # "redis" | "rabbitmq"
    rabbit_url: str | None = None
    sim_faults: Any = None
    extra_env: dict[str, str] = field(default_factory=dict)
    serve_args: tuple[str, ...] = ()
    epoch: datetime = field(default_factory=lambda: datetime.now(UTC).replace(microsecond=0))

    def __post_init__(self) -> None:
        self.redis = PrivateRedis().start()
        self.pg = PrivatePostgres().start()
        self.database_url = self.pg.create_database("trackcache_faults")
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log = self.workdir / "deployment.log"
        PRODUCED_LOGS.append(self.log)
        self.processes: dict[str, list[subprocess.Popen]] = {"serve": [], "worker": [], "scheduler": []}
        self.sim: Any = None

    # --- processes ------------------------------------------------------------------------------

    @property
    def env(self) -> dict[str, str]:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "DATABASE_URL": self.database_url, "REDIS_URL": self.redis.url,
               "TRACKING_REDIS_NAMESPACE": "faults", "EASYPARCEL_API": "open",
               "EASYPARCEL_BASE_URL": self.sim.url if self.sim else "http://127.0.0.1:9",
               "EASYPARCEL_CLIENT_ID": "demo-client", "EASYPARCEL_CLIENT_SECRET": "demo-secret",
               "TRACKING_LOG_LEVEL": "info", "TRACKING_ADMIN_TOKENS": ADMIN_TOKEN,
               "TRACKING_VIEWER_TOKENS": VIEWER_TOKEN, "TRACKING_INTERNAL_API_KEY": INTERNAL_KEY,
               "TRACKING_WEBHOOK_SECRET": WEBHOOK_SECRET, "TRACKING_CUSTOMER_TOKEN_SECRET": CUSTOMER_SECRET,
               "TRACKING_EMAIL_HASH_KEY": EMAIL_HASH_KEY, "TRACKING_INTERNAL_NETWORKS": "",
               "TRACKING_JOB_BATCH_SIZE": "10", "TRACKING_MAX_CONCURRENT": "4", "TRACKING_JITTER_PERCENT": "0",
               "TRACKING_RETRY_DELAYS": "1,2,4", "TRACKING_MAINTENANCE_CRON": "* * * * *",
               "TRACKING_BROKER_URL": self.rabbit_url if self.broker == "rabbitmq" else "",
               "TRACKING_GUEST_RATE_LIMIT": "100000", "TRACKING_CUSTOMER_RATE_LIMIT": "100000",
               "dramatiq_restart_delay": "1000"}
        env.update(self.extra_env)
        return env

    def config(self) -> Any:
        import settings

        return settings.load(self.env, dotenv_path=None)

    def start(self, *, workers: int = 1, scheduler: bool = True) -> Deployment:
        from sim.faults import FaultSettings
        from sim.server import SimulatorConfig, SimulatorServer

        self.sim = SimulatorServer(SimulatorConfig(speed=0, epoch=self.epoch, seed=SEED,
                                                   faults=self.sim_faults or FaultSettings())).start()
        migrate = start_cli(self.env, self.log, "migrate")
        assert migrate.wait(timeout=120) == 0, f"migrate failed (log: {self.log})"
        self.start_serve()
        for _ in range(workers):
            self.start_worker()
        if scheduler:
            self.start_scheduler()
        self.boot_here()
        return self

    def start_process(self, kind: str, *args: str) -> subprocess.Popen:
        process = start_cli(self.env, self.log, *args)
        self.processes[kind].append(process)
        return process

    def start_serve(self) -> None:
        """`trackcache serve` on a spare port; another port if one was taken meanwhile (other
        test sessions pick ports on this machine too)."""
        for _ in range(3):
            server = self.start_process("serve", "serve", "--port", str(self.port), *self.serve_args)
            wait_until(lambda server=server: self.is_ready() or server.poll() is not None, timeout=90,
                       what=f"the server to be ready (log: {self.log})")
            if server.poll() is None:
                return
            self.processes["serve"].remove(server)
            self.port = free_port()
            self.base_url = f"http://127.0.0.1:{self.port}"
        raise AssertionError(f"the server did not start (log: {self.log})")

    def start_worker(self, threads: int = 4) -> subprocess.Popen:
        return self.start_process("worker", "worker", "--processes", "1", "--threads", str(threads))

    def start_scheduler(self) -> subprocess.Popen:
        return self.start_process("scheduler", "scheduler")

    def supervise(self, kind: str) -> Callable[[], int]:
        """Restart `kind` processes that end, as a supervisor would (systemd, a restart policy),
        from a background thread; returns a function that stops supervising and gives the count."""
        stopping = threading.Event()
        restarts = [0]

        def loop() -> None:
            while not stopping.wait(1.0):
                for process in list(self.processes[kind]):
                    if process.poll() is not None:
                        self.processes[kind].remove(process)
                        self.start_process(kind, kind)
                        restarts[0] += 1

        thread = threading.Thread(target=loop, name=f"supervise-{kind}", daemon=True)
        thread.start()

        def finish() -> int:
            stopping.set()
            thread.join()
            return restarts[0]

        return finish

    def kill(self, kind: str, index: int = 0) -> None:
        """SIGKILL one process and every process under it, deepest first: `trackcache worker` is a
        supervisor whose Dramatiq processes run in sessions of their own and would only get a
        SIGTERM (a graceful stop that finishes their messages) if the supervisor alone died."""
        process = self.processes[kind].pop(index)
        for pid in reversed(descendants(process.pid)):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        stop(process, signal.SIGKILL)

    def alive(self, kind: str) -> list[subprocess.Popen]:
        return [p for p in self.processes[kind] if p.poll() is None]

    def is_ready(self) -> bool:
        try:
            return requests.get(f"{self.base_url}/readyz", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def boot_here(self) -> None:
        """Connect this (test) process to the deployment's database for registration and audits."""
        import models
        import settings
        from pipeline import boot

        self.previous_settings = settings.get()  # boot installs the deployment's settings globally
        self.booted = boot.boot(self.config(), max_connections=4)
        models.database.connect(reuse_if_open=True)

    def close(self) -> None:
        for kind in ("scheduler", "worker", "serve"):
            for process in self.processes[kind]:
                stop(process, timeout=15)
        if getattr(self, "booted", None) is not None:
            # Give the test session back its own settings, runtime and broker.
            import settings
            from pipeline import boot, runtime
            from pipeline import broker as broker_module

            boot.stop(self.booted)
            self.booted = None
            runtime.install(None)
            settings.use(self.previous_settings)
            broker_module.install(broker_module.build_broker(self.previous_settings))
        if self.sim is not None:
            self.sim.stop()
        self.redis.stop()
        self.pg.destroy()

    # --- shipments ------------------------------------------------------------------------------

    def register(self, numbers: Sequence[str], *, polled: bool) -> None:
        """Register shipments; polled ones are due now, the others not for a year (webhooks only)."""
        from pipeline import service
        from pipeline.registration import ShipmentRegistration

        first_poll = None if polled else datetime.now(UTC) + timedelta(days=365)
        service.register_many([(ShipmentRegistration(f"ORD-{n}", f"{n.lower()}@example.com", n, "easyparcel"),
                                first_poll) for n in numbers])

    def webhooks_for(self, numbers: Sequence[str]) -> list[dict[str, Any]]:
        """One webhook per event visible at the epoch (the simulator's own rendering), in order."""
        from sim import journeys

        payloads = []
        for number in numbers:
            journey = journeys.build_journey(number, SEED, self.epoch)
            for index in range(len(journeys.visible_events(journey, self.epoch))):
                payloads.append(journeys.render_webhook(journey, index, SEED))
        return payloads

    @property
    def webhook_url(self) -> str:
        return f"{self.base_url}/api/webhooks/easyparcel/{WEBHOOK_SECRET}"

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


class WebhookLoad(threading.Thread):
    """The courier's side: POST each payload; anything but a 2xx (or no answer) is retried every
    `retry_interval` seconds until acknowledged, as couriers do. `rate` bodies per second."""

    def __init__(self, url: str, payloads: Sequence[dict[str, Any]], *, rate: float = 50.0,
                 retry_interval: float = 1.0, give_up_after: float = 600.0) -> None:
        super().__init__(name="webhook-load", daemon=True)
        self.url = url
        self.payloads = list(payloads)
        self.rate = rate
        self.retry_interval = retry_interval
        self.give_up_after = give_up_after
        self.statuses: Counter[str] = Counter()
        self.accepted: set[str] = set()
        self.attempts = 0
        self.accepted_at: dict[str, float] = {}
        self.unanswered: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    def run(self) -> None:
        session = requests.Session()
        pending: list[tuple[float, dict[str, Any]]] = []
        interval = 1.0 / self.rate
        started = time.monotonic()
        queue = list(self.payloads)
        while queue or pending:
            now = time.monotonic()
            if now - started > self.give_up_after:
                self.unanswered = [p for _, p in pending] + queue
                break
            due = [item for item in pending if item[0] <= now]
            if due:
                item = due[0]
                pending.remove(item)
                payload = item[1]
            elif queue:
                payload = queue.pop(0)
            else:
                time.sleep(0.05)
                continue
            if not self._send(session, payload):
                pending.append((time.monotonic() + self.retry_interval, payload))
            time.sleep(interval)
        session.close()

    def _send(self, session: requests.Session, payload: dict[str, Any]) -> bool:
        self.attempts += 1
        try:
            response = session.post(self.url, data=json.dumps(payload), timeout=(2, 10),
                                    headers={"content-type": "application/json"})
            status = str(response.status_code)
        except requests.RequestException as error:
            status = type(error).__name__
        with self.lock:
            self.statuses[status] += 1
            if status.startswith("2"):
                self.accepted.add(payload["uuid"])
                self.accepted_at.setdefault(payload["uuid"], time.monotonic())
                return True
        return False


# --- audit ------------------------------------------------------------------------------------------

@dataclass
class Audit:
    """What the scenario proved, for the assertions and the RELIABILITY.md table."""

    sent: int = 0  # distinct updates sent (webhook events, due polls)
    accepted: int = 0
    persisted: int = 0
    lost: int = 0
    duplicated: int = 0
    regressions: int = 0
    wrong_final: int = 0
    inbox_unprocessed: int = 0
    problems: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "problems"} | {"problems": self.problems[:10]}


def _event_key(time_iso: str, text: str) -> tuple[str, str]:
    return (time_iso[:19], " ".join(text.split()).lower())


def expected_final_status(deployment: Deployment, number: str) -> str:
    """The status the product must end with: the simulator's whole visible history for this
    number, parsed and merged by the product's pure core."""
    from pipeline.couriers import build_courier
    from pipeline.merge import ShipmentState, merge_updates

    payloads = deployment.webhooks_for([number])
    courier = getattr(deployment, "_courier", None) or build_courier("easyparcel", deployment.config())
    deployment._courier = courier  # type: ignore[attr-defined]
    updates = [u for p in payloads for u in courier.parse_webhook(json.dumps(p)).updates]
    return merge_updates(ShipmentState(), updates, max_events=500).state.status


def audit(deployment: Deployment, *, webhook_numbers: Sequence[str] = (), polled_numbers: Sequence[str] = (),
          load: WebhookLoad | None = None) -> Audit:
    """Compare the database with what was sent. An accepted webhook is persisted when the event it
    announces is stored; a due poll when every event the simulator shows is stored. Nothing may be
    stored twice, no status may leave a final one, the final status must be the ground truth's,
    and every accepted webhook's inbox row must end processed."""
    import models
    from models import TrackingCache, TrackingUpdateLog, WebhookInbox
    from sim import journeys

    result = Audit()
    models.database.connect(reuse_if_open=True)
    numbers = list(dict.fromkeys(list(webhook_numbers) + list(polled_numbers)))
    rows = {row.courier_tracking_number: row for row in
            TrackingCache.select().where(TrackingCache.courier_tracking_number.in_(numbers))} if numbers else {}
    stored = {number: [_event_key(e["time"], e.get("raw_text") or "") for e in row.tracking_events]
              for number, row in rows.items()}
    journey_of = {number: journeys.build_journey(number, SEED, deployment.epoch) for number in numbers}
    if load is not None:
        accepted = set(load.accepted)
        newest: dict[str, tuple[str, tuple[str, str]]] = {}
        for payload in load.payloads:
            event = journey_of[payload["awb_number"]].events[len(payload["status_log"]) - 1]
            newest[payload["uuid"]] = (payload["awb_number"], _event_key(event.time.strftime("%Y-%m-%dT%H:%M:%S"),
                                                                         event.text))
        result.sent += len(newest)
        result.accepted += len(accepted)
        for uid in accepted:
            number, key = newest[uid]
            if key in stored.get(number, ()):
                result.persisted += 1
            else:
                result.lost += 1
        if result.lost:
            result.problems.append(f"{result.lost} accepted webhooks' events are not stored")
        inbox = {row.external_event_id: row.status for row in
                 WebhookInbox.select(WebhookInbox.external_event_id, WebhookInbox.status)
                 .where(WebhookInbox.external_event_id.in_(sorted(accepted)))} if accepted else {}
        missing = [uid for uid in accepted if uid not in inbox]
        unprocessed = [uid for uid, status in inbox.items() if status != models.INBOX_PROCESSED]
        result.inbox_unprocessed = len(unprocessed) + len(missing)
        if missing:
            result.problems.append(f"{len(missing)} accepted webhooks have no inbox row, e.g. {missing[:3]}")
        if unprocessed:
            states = Counter(inbox[uid] for uid in unprocessed)
            result.problems.append(f"{len(unprocessed)} accepted webhooks not processed: {dict(states)}")
    for number in polled_numbers:
        result.sent += 1
        result.accepted += 1
        visible = journeys.visible_events(journey_of[number], deployment.epoch)
        want = {_event_key(e.time.strftime("%Y-%m-%dT%H:%M:%S"), e.text) for e in visible}
        if want <= set(stored.get(number, ())):
            result.persisted += 1
        else:
            result.lost += 1
            result.problems.append(f"{number}: {len(want - set(stored.get(number, ())))} polled events missing")
    for number, keys in stored.items():
        if len(keys) != len(set(keys)):
            result.duplicated += len(keys) - len(set(keys))
            result.problems.append(f"{number}: {len(keys) - len(set(keys))} events stored twice")
        complete = set(keys) >= {_event_key(e.time.strftime("%Y-%m-%dT%H:%M:%S"), e.text)
                                 for e in journeys.visible_events(journey_of[number], deployment.epoch)}
        if complete:
            want_status = expected_final_status(deployment, number)
            if rows[number].current_status != want_status:
                result.wrong_final += 1
                result.problems.append(f"{number}: status {rows[number].current_status}, expected {want_status}")
    ids = [row.id for row in rows.values()]
    if ids:
        for log in (TrackingUpdateLog.select(TrackingUpdateLog.tracking_cache, TrackingUpdateLog.previous_status,
                                             TrackingUpdateLog.new_status)
                    .where(TrackingUpdateLog.tracking_cache.in_(ids)
                           & (TrackingUpdateLog.status_changed == True))):
            if log.previous_status in FINAL and log.new_status not in FINAL:
                result.regressions += 1
                result.problems.append(f"shipment {log.tracking_cache_id}: {log.previous_status} -> {log.new_status}")
    return result


def wait_for_audit(deployment: Deployment, *, timeout: float, what: str,
                   check: Callable[[Audit], bool] | None = None, **kwargs: Any) -> tuple[Audit, float]:
    """Audit until clean (or `check` holds); returns the audit and the seconds it took."""
    started = time.monotonic()
    last: list[Audit] = []

    def clean() -> bool:
        result = audit(deployment, **kwargs)
        last[:] = [result]
        if check is not None:
            return check(result)
        return (result.lost == 0 and result.inbox_unprocessed == 0 and result.wrong_final == 0
                and result.persisted == result.accepted)

    try:
        wait_until(clean, timeout=timeout, what=what, interval=2.0)
    except AssertionError as error:
        raise AssertionError(f"{error}: {last[0].summary() if last else 'no audit'} "
                             f"(log: {deployment.log})") from None
    return last[0], time.monotonic() - started


def sleep_past_next_minute(margin: float = 10.0) -> None:
    """Sleep until `margin` seconds after the next full minute (after the scheduler's next sweep)."""
    now = time.time()
    time.sleep(60 - now % 60 + margin)


def shuffled_with_duplicates(payloads: Sequence[dict[str, Any]], seed: int) -> list[dict[str, Any]]:
    """Each body 1-3 times, all in shuffled order (the courier's duplicates and disorder)."""
    rng = random.Random(seed)
    copies = [p for p in payloads for _ in range(rng.randint(1, 3))]
    rng.shuffle(copies)
    return copies
