"""The simulator's Starlette app: EasyParcel's OAuth token endpoint, Open API tracking and legacy
EPTrackingBulk endpoints over deterministic journeys, with injected faults, plus a small control
API under /_sim (stats, faults, reset, shipments for webhooks, clock)."""
from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
import re
import secrets
import threading
import time
import uuid
from collections import Counter, OrderedDict
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

import anyio.to_thread
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from sim import journeys
from sim.faults import ERROR, NONE, QUOTA_EXCEEDED, RATE_LIMITED, TIMEOUT, FaultDecision, FaultInjector
from sim.webhooks import WebhookSender, plan_deliveries

if TYPE_CHECKING:
    from sim.server import SimulatorConfig

logger = logging.getLogger(__name__)

OPENAPI_BATCH_LIMIT = 100
LEGACY_BATCH_LIMIT = 300
LEGACY_KEY_MAX_LENGTH = 25  # the legacy doc's `api` string(25)
JOURNEY_CACHE_SIZE = 20_000
TOKEN_STORE_SIZE = 10_000
_BULK_KEY = re.compile(r"^bulk\[(\d+)\]\[awb_no\]$")


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _iso_ms(moment: datetime) -> str:
    utc = moment.astimezone(UTC)
    return f"{utc:%Y-%m-%dT%H:%M:%S}.{utc.microsecond // 1000:03d}Z"


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


# --- the bodies EasyParcel answers with ----------------------------------------------------------

def openapi_message_error(status: int, message: str) -> dict[str, Any]:
    """The "Response Format Standards" error body (openapi_auth_error_message_form.json)."""
    return {"status_code": status, "message": message, "data": None}


def openapi_named_auth_error(name: str) -> dict[str, Any]:
    """The "Authentication Errors" body (openapi_auth_error_invalid_token.json)."""
    return {"error": {"statusCode": 401, "status": 401, "code": 401, "name": name}, "status_code": 401}


def openapi_validation_error(*errors: str) -> dict[str, Any]:
    """The validation envelope (openapi_validation_error.json)."""
    return {"status_code": 400, "message": "Validation error", "data": {"errors": list(errors)}}


_STATUS_PHRASES = {429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway",
                   503: "Service Temporarily Unavailable", 504: "Gateway Time-out"}


def _gateway_page(status: int) -> str:
    phrase = _STATUS_PHRASES.get(status, "Error")
    return (f"<html>\r\n<head><title>{status} {phrase}</title></head>\r\n<body>\r\n"
            f"<center><h1>{status} {phrase}</h1></center>\r\n</body>\r\n</html>\r\n")


def validate_awb_numbers(body: Any, limit: int | None = OPENAPI_BATCH_LIMIT) -> tuple[list[str], str | None]:
    """The requested tracking numbers (deduplicated, in order) and None, or [] and the validation
    message EasyParcel would give."""
    numbers = body.get("awb_numbers") if isinstance(body, dict) else None
    if numbers is None or numbers == [] or numbers == "":
        return [], "The awb numbers field is required"
    if not isinstance(numbers, list):
        return [], "The awb numbers must be an array."
    if limit is not None and len(numbers) > limit:
        return [], f"The awb numbers may not have more than {limit} items."
    for index, number in enumerate(numbers):
        if not isinstance(number, str) or not number.strip():
            return [], f"The awb_numbers.{index} must be a non-empty string."
    return list(dict.fromkeys(number.strip() for number in numbers)), None


def legacy_numbers(form: Sequence[tuple[str, str]]) -> list[str]:
    """Tracking numbers from `bulk[i][awb_no]` fields, in index order, deduplicated."""
    indexed = []
    for key, value in form:
        match = _BULK_KEY.match(key)
        if match and value.strip():
            indexed.append((int(match.group(1)), value.strip()))
    return list(dict.fromkeys(value for _, value in sorted(indexed)))


# --- state ----------------------------------------------------------------------------------------

class SimulatorState:
    """Everything that changes while the simulator runs: clock, tokens, faults, counters and the
    shipments webhooks are sent for. Request handlers run on the event loop; the webhook thread
    goes through `collect_webhooks` and `record_webhook`, which take the lock."""

    def __init__(self, config: SimulatorConfig, wall_clock: Callable[[], datetime] = _utc_now) -> None:
        self.config = config
        self.wall_clock = wall_clock
        self.lock = threading.Lock()
        self.faults = FaultInjector(config.faults, config.seed)
        self.access_tokens: OrderedDict[str, float] = OrderedDict()
        self.refresh_tokens: OrderedDict[str, float] = OrderedDict()
        self.sender: WebhookSender | None = None
        self.reset()

    def reset(self) -> None:
        """Back to the state at start: clock, faults, counters, known shipments (tokens stay valid)."""
        with self.lock:
            self.started_at = self.wall_clock()
            self.epoch = self.config.epoch or self.started_at
            self.speed = self.config.speed
            self.advanced_seconds = 0.0
            self.journeys: OrderedDict[str, journeys.Journey] = OrderedDict()
            self.known: dict[str, int] = {}
            self.times_requested: Counter[str] = Counter()
            self.webhook_rng = journeys.seeded_rng("webhooks", self.config.seed)
            self.calls: Counter[str] = Counter()
            self.responses: Counter[str] = Counter()
            self.numbers: Counter[str] = Counter()
            self.fault_counts: Counter[str] = Counter()
            self.webhooks: Counter[str] = Counter()
            self.faults.reset(self.config.faults)

    # clock and journeys

    def sim_now(self) -> datetime:
        return journeys.simulated_time(self.epoch, self.speed, self.started_at, self.wall_clock(),
                                       self.advanced_seconds)

    def advance(self, seconds: float) -> None:
        with self.lock:
            self.advanced_seconds += seconds

    def set_speed(self, speed: float) -> None:
        """Change the speed from now on without moving simulated time."""
        with self.lock:
            now = self.wall_clock()
            self.advanced_seconds += (now - self.started_at).total_seconds() * self.speed
            self.started_at, self.speed = now, speed

    def journey(self, tracking_number: str) -> journeys.Journey:
        cached = self.journeys.get(tracking_number)
        if cached is None:
            cached = journeys.build_journey(tracking_number, self.config.seed, self.epoch)
            self.journeys[tracking_number] = cached
            if len(self.journeys) > JOURNEY_CACHE_SIZE:
                self.journeys.popitem(last=False)
        return cached

    # tokens

    def issue_token(self) -> dict[str, Any]:
        """A new access token in the shape of the documented token response."""
        now = self.wall_clock()
        access, refresh = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        ttl, refresh_ttl = self.config.token_ttl_seconds, 31557600
        self.access_tokens[access] = now.timestamp() + ttl
        self.refresh_tokens[refresh] = now.timestamp() + refresh_ttl
        for store in (self.access_tokens, self.refresh_tokens):
            while len(store) > TOKEN_STORE_SIZE:
                store.popitem(last=False)
        return {
            "token_type": "Bearer",
            "expires_in": ttl,
            "expires_at": _iso_ms(now + timedelta(seconds=ttl)),
            "access_token": access,
            "refresh_token": refresh,
            "refresh_token_expires_in": refresh_ttl,
            "refresh_token_expires_at": _iso_ms(now + timedelta(seconds=refresh_ttl)),
            "app": {"client_id": self.config.client_id, "callbackUrls": [], "redirectUris": []},
        }

    def token_problem(self, authorization: str | None) -> dict[str, Any] | None:
        """None if the Bearer token is valid, else EasyParcel's 401 body for what is wrong."""
        if not authorization or not authorization.lower().startswith("bearer ") or not authorization[7:].strip():
            return openapi_named_auth_error("missing_token")
        expires = self.access_tokens.get(authorization[7:].strip())
        if expires is None:
            return openapi_named_auth_error("invalid_token")
        if expires <= self.wall_clock().timestamp():
            return openapi_message_error(401, "Invalid Oauth 2.0 access token")
        return None

    # tracking

    def _omit_this_time(self, journey: Any, number: str) -> bool:
        """Whether a flaky number is left out of this answer (counted); caller holds the lock."""
        if not journey.scenario.is_flaky:
            return False
        self.times_requested[number] += 1
        if journeys.is_omitted(self.config.seed, number, self.times_requested[number], self.config.flaky_omit_rate):
            self.numbers["omitted"] += 1
            return True
        return False

    def track_openapi(self, numbers: Sequence[str], api_version: str) -> dict[str, Any]:
        now = self.sim_now()
        results: list[dict[str, Any]] = []
        success = errors = 0
        with self.lock:
            for number in numbers:
                journey = self.journey(number)
                self._remember(number, now)
                if self._omit_this_time(journey, number):
                    errors += 1
                    continue
                item = journeys.render_openapi_item(journey, now, api_version, self.config.seed)
                if item is None:
                    results.append(journeys.openapi_not_found_item(number))
                    errors += 1
                    self.numbers["not_found"] += 1
                else:
                    results.append(item)
                    success += 1
                    self.numbers["success"] += 1
            self.numbers["requested"] += len(numbers)
        request_id = f"{int(time.time() * 1000)}.{uuid.uuid4()}"
        return journeys.openapi_tracking_response(results, success, errors, request_id)

    def track_legacy(self, numbers: Sequence[str]) -> dict[str, Any]:
        now = self.sim_now()
        results: list[dict[str, Any]] = []
        with self.lock:
            for number in numbers:
                journey = self.journey(number)
                self._remember(number, now)
                if self._omit_this_time(journey, number):
                    continue
                item = journeys.render_legacy_item(journey, now)
                if item is None:
                    results.append(journeys.legacy_not_found_item(number))
                    self.numbers["not_found"] += 1
                else:
                    results.append(item)
                    self.numbers["success"] += 1
            self.numbers["requested"] += len(numbers)
        return journeys.legacy_tracking_response(results)

    # webhooks

    def _remember(self, number: str, now: datetime) -> None:
        """Note a number seen in a tracking call, for webhooks (only when they are configured)."""
        if self.config.webhook_url and number not in self.known:
            self.known[number] = len(journeys.visible_events(self.journey(number), now))

    def register(self, numbers: Sequence[str], *, send_existing: bool = False) -> int:
        """Pre-register numbers for webhooks; the number newly registered."""
        now = self.sim_now()
        added = 0
        with self.lock:
            for number in numbers:
                if number not in self.known:
                    visible = len(journeys.visible_events(self.journey(number), now))
                    self.known[number] = 0 if send_existing else visible
                    added += 1
        return added

    def collect_webhooks(self) -> list[dict[str, Any]]:
        """Webhooks for events that became visible since the last look, in delivery order."""
        now = self.sim_now()
        payloads: list[dict[str, Any]] = []
        with self.lock:
            for number, sent in self.known.items():
                journey = self.journey(number)
                visible = len(journeys.visible_events(journey, now))
                for index in range(sent, visible):
                    payloads.append(journeys.render_webhook(journey, index, self.config.seed,
                                                            self.config.webhook_api_version))
                self.known[number] = max(sent, visible)
            planned = plan_deliveries(payloads, self.webhook_rng, duplicate_rate=self.config.webhook_duplicates,
                                      is_shuffled=self.config.webhook_shuffle)
            self.webhooks["events"] += len(payloads)
            self.webhooks["duplicates"] += len(planned) - len(payloads)
        return planned

    def record_webhook(self, name: str, count: int) -> None:
        with self.lock:
            self.webhooks[name] += count

    # counters

    def count(self, endpoint: str) -> None:
        self.calls[endpoint] += 1

    def answered(self, response: Response) -> Response:
        self.responses[str(response.status_code)] += 1
        return response

    def stats(self) -> dict[str, Any]:
        now = self.wall_clock()
        with self.lock:
            tracking_calls = self.calls["open_api_tracking"] + self.calls["legacy_tracking"]
            return {
                "sim_time": _iso(self.sim_now()),
                "epoch": _iso(self.epoch),
                "speed": self.speed,
                "started_at": _iso(self.started_at),
                "calls": dict(self.calls),
                "tracking_calls": tracking_calls,
                "responses": dict(self.responses),
                "tracking_numbers": {key: self.numbers[key] for key in ("requested", "success", "not_found",
                                                                          "omitted")},
                "faults": {key: self.fault_counts[key] for key in ("delayed", ERROR, TIMEOUT, RATE_LIMITED,
                                                                     QUOTA_EXCEEDED)},
                "quota": {"daily_quota": self.faults.settings.daily_quota,
                          "used_today": self.faults.quota_used_today(now),
                          "remaining": self.faults.quota_remaining(now)},
                "webhooks": {
                    "url": self.config.webhook_url,
                    "known_shipments": len(self.known),
                    **{key: self.webhooks[key] for key in ("events", "duplicates", "attempts", "delivered",
                                                           "retries", "failed")},
                },
                "fault_settings": self.faults.settings.to_dict(),
            }


# --- handlers -------------------------------------------------------------------------------------

def _state(request: Request) -> SimulatorState:
    state: SimulatorState = request.app.state.sim
    return state


async def _json_body(request: Request) -> Any:
    try:
        return json.loads(await request.body() or b"null")
    except (ValueError, UnicodeDecodeError):
        return None


async def _form_body(request: Request) -> list[tuple[str, str]]:
    body = (await request.body()).decode("utf-8", errors="replace")
    return parse_qsl(body, keep_blank_values=True)


def _basic_credentials(authorization: str | None) -> tuple[str, str] | None:
    if not authorization or not authorization.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    client_id, sep, client_secret = decoded.partition(":")
    return (client_id, client_secret) if sep else None


async def oauth_token(request: Request) -> Response:
    """POST /oauth/token: client_credentials (Basic auth) or refresh_token grants."""
    state = _state(request)
    state.count("oauth_token")
    if "json" in request.headers.get("content-type", ""):
        body = await _json_body(request)
        params = {str(k): str(v) for k, v in body.items()} if isinstance(body, dict) else {}
    else:
        params = dict(await _form_body(request))
    credentials = _basic_credentials(request.headers.get("authorization"))
    if credentials is None and "client_id" in params:
        credentials = (params.get("client_id", ""), params.get("client_secret", ""))
    config = state.config
    is_valid = credentials is not None and secrets.compare_digest(credentials[0], config.client_id) \
        and secrets.compare_digest(credentials[1], config.client_secret)
    if not is_valid:
        return state.answered(JSONResponse(openapi_message_error(401, "Invalid client credentials"), 401))
    grant = params.get("grant_type", "")
    if grant == "refresh_token":
        expires = state.refresh_tokens.pop(params.get("refresh_token", ""), None)
        if expires is None or expires <= state.wall_clock().timestamp():
            return state.answered(JSONResponse(openapi_message_error(401, "Invalid refresh token"), 401))
    elif grant != "client_credentials":
        return state.answered(JSONResponse(openapi_validation_error(
            "The grant type must be client_credentials or refresh_token"), 400))
    return state.answered(JSONResponse(state.issue_token()))


async def _apply_fault(state: SimulatorState, decision: FaultDecision, *, is_legacy: bool) -> Response | None:
    """Sleep the added latency, then the fault's response (None: answer normally)."""
    if decision.latency > 0:
        state.fault_counts["delayed"] += 1
        await asyncio.sleep(decision.latency)
    if decision.kind == NONE:
        return None
    state.fault_counts[decision.kind] += 1
    logger.info("injected fault %s (HTTP %d)", decision.kind, decision.status)
    if decision.kind == TIMEOUT:
        await asyncio.sleep(decision.hang_seconds)
    headers = {"Retry-After": str(decision.retry_after)} if decision.retry_after is not None else None
    if is_legacy:
        return HTMLResponse(_gateway_page(decision.status), decision.status, headers=headers)
    message = _STATUS_PHRASES.get(decision.status, "Server Error")
    return JSONResponse(openapi_message_error(decision.status, message), decision.status, headers=headers)


async def openapi_tracking(request: Request) -> Response:
    """POST /open_api/{version}/shipment/tracking_status."""
    state = _state(request)
    state.count("open_api_tracking")
    version = request.path_params["version"]
    if version not in journeys.OPENAPI_VERSIONS:
        return state.answered(JSONResponse(openapi_message_error(404, "Not Found"), 404))
    problem = state.token_problem(request.headers.get("authorization"))
    if problem is not None:
        return state.answered(JSONResponse(problem, 401))
    numbers, problem_text = validate_awb_numbers(await _json_body(request))
    if problem_text is not None:
        return state.answered(JSONResponse(openapi_validation_error(problem_text), 400))
    fault = await _apply_fault(state, state.faults.decide(state.wall_clock()), is_legacy=False)
    if fault is not None:
        return state.answered(fault)
    return state.answered(JSONResponse(state.track_openapi(numbers, version)))


async def legacy_root(request: Request) -> Response:
    """POST /?ac=EPTrackingBulk (form-encoded `api` + `bulk[i][awb_no]`); GET / describes the simulator."""
    state = _state(request)
    if request.method == "GET":
        return JSONResponse({"simulator": "EasyParcel courier simulator", "scenarios": journeys.scenario_table()})
    state.count("legacy_tracking")
    action = request.query_params.get("ac", "")
    if action != "EPTrackingBulk":
        return state.answered(JSONResponse(journeys.legacy_error("6", f"Unsupported action {action!r}"), 404))
    form = await _form_body(request)
    api_key = dict(form).get("api", "").strip()
    if not api_key:
        return state.answered(JSONResponse(journeys.legacy_error("3", "Required api key")))
    if not secrets.compare_digest(api_key, state.config.api_key):
        if len(api_key) > LEGACY_KEY_MAX_LENGTH or not api_key.isprintable() or " " in api_key:
            return state.answered(JSONResponse(journeys.legacy_error("4", "Invalid api key")))
        return state.answered(JSONResponse(journeys.legacy_error("5", "Unauthorized user")))
    numbers = legacy_numbers(form)
    if not numbers or len(numbers) > LEGACY_BATCH_LIMIT:
        return state.answered(JSONResponse(journeys.legacy_error("6", "Invalid data insert format in array")))
    fault = await _apply_fault(state, state.faults.decide(state.wall_clock()), is_legacy=True)
    if fault is not None:
        return state.answered(fault)
    return state.answered(JSONResponse(state.track_legacy(numbers)))


# control API

def _control_error(message: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": message}, status)


async def control_stats(request: Request) -> Response:
    return JSONResponse(_state(request).stats())


async def control_faults(request: Request) -> Response:
    """GET: the fault settings; POST: change some of them (JSON object of fields)."""
    state = _state(request)
    if request.method == "POST":
        body = await _json_body(request)
        if not isinstance(body, dict):
            return _control_error("send a JSON object of fault settings")
        try:
            state.faults.update(body)
        except ValueError as error:
            return _control_error(str(error))
    return JSONResponse(state.faults.settings.to_dict())


async def control_reset(request: Request) -> Response:
    state = _state(request)
    state.reset()
    return JSONResponse(state.stats())


async def control_shipments(request: Request) -> Response:
    """POST {"awb_numbers": [...], "send_existing": false}: watch these numbers for webhooks."""
    state = _state(request)
    body = await _json_body(request)
    numbers, problem = validate_awb_numbers(body, limit=None)
    if problem is not None:
        return _control_error(problem)
    send_existing = bool(body.get("send_existing", False)) if isinstance(body, dict) else False
    added = state.register(numbers, send_existing=send_existing)
    return JSONResponse({"registered": added, "known_shipments": len(state.known)})


async def control_journey(request: Request) -> Response:
    """GET /_sim/journeys/{tracking_number}: the whole journey, with what is visible now."""
    state = _state(request)
    number = request.path_params["tracking_number"]
    version = request.query_params.get("api_version", "2026-06")
    with state.lock:
        journey = state.journey(number)
    return JSONResponse(journeys.describe_journey(journey, state.sim_now(), version))


async def control_clock(request: Request) -> Response:
    """GET: the simulated time; POST {"advance_seconds": N} and/or {"speed": X}."""
    state = _state(request)
    if request.method == "POST":
        body = await _json_body(request)
        if not isinstance(body, dict):
            return _control_error("send a JSON object: {\"advance_seconds\": N} and/or {\"speed\": X}")
        advance, speed = body.get("advance_seconds", 0), body.get("speed")
        if isinstance(advance, bool) or not isinstance(advance, (int, float)) or advance < 0:
            return _control_error(f"advance_seconds must be a number >= 0, got {advance!r}")
        if speed is not None and (isinstance(speed, bool) or not isinstance(speed, (int, float)) or speed < 0):
            return _control_error(f"speed must be a number >= 0, got {speed!r}")
        if speed is not None:
            state.set_speed(float(speed))
        state.advance(float(advance))
    return JSONResponse({"sim_time": _iso(state.sim_now()), "epoch": _iso(state.epoch), "speed": state.speed})


async def control_scenarios(request: Request) -> Response:
    return JSONResponse(journeys.scenario_table())


def create_app(config: SimulatorConfig, *, wall_clock: Callable[[], datetime] = _utc_now) -> Starlette:
    """The simulator as a Starlette app; the lifespan runs the webhook sender when a URL is set."""
    state = SimulatorState(config, wall_clock)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[Mapping[str, Any]]:
        sender = None
        if config.webhook_url:
            sender = WebhookSender(config.webhook_url, state.collect_webhooks, state.record_webhook,
                                   interval=config.webhook_interval, timeout=config.webhook_timeout,
                                   retries=config.webhook_retries)
            sender.start()
        state.sender = sender
        try:
            yield {}
        finally:
            state.sender = None
            if sender is not None:
                await anyio.to_thread.run_sync(sender.stop)

    routes = [
        Route("/oauth/token", oauth_token, methods=["POST"]),
        Route("/open_api/{version}/shipment/tracking_status", openapi_tracking, methods=["POST"]),
        Route("/", legacy_root, methods=["GET", "POST"]),
        Route("/_sim/stats", control_stats, methods=["GET"]),
        Route("/_sim/faults", control_faults, methods=["GET", "POST"]),
        Route("/_sim/reset", control_reset, methods=["POST"]),
        Route("/_sim/shipments", control_shipments, methods=["POST"]),
        Route("/_sim/journeys/{tracking_number}", control_journey, methods=["GET"]),
        Route("/_sim/clock", control_clock, methods=["GET", "POST"]),
        Route("/_sim/scenarios", control_scenarios, methods=["GET"]),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.sim = state
    return app
