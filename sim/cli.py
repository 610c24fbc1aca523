"""`trackcache sim`: run the courier simulator in the foreground. Options are read as text and
checked here, so a bad one ends in one line on stderr and a non-zero exit, never a traceback."""
from __future__ import annotations

import argparse
import logging
import sys
from datetime import UTC, datetime

from sim.faults import FaultSettings, parse_latency, validate_faults
from sim.journeys import OPENAPI_VERSIONS
from sim.server import SimulatorConfig, bind_socket, uvicorn_server

EXIT_USAGE = 2
EXIT_UNAVAILABLE = 4
DEFAULT_PORT = 8089


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the simulator's options to a (sub)parser."""
    defaults = SimulatorConfig()
    server = parser.add_argument_group("server")
    server.add_argument("--host", default=defaults.host, help="address to listen on (default %(default)s)")
    server.add_argument("--port", default=str(DEFAULT_PORT), help="port to listen on, 0 for any free port "
                        "(default %(default)s)")
    server.add_argument("--log-level", default=defaults.log_level,
                        help="uvicorn log level: critical, error, warning, info, debug (default %(default)s)")

    journeys = parser.add_argument_group("journeys")
    journeys.add_argument("--seed", default=defaults.seed,
                          help="seed of every journey and random fault (default %(default)s)")
    journeys.add_argument("--speed", default=f"{defaults.speed:g}",
                          help="simulated seconds per real second; 1 is real time, 0 stops the clock "
                               "(default %(default)s: a day in two minutes)")
    journeys.add_argument("--epoch", default=None,
                          help="simulated time at start, ISO 8601 (e.g. 2026-03-01T00:00:00Z); default: now")
    journeys.add_argument("--flaky-rate", default=f"{defaults.flaky_omit_rate:g}",
                          help="share of responses that leave out an EPFLK… number (default %(default)s)")

    auth = parser.add_argument_group("credentials")
    auth.add_argument("--client-id", default=defaults.client_id, help="OAuth client id (default %(default)s)")
    auth.add_argument("--client-secret", default=defaults.client_secret,
                      help="OAuth client secret (default %(default)s)")
    auth.add_argument("--api-key", default=defaults.api_key, help="legacy API key (default %(default)s)")
    auth.add_argument("--token-ttl", default=str(defaults.token_ttl_seconds),
                      help="access token lifetime in seconds (default %(default)s)")

    faults = parser.add_argument_group("faults (also changeable at runtime: POST /_sim/faults)")
    faults.add_argument("--latency", default="0", help="added latency per tracking call, SECONDS or MIN-MAX "
                        "(e.g. 2-5, the real API's); default none")
    faults.add_argument("--error-rate", default="0", help="share of tracking calls answered with a 5xx")
    faults.add_argument("--error-status", default="500", help="the 5xx status of injected errors (default 500)")
    faults.add_argument("--timeout-rate", default="0", help="share of tracking calls that hang, then answer 504")
    faults.add_argument("--timeout-seconds", default="35",
                        help="how long a hang lasts; keep it above the client's timeout (default 35, max 120)")
    faults.add_argument("--rate-limit-rate", default="0", help="share of tracking calls answered 429")
    faults.add_argument("--retry-after", default="5", help="Retry-After seconds on injected 429s (default 5)")
    faults.add_argument("--daily-quota", default=None,
                        help="tracking calls allowed per UTC day, then 429 until midnight; default unlimited")
    faults.add_argument("--quota-period", default="86400", metavar="SECONDS",
                        help="the quota's window instead of a UTC day, dividing a day (default 86400)")
    faults.add_argument("--quota-no-retry-after", action="store_true",
                        help="answer a spent quota with a bare 429, without Retry-After (as EasyParcel documents)")

    hooks = parser.add_argument_group("webhooks")
    hooks.add_argument("--webhook-url", default=None,
                       help="POST shipment.tracking.update webhooks for new events to this URL")
    hooks.add_argument("--webhook-duplicates", default="0", metavar="RATE",
                       help="probability that a webhook is delivered twice (default 0)")
    hooks.add_argument("--webhook-shuffle", action="store_true",
                       help="deliver each batch of webhooks out of order")
    hooks.add_argument("--webhook-api-version", default=defaults.webhook_api_version,
                       help=f"code table of webhook status codes: {', '.join(OPENAPI_VERSIONS)} "
                            "(default %(default)s)")


def _float(name: str, text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{name} must be a number, got {text!r}") from None


def _int(name: str, text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{name} must be a whole number, got {text!r}") from None


def _epoch(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"--epoch must be an ISO 8601 time like 2026-03-01T00:00:00Z, got {text!r}") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def config_from_args(args: argparse.Namespace) -> SimulatorConfig:
    """The simulator configuration the options describe.

    Raises:
        ValueError: the first bad option, named.
    """
    latency_min, latency_max = parse_latency(args.latency)
    quota = None if args.daily_quota in (None, "") else _int("--daily-quota", args.daily_quota)
    faults = validate_faults(FaultSettings(
        latency_min=latency_min,
        latency_max=latency_max,
        error_rate=_float("--error-rate", args.error_rate),
        error_status=_int("--error-status", args.error_status),
        timeout_rate=_float("--timeout-rate", args.timeout_rate),
        timeout_seconds=_float("--timeout-seconds", args.timeout_seconds),
        rate_limit_rate=_float("--rate-limit-rate", args.rate_limit_rate),
        retry_after_seconds=_int("--retry-after", args.retry_after),
        daily_quota=quota,
        quota_period_seconds=_int("--quota-period", args.quota_period),
        quota_retry_after=not args.quota_no_retry_after,
    ))
    return SimulatorConfig(
        host=args.host,
        port=_int("--port", args.port),
        seed=args.seed,
        speed=_float("--speed", args.speed),
        epoch=_epoch(args.epoch),
        client_id=args.client_id,
        client_secret=args.client_secret,
        api_key=args.api_key,
        token_ttl_seconds=_int("--token-ttl", args.token_ttl),
        faults=faults,
        flaky_omit_rate=_float("--flaky-rate", args.flaky_rate),
        webhook_url=args.webhook_url or None,
        webhook_duplicates=_float("--webhook-duplicates", args.webhook_duplicates),
        webhook_shuffle=bool(args.webhook_shuffle),
        webhook_api_version=args.webhook_api_version,
        log_level=args.log_level,
    )


def run(args: argparse.Namespace) -> int:
    """Serve until interrupted; 0 on a clean stop, 2 for bad options, 4 if the port is taken."""
    try:
        config = config_from_args(args)
    except ValueError as error:
        print(f"trackcache sim: {error}", file=sys.stderr)
        return EXIT_USAGE
    try:
        sock = bind_socket(config.host, config.port)
    except OSError as error:
        print(f"trackcache sim: cannot listen on {config.host}:{config.port}: {error.strerror or error}",
              file=sys.stderr)
        return EXIT_UNAVAILABLE
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    port = sock.getsockname()[1]
    print(f"courier simulator on http://{config.host}:{port} (speed {config.speed:g}x, seed {config.seed!r}; "
          f"client {config.client_id}, legacy key set; stats at /_sim/stats)", flush=True)
    try:
        uvicorn_server(config).run(sockets=[sock])
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
    return 0
