"""The embedded all-in-one mode (`trackcache dev`): the web app, an in-process broker with worker
threads, the scheduler, the courier simulator (its webhooks pointed at the app), an SQLite
database migrated on start and demo data, in one process. The same actors and routes as
production; only the broker, database and scheduler thread are the embedded ones."""
from __future__ import annotations

import dataclasses
import logging
import multiprocessing
import secrets
import socket
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import requests

import settings as settings_module
from pipeline.registration import ShipmentRegistration
from settings import Secret, token_digest

logger = logging.getLogger("trackcache.dev")


class DevError(Exception):
    """The embedded mode cannot start (a port in use, a database it cannot open)."""


@dataclass(frozen=True)
class DevOptions:
    host: str = "127.0.0.1"
    port: int = 8000
    database: str = "trackcache.db"
    sim_port: int = 8100
    speed: float = 1800.0
    demo_orders: int = 36
    threads: int = 4
    smtp_port: int = 8025
    history: int = 3000


@dataclass(frozen=True)
class DevSession:
    """What the banner tells the user."""

    config: settings_module.Settings
    admin_token: str
    viewer_token: str
    app_url: str
    sim_url: str
    demo: list[ShipmentRegistration]


def require_free_port(host: str, port: int, what: str, option: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            raise DevError(f"port {port} on {host} is in use, so the {what} cannot start there: pass {option} "
                           "with a free port") from None


def stable_dev_key(database: Path) -> str:
    """The email-hash key of a dev database, kept beside it so guest lookups survive restarts."""
    key_file = database.with_name(database.name + ".devkey")
    if key_file.exists():
        return key_file.read_text(encoding="utf-8").strip()
    key = secrets.token_urlsafe(32)
    key_file.write_text(key, encoding="utf-8")
    return key


def stable_contact_key(database: Path) -> str:
    """The address-encryption key of a dev database, kept beside it so stored addresses stay readable."""
    from pipeline.contacts import new_key

    key_file = database.with_name(database.name + ".contactkey")
    if key_file.exists():
        return key_file.read_text(encoding="utf-8").strip()
    key = new_key()
    key_file.write_text(key, encoding="utf-8")
    return key


def dev_settings(config: settings_module.Settings, options: DevOptions, *, admin_token: str,
                 viewer_token: str) -> settings_module.Settings:
    """The process's settings turned into the embedded mode's: SQLite, no Redis, the simulator as
    the courier, and session secrets where none are configured."""
    database = Path(options.database).resolve()
    database.parent.mkdir(parents=True, exist_ok=True)
    sim_url = f"http://{options.host}:{options.sim_port}"

    def secret_or_new(current: Secret) -> Secret:
        return current if current else Secret(secrets.token_urlsafe(24))

    return dataclasses.replace(
        config,
        database_url=f"sqlite:///{database}",
        redis_url="",
        admin_tokens=(token_digest(admin_token),) + config.admin_tokens,
        viewer_tokens=(token_digest(viewer_token),) + config.viewer_tokens,
        internal_api_key=secret_or_new(config.internal_api_key),
        webhook_secret=secret_or_new(config.webhook_secret),
        customer_token_secret=secret_or_new(config.customer_token_secret),
        email_hash_key=config.email_hash_key or Secret(stable_dev_key(database)),
        easyparcel_api="open",
        easyparcel_base_url=sim_url,
        easyparcel_client_id="demo-client",
        easyparcel_client_secret=Secret("demo-secret"),
        easyparcel_api_key=Secret("demo-api-key"),
        # Notifications: emails go to the in-process SMTP sink, webhooks may go to http:// receivers.
        smtp_url=config.smtp_url or Secret(f"smtp://{options.host}:{options.smtp_port}"),
        contact_keys=config.contact_keys or Secret(stable_contact_key(database)),
        email_from=config.email_from or "Demo shop <tracking@shop.example>",
        public_url=config.public_url or f"http://{options.host}:{options.port}",
        notify_allow_http=True,
    )


def demo_registrations(count: int) -> list[ShipmentRegistration]:
    """Demo orders spread over every simulator scenario; every third order belongs to a signed-in
    customer and every fifth has a second parcel."""
    from sim.journeys import SCENARIOS

    prefixes = [scenario.prefix or "EPMY" for scenario in SCENARIOS]
    demo = []
    for index in range(count):
        order_id = f"DEMO-{1001 + index}"
        email = f"customer{1001 + index}@example.com"
        customer_id = f"cust-{1001 + index}" if index % 3 == 0 else None
        prefix = prefixes[index % len(prefixes)]
        # Every second demo customer asked for delivery emails, every fourth in Malay.
        demo.append(ShipmentRegistration(order_id=order_id, customer_email=email,
                                         tracking_number=f"{prefix}{700000 + index:06d}", courier="easyparcel",
                                         customer_id=customer_id, notify_email=index % 2 == 0,
                                         locale="ms" if index % 4 == 2 else None))
        if index % 5 == 4:
            demo.append(ShipmentRegistration(order_id=order_id, customer_email=email,
                                             tracking_number=f"EPMY{800000 + index:06d}", courier="easyparcel",
                                             customer_id=customer_id))
    return demo


def create_demo_data(count: int, sim_url: str) -> list[ShipmentRegistration]:
    """Register the demo orders (idempotently) and tell the simulator to send their webhooks."""
    from pipeline import service

    demo = demo_registrations(count)
    service.register_many([(registration, None) for registration in demo])
    numbers = sorted({registration.tracking_number for registration in demo})
    response = requests.post(f"{sim_url}/_sim/shipments", json={"awb_numbers": numbers}, timeout=10)
    response.raise_for_status()
    return demo


# --- delivery history (issue 16): finished journeys so estimates and analytics have content at once ---

HISTORY_ORDER_PREFIX = "HIST-"
HISTORY_EMAIL = "history@example.com"
HISTORY_DAYS = 120


def seed_history(count: int, *, seed: str = "trackcache-history") -> int:
    """Store `count` simulated finished journeys of the last 120 days (orders HIST-…, inactive
    shipments and their journey facts), then refresh every estimate. Skipped when history exists;
    returns the journeys stored."""
    from datetime import UTC, datetime

    import models
    from models import JourneyFact, Order, TrackingCache
    from pipeline import estimating, runtime, service
    from pipeline import status as statuses

    if Order.select().where(Order.id.startswith(HISTORY_ORDER_PREFIX)).exists():
        return 0
    rt = runtime.current()
    config = estimating.config_from(rt.config)
    # The journeys are made in a separate (daemonic: Ctrl-C does not wait for it) process: seconds
    # of pure Python that would otherwise hold this process's GIL while the app is answering.
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    maker = context.Process(target=send_simulated_history, args=(sender, count, seed, datetime.now(UTC), config),
                            name="history-maker", daemon=True)
    maker.start()
    sender.close()
    shipments, firsts = receiver.recv()
    maker.join()
    email_hash = models.hash_email(HISTORY_EMAIL, rt.config.email_hash_key.reveal())
    for start in range(0, len(shipments), 200):
        chunk = list(zip(shipments[start:start + 200], firsts[start:start + 200]))
        with models.write_transaction():
            Order.insert_many([{"id": f"{HISTORY_ORDER_PREFIX}{s.tracking_number}", "customer_email_hash": email_hash,
                                "created_at": s.state.events[-1].time} for s, _ in chunk]).execute()
            TrackingCache.insert_many([{
                "order": f"{HISTORY_ORDER_PREFIX}{s.tracking_number}", "courier_tracking_number": s.tracking_number,
                "courier_service": s.fact.service, "current_status": s.state.status,
                "last_status_update": s.fact.finished_at, "tracking_events": s.events,
                "actual_delivery": s.state.delivered_at, "delivery_location": s.state.delivery_location,
                "last_api_update": s.fact.finished_at, "next_update_due": models.NEVER, "update_frequency_minutes": 0,
                "is_delivered": s.state.status == statuses.DELIVERED, "is_failed": s.state.status == statuses.RETURNED,
                "is_active": False, "last_event_at": s.state.last_event_at, "created_at": s.state.events[-1].time,
                "updated_at": s.fact.finished_at,
                "first_estimated_delivery": config.calendar.midday(first) if first else None,
            } for s, first in chunk]).execute()
            ids = dict(TrackingCache.select(TrackingCache.courier_tracking_number, TrackingCache.id)
                       .where(TrackingCache.courier_tracking_number.in_([s.tracking_number for s, _ in chunk]))
                       .tuples())
            JourneyFact.insert_many([estimating.fact_row(
                s.fact, shipment_id=ids[s.tracking_number],
                first_estimate=config.calendar.midday(first) if first else None) for s, first in chunk]).execute()
        time.sleep(0.05)  # let the pipeline's and the app's writes in between (one SQLite writer at a time)
    estimating.forget_statistics()
    service.run_estimates_job()
    logger.info("stored %d finished journeys of simulated delivery history", len(shipments))
    return len(shipments)


def simulated_history(count: int, seed: str, end: Any, config: Any) -> tuple[list[Any], list[Any]]:
    """The simulated finished journeys and the first estimate each would have had (run in a
    separate process by `seed_history`)."""
    from pipeline import estimates
    from sim.history import finished_shipments

    shipments = finished_shipments(count, seed, end=end, days=HISTORY_DAYS, calendar=config.calendar)
    return shipments, estimates.first_estimates([s.fact for s in shipments], config.calendar, config.policy)


def send_simulated_history(sender: Any, count: int, seed: str, end: Any, config: Any) -> None:
    """`simulated_history` in a child process, its result sent back through a pipe."""
    sender.send(simulated_history(count, seed, end, config))
    sender.close()


def start_history_seeding(count: int) -> threading.Thread:
    """Seed the history in the background, so the app answers while it is written."""
    def seed() -> None:
        try:
            seed_history(count)
        except Exception:  # the demo still works without history; say why there is none
            logger.exception("could not store the simulated delivery history")

    thread = threading.Thread(target=seed, name="history-seed", daemon=True)
    thread.start()
    return thread


def banner(session: DevSession, out: TextIO) -> None:
    first = next((r for r in session.demo if r.tracking_number.startswith("EPOFD")), None) or (
        session.demo[0] if session.demo else None)
    lines = [
        "",
        "trackcache is running (embedded mode: SQLite, in-process broker and scheduler, courier simulator)",
        f"  tracking page     {session.app_url}/track",
        f"  admin dashboard   {session.app_url}/admin",
        f"  API               {session.app_url}/openapi.json",
        f"  admin token       {session.admin_token}",
        f"  viewer token      {session.viewer_token}",
        f"  simulator         {session.sim_url}  (stats: {session.sim_url}/_sim/stats)",
        f"  database          {session.config.database_url}",
        f"  caught emails     {session.app_url}/admin/dev/emails  (SMTP sink {session.config.smtp_url.reveal()})",
    ]
    if first is not None:
        lines += [
            f"  try as a guest    order {first.order_id}, email {first.customer_email}",
            f"                    {session.app_url}/api/customer/track-order?order_id={first.order_id}"
            f"&email={first.customer_email}",
        ]
    lines += ["Press Ctrl-C to stop.", ""]
    out.write("\n".join(lines) + "\n")
    out.flush()


def banner_once_listening(server: Any, session: DevSession, out: TextIO) -> None:
    """Print the banner once uvicorn listens (`server.started`), so that its addresses answer as
    soon as they are shown; nothing if the server stops first."""
    while not server.started:
        if server.should_exit:
            return
        time.sleep(0.02)
    banner(session, out)


def run(config: settings_module.Settings, options: DevOptions, *, out: TextIO = sys.stdout) -> int:
    """Start everything, serve until interrupted, then shut down cleanly.

    Raises:
        DevError: a port is taken or the database cannot be opened.
    """
    import uvicorn

    from pipeline import boot, scheduler, service
    from sim.server import SimulatorConfig, SimulatorServer

    logging.basicConfig(level=getattr(logging, config.effective_log_level.upper()),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    require_free_port(options.host, options.port, "web app", "--port")
    require_free_port(options.host, options.sim_port, "courier simulator", "--sim-port")
    if not config.smtp_url:
        require_free_port(options.host, options.smtp_port, "development SMTP sink", "--smtp-port")
    admin_token, viewer_token = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    dev_config = dev_settings(config, options, admin_token=admin_token, viewer_token=viewer_token)
    app_url = f"http://{options.host}:{options.port}"
    webhook_url = f"{app_url}/api/webhooks/easyparcel/{dev_config.webhook_secret.reveal()}"
    sim = SimulatorServer(SimulatorConfig(host=options.host, port=options.sim_port, speed=options.speed,
                                          webhook_url=webhook_url)).start()
    from sim import mail_sink

    sink = mail_sink.MailSink(options.host, options.smtp_port) if not config.smtp_url else None
    booted = None
    sweeps = None
    try:
        if sink is not None:
            mail_sink.install(sink.start())
        try:
            booted = boot.boot(dev_config, migrate=True)
        except Exception as error:  # the database file cannot be created or opened
            raise DevError(f"cannot open the database {dev_config.database_url}: {error}") from None
        boot.start_embedded_worker(booted, threads=options.threads)
        from pipeline.actors import PERIODIC_ACTORS

        sweeps = scheduler.EmbeddedScheduler(PERIODIC_ACTORS)
        sweeps.start()
        demo = create_demo_data(options.demo_orders, sim.url) if options.demo_orders else []
        service.run_poll_sweep()
        if options.history:
            start_history_seeding(options.history)
        from web.app import create_app

        app = create_app(dev_config, boot=False)
        from web.auth import uvicorn_proxy_options

        server = uvicorn.Server(uvicorn.Config(app, host=options.host, port=options.port, log_level="warning",
                                               lifespan="on", **uvicorn_proxy_options(dev_config.trusted_proxies)))
        session = DevSession(dev_config, admin_token, viewer_token, app_url, sim.url, demo)
        threading.Thread(target=banner_once_listening, args=(server, session, out), name="dev-banner",
                         daemon=True).start()
        try:
            server.run()
        except KeyboardInterrupt:  # uvicorn re-raises the Ctrl-C it handled, once it has shut down
            pass
        return 0
    finally:
        sim.stop()  # first, so that no webhook arrives at a stopped app
        if sink is not None:
            mail_sink.install(None)
            sink.stop()
        if sweeps is not None:
            sweeps.stop()
        if booted is not None:
            boot.stop(booted)
        out.write("trackcache stopped.\n")
        out.flush()
