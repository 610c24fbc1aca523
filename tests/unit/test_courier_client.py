"""The courier client (the one I/O step) over a scripted requests adapter, no network: token
fetch and caching, one refresh on 401, 429/5xx/timeouts, call records, threads; plus the fake
courier client and the registry."""
from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict

import settings as settings_module
from pipeline import status as S
from pipeline.canonical import TrackingEvent
from pipeline.couriers import COURIERS, build_client, build_courier, courier_names
from pipeline.couriers.base import (
    CourierAuthError,
    CourierRateLimited,
    CourierRequestRejected,
    CourierUnavailable,
)
from pipeline.couriers.client import CallRecord, CourierClient, FetchOutcome
from pipeline.couriers.easyparcel import EasyParcel
from pipeline.couriers.fake import FakeCourier, FakeCourierClient, webhook_body

BASE = "https://ep.test"
TRACKING_PATH = "/open_api/2026-06/shipment/tracking_status"
TRACKING_BODY = json.dumps({"status_code": 200, "message": "1 requests success, 0 request error.",
                            "data": {"results": []}}).encode()


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


Answer = Any  # (status, headers, body) or an exception to raise


class ScriptedTransport(BaseAdapter):
    """A requests adapter that answers each endpoint from its own queue and records what it got."""

    def __init__(self, clock: FakeClock | None = None, latency: float = 0.0, delay: float = 0.0) -> None:
        super().__init__()
        self.answers: dict[str, deque[Answer]] = {}
        self.sent: list[requests.PreparedRequest] = []
        self.timeouts: list[Any] = []
        self.clock = clock
        self.latency = latency
        self.delay = delay
        self._lock = threading.Lock()

    def on(self, path: str, *answers: Answer) -> ScriptedTransport:
        self.answers.setdefault(path, deque()).extend(answers)
        return self

    def paths(self) -> list[str]:
        return [_endpoint(r.url or "") for r in self.sent]

    def send(self, request, stream=False, timeout=None, verify=True, cert=None, proxies=None):
        with self._lock:
            self.sent.append(request)
            self.timeouts.append(timeout)
            queue = self.answers.get(_endpoint(request.url))
            # the last answer of a queue repeats; a callable answers from the request
            answer = queue.popleft() if queue and len(queue) > 1 else (queue[0] if queue else (404, {}, b""))
            if callable(answer):
                answer = answer(request)
            if self.clock is not None:
                self.clock.advance(self.latency)
        if self.delay:
            time.sleep(self.delay)
        if isinstance(answer, Exception):
            raise answer
        status, headers, body = answer
        response = requests.Response()
        response.status_code = status
        response.headers = CaseInsensitiveDict(headers)
        response._content = body
        response.url = request.url
        response.request = request
        return response

    def close(self) -> None:
        pass


def _endpoint(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + ("?" + parts.query if parts.query else "")


def token_answer(token: str = "tok-1", expires_in: int = 3600) -> Answer:
    return (200, {"Content-Type": "application/json"},
            json.dumps({"token_type": "Bearer", "expires_in": expires_in, "access_token": token}).encode())


def session_with(transport: ScriptedTransport) -> requests.Session:
    session = requests.Session()
    session.mount("https://", transport)
    session.mount("http://", transport)
    return session


def open_client(transport: ScriptedTransport, clock: Callable[[], float] | None = None,
                **kwargs: Any) -> CourierClient:
    return CourierClient(EasyParcel("open", BASE), client_id="cid", client_secret="csecret",
                         timeout_seconds=7.5, session=session_with(transport), clock=clock or FakeClock(), **kwargs)


def bearer(request: requests.PreparedRequest) -> str:
    return request.headers["Authorization"]


# --- token -------------------------------------------------------------------------------------


def test_first_fetch_gets_a_token_then_tracks_with_it():
    # given a courier that issues a token and answers tracking
    clock = FakeClock()
    transport = ScriptedTransport(clock, latency=0.25).on("/oauth/token", token_answer("tok-1")).on(
        TRACKING_PATH, (200, {}, TRACKING_BODY))
    client = open_client(transport, clock)

    # when
    outcome = client.fetch_tracking(["A1", "A2", "A1"])

    # then: one token call with Basic auth, one tracking call with the Bearer token
    assert transport.paths() == ["/oauth/token", TRACKING_PATH]
    token_request, tracking_request = transport.sent
    assert token_request.headers["Authorization"] == "Basic Y2lkOmNzZWNyZXQ="  # cid:csecret
    assert dict(parse_qsl(token_request.body)) == {"grant_type": "client_credentials"}
    assert bearer(tracking_request) == "Bearer tok-1"
    assert json.loads(tracking_request.body) == {"awb_numbers": ["A1", "A2"]}
    assert transport.timeouts == [7.5, 7.5]
    assert outcome == FetchOutcome(
        calls=(
            CallRecord("/oauth/token", "token", 200, 250, True, None, 0),
            CallRecord(TRACKING_PATH, "tracking", 200, 250, True, None, 2),
        ),
        response=outcome.response, error=None,
    )
    assert outcome.response is not None and outcome.response.body == TRACKING_BODY
    assert outcome.is_success


def test_token_is_cached_until_shortly_before_it_expires():
    clock = FakeClock()
    transport = ScriptedTransport().on("/oauth/token", token_answer("tok-1", 3600), token_answer("tok-2", 3600)).on(
        TRACKING_PATH, (200, {}, TRACKING_BODY))
    client = open_client(transport, clock)

    client.fetch_tracking(["A1"])
    clock.advance(3600 - 61)
    second = client.fetch_tracking(["A1"])
    clock.advance(2)  # now inside the last minute of the token's life
    third = client.fetch_tracking(["A1"])

    assert [c.kind for c in second.calls] == ["tracking"]
    assert [c.kind for c in third.calls] == ["token", "tracking"]
    assert [bearer(r) for r in transport.sent if "tracking" in (r.url or "")] == [
        "Bearer tok-1", "Bearer tok-1", "Bearer tok-2"]


def test_a_401_on_tracking_refreshes_the_token_once_and_retries():
    transport = ScriptedTransport().on("/oauth/token", token_answer("tok-1"), token_answer("tok-2")).on(
        TRACKING_PATH, (401, {}, b'{"status_code": 401, "message": "Invalid Oauth 2.0 access token", "data": null}'),
        (200, {}, TRACKING_BODY))
    client = open_client(transport)

    outcome = client.fetch_tracking(["A1"])

    assert [(c.kind, c.http_status, c.is_success) for c in outcome.calls] == [
        ("token", 200, True), ("tracking", 401, False), ("token", 200, True), ("tracking", 200, True)]
    assert "Invalid Oauth 2.0 access token" in (outcome.calls[1].error or "")
    assert [bearer(r) for r in transport.sent[1::2]] == ["Bearer tok-1", "Bearer tok-2"]
    assert outcome.error is None


def test_a_second_401_is_returned_as_an_auth_error_without_another_refresh():
    unauthorized = (401, {}, b'{"error": {"name": "invalid_token"}, "status_code": 401}')
    transport = ScriptedTransport().on("/oauth/token", token_answer("tok-1"), token_answer("tok-2"),
                                       token_answer("tok-3")).on(TRACKING_PATH, unauthorized)
    client = open_client(transport)

    outcome = client.fetch_tracking(["A1"])

    assert [c.kind for c in outcome.calls] == ["token", "tracking", "token", "tracking"]
    assert isinstance(outcome.error, CourierAuthError)
    assert outcome.response is not None and outcome.response.status == 401


def test_a_refused_token_request_stops_before_any_tracking_call():
    transport = ScriptedTransport().on("/oauth/token", (401, {}, b'{"error": "invalid_client"}'))
    client = open_client(transport)

    outcome = client.fetch_tracking(["A1"])

    assert transport.paths() == ["/oauth/token"]
    assert isinstance(outcome.error, CourierAuthError)
    assert outcome.response is None
    assert outcome.calls == (CallRecord("/oauth/token", "token", 401, 0, False, str(outcome.error), 0),)


def test_a_token_answer_without_a_token_is_unavailable_and_recorded():
    transport = ScriptedTransport().on("/oauth/token", (200, {}, b"<html>maintenance</html>"))

    outcome = open_client(transport).fetch_tracking(["A1"])

    assert isinstance(outcome.error, CourierUnavailable)
    assert [(c.kind, c.is_success) for c in outcome.calls] == [("token", False)]


# --- tracking errors ---------------------------------------------------------------------------


def test_429_is_rate_limited_with_the_couriers_retry_after_and_no_retry():
    transport = ScriptedTransport().on("/oauth/token", token_answer()).on(
        TRACKING_PATH, (429, {"Retry-After": "42"}, b"Too Many Requests"))

    outcome = open_client(transport).fetch_tracking(["A1"])

    assert isinstance(outcome.error, CourierRateLimited)
    assert outcome.error.retry_after == 42.0
    assert [(c.kind, c.http_status) for c in outcome.calls] == [("token", 200), ("tracking", 429)]


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_5xx_is_unavailable(status):
    transport = ScriptedTransport().on("/oauth/token", token_answer()).on(TRACKING_PATH, (status, {}, b"down"))

    outcome = open_client(transport).fetch_tracking(["A1"])

    assert isinstance(outcome.error, CourierUnavailable)
    assert outcome.error.http_status == status
    assert outcome.calls[-1].http_status == status and not outcome.calls[-1].is_success


def test_a_validation_error_is_a_rejected_request():
    body = b'{"status_code": 400, "message": "Validation error", "data": {"errors": ["bad awb"]}}'
    transport = ScriptedTransport().on("/oauth/token", token_answer()).on(TRACKING_PATH, (400, {}, body))

    outcome = open_client(transport).fetch_tracking(["A1"])

    assert isinstance(outcome.error, CourierRequestRejected)
    assert "bad awb" in str(outcome.error)


@pytest.mark.parametrize("failure", [
    requests.exceptions.ReadTimeout("read timed out"),
    requests.exceptions.ConnectTimeout("connect timed out"),
    requests.exceptions.ConnectionError("connection refused"),
    requests.exceptions.ChunkedEncodingError("broken"),
])
def test_network_failures_become_unavailable_without_http_status(failure):
    transport = ScriptedTransport().on("/oauth/token", token_answer()).on(TRACKING_PATH, failure)

    outcome = open_client(transport).fetch_tracking(["A1"])

    assert isinstance(outcome.error, CourierUnavailable)
    assert outcome.error.http_status is None
    assert outcome.response is None
    assert outcome.calls[-1].http_status is None and outcome.calls[-1].error


def test_a_token_call_that_times_out_is_unavailable_and_recorded():
    transport = ScriptedTransport().on("/oauth/token", requests.exceptions.ReadTimeout("slow"))

    outcome = open_client(transport).fetch_tracking(["A1"])

    assert isinstance(outcome.error, CourierUnavailable)
    assert outcome.calls == (CallRecord("/oauth/token", "token", None, 0, False, str(outcome.error), 0),)


# --- legacy ------------------------------------------------------------------------------------


def test_legacy_api_sends_the_key_in_the_form_and_fetches_no_token():
    transport = ScriptedTransport().on("/?ac=EPTrackingBulk", (200, {}, b'{"api_status": "Success", "result": []}'))
    client = CourierClient(EasyParcel("legacy", BASE), api_key="legacy-key",
                           session=session_with(transport), clock=FakeClock())

    outcome = client.fetch_tracking(["238725129086", "238725129087"])

    assert transport.paths() == ["/?ac=EPTrackingBulk"]
    assert parse_qsl(transport.sent[0].body) == [
        ("api", "legacy-key"), ("bulk[0][awb_no]", "238725129086"), ("bulk[1][awb_no]", "238725129087")]
    assert outcome.calls == (CallRecord("/?ac=EPTrackingBulk", "tracking", 200, 0, True, None, 2),)
    assert outcome.error is None


def test_legacy_key_error_in_a_200_envelope_is_an_auth_error_and_not_retried():
    body = b'{"api_status": "Error", "error_code": "5", "error_remark": "Unauthorized user"}'
    transport = ScriptedTransport().on("/?ac=EPTrackingBulk", (200, {}, body))
    client = CourierClient(EasyParcel("legacy", BASE), api_key="wrong", session=session_with(transport))

    outcome = client.fetch_tracking(["238725129086"])

    assert isinstance(outcome.error, CourierAuthError)
    assert [(c.http_status, c.is_success) for c in outcome.calls] == [(200, False)]


# --- threads and secrets -----------------------------------------------------------------------


def test_threads_sharing_a_client_fetch_one_token_between_them():
    transport = ScriptedTransport(delay=0.02).on("/oauth/token", token_answer("tok-1"), token_answer("tok-2")).on(
        TRACKING_PATH, (200, {}, TRACKING_BODY))
    client = open_client(transport, clock=time.monotonic)
    barrier = threading.Barrier(8)
    outcomes: list[FetchOutcome] = []

    def work() -> None:
        barrier.wait()
        outcomes.append(client.fetch_tracking(["A1"]))

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert transport.paths().count("/oauth/token") == 1
    assert sum(c.kind == "token" for o in outcomes for c in o.calls) == 1
    assert all(o.error is None for o in outcomes)


def test_concurrent_401s_on_the_same_token_refresh_it_once():
    # given four threads holding a token the courier has since revoked
    transport = ScriptedTransport(delay=0.01).on("/oauth/token", token_answer("tok-1"), token_answer("tok-2"),
                                                 token_answer("tok-3"))
    warm = [True]

    def tracking(request: requests.PreparedRequest) -> Answer:
        if warm[0] or bearer(request) == "Bearer tok-2":
            return (200, {}, TRACKING_BODY)
        return (401, {}, b'{"error": {"name": "invalid_token"}, "status_code": 401}')

    transport.on(TRACKING_PATH, tracking)
    client = open_client(transport, clock=time.monotonic)
    client.fetch_tracking(["warm-up"])
    warm[0] = False
    transport.sent.clear()
    barrier = threading.Barrier(4)
    outcomes: list[FetchOutcome] = []

    def work() -> None:
        barrier.wait()
        outcomes.append(client.fetch_tracking(["A1"]))

    # when they all get a 401 at about the same time
    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # then one of them refreshes the token and every retry uses the new one
    assert transport.paths().count("/oauth/token") == 1
    assert all(o.error is None for o in outcomes)


def test_secrets_stay_out_of_reprs_and_call_records():
    transport = ScriptedTransport().on("/oauth/token", (401, {}, b'{"error": "invalid_client"}'))
    client = open_client(transport)

    outcome = client.fetch_tracking(["A1"])

    assert "csecret" not in repr(client)
    assert all("csecret" not in (c.error or "") and "csecret" not in c.endpoint for c in outcome.calls)


def test_a_client_closes_only_the_sessions_it_opened():
    class CountingSession(requests.Session):
        closed = 0

        def close(self) -> None:
            self.closed += 1
            super().close()

    given = CountingSession()
    CourierClient(EasyParcel("open", BASE), session=given).close()
    owning = CourierClient(EasyParcel("open", BASE))
    owning._session()
    owning.close()
    owning.close()

    assert given.closed == 0


# --- the fake courier --------------------------------------------------------------------------


def at(hours: int) -> datetime:
    return datetime(2026, 1, 1, tzinfo=UTC) + timedelta(hours=hours)


JOURNEY = (
    TrackingEvent(time=at(0), raw_text="Order received", status=S.INFO_RECEIVED, raw_code="7"),
    TrackingEvent(time=at(5), raw_text="Collected", status=S.IN_TRANSIT, raw_code="3", location="Penang"),
    TrackingEvent(time=at(30), raw_text="Delivered", status=S.DELIVERED, raw_code="5"),
)


def test_fake_client_answers_journeys_not_found_and_missing_and_counts_calls():
    fake = FakeCourierClient()
    fake.script_journey("J1", JOURNEY)
    fake.script_not_found("NF")
    fake.script_missing("GONE")

    outcome = fake.fetch_tracking(["J1", "NF", "GONE", "NEVER-SCRIPTED"])
    assert outcome.error is None and outcome.response is not None
    result = fake.courier.parse_tracking_response(outcome.response, ["J1", "NF", "GONE", "NEVER-SCRIPTED"])

    assert [u.events for u in result.updates] == [JOURNEY]
    assert [(f.tracking_number, f.kind) for f in result.failures] == [
        ("NF", "not_found"), ("GONE", "missing"), ("NEVER-SCRIPTED", "not_found")]
    assert fake.calls == 1
    assert fake.requested == [("J1", "NF", "GONE", "NEVER-SCRIPTED")]
    assert fake.calls_for("J1") == 1 and fake.calls_for("other") == 0
    assert outcome.calls == (CallRecord("/tracking", "tracking", 200, 0, True, None, 4),)


def test_fake_journey_reveals_events_call_by_call_or_by_the_clock():
    stepped = FakeCourierClient()
    stepped.script_journey("J1", JOURNEY, reveal_per_call=1)
    clock_now = [at(6)]
    timed = FakeCourierClient(now=lambda: clock_now[0])
    timed.script_journey("J1", JOURNEY)

    def events(client: FakeCourierClient) -> int:
        outcome = client.fetch_tracking(["J1"])
        assert outcome.response is not None
        return len(client.courier.parse_tracking_response(outcome.response, ["J1"]).updates[0].events)

    assert [events(stepped) for _ in range(4)] == [1, 2, 3, 3]
    assert events(timed) == 2
    clock_now[0] = at(31)
    assert events(timed) == 3


@pytest.mark.parametrize(("kind", "error_type", "http_status"), [
    ("rate_limited", CourierRateLimited, 429), ("unavailable", CourierUnavailable, 503),
    ("auth", CourierAuthError, 401), ("rejected", CourierRequestRejected, 400),
    ("timeout", CourierUnavailable, None),
])
def test_fake_scripted_errors_fail_the_next_n_calls_then_recover(kind, error_type, http_status):
    fake = FakeCourierClient()
    fake.script_journey("J1", JOURNEY)
    fake.script_error(kind, times=2, retry_after=30)

    outcomes = [fake.fetch_tracking(["J1"]) for _ in range(3)]

    assert [type(o.error) for o in outcomes] == [error_type, error_type, type(None)]
    assert outcomes[0].calls[0].http_status == http_status
    if kind == "rate_limited":
        assert isinstance(outcomes[0].error, CourierRateLimited) and outcomes[0].error.retry_after == 30.0
    if outcomes[0].response is not None:
        with pytest.raises(error_type):
            fake.courier.parse_tracking_response(outcomes[0].response, ["J1"])
    assert fake.calls == 3


def test_fake_error_scripted_for_one_number_only_fails_calls_that_include_it():
    fake = FakeCourierClient()
    fake.script_error("unavailable", tracking_number="BAD")

    assert fake.fetch_tracking(["OK"]).error is None
    assert isinstance(fake.fetch_tracking(["OK", "BAD"]).error, CourierUnavailable)
    assert fake.fetch_tracking(["BAD"]).error is None


def test_fake_webhook_round_trips_updates():
    fake = FakeCourier()
    client = FakeCourierClient(fake)
    client.script_journey("J1", JOURNEY)
    response = client.fetch_tracking(["J1"]).response
    assert response is not None
    updates = fake.parse_tracking_response(response, ["J1"]).updates

    message = fake.parse_webhook(webhook_body(updates, event_id="evt-1"))

    assert (message.topic, message.event_id, message.updates) == ("tracking", "evt-1", updates)


# --- registry ----------------------------------------------------------------------------------


def test_registry_lists_and_builds_every_courier():
    config = settings_module.load({"EASYPARCEL_API": "legacy", "EASYPARCEL_API_KEY": "k-123",
                                   "EASYPARCEL_TIMEZONE": "Asia/Singapore", "TRACKING_API_TIMEOUT": "2500"},
                                  dotenv_path=None)

    courier = build_courier("easyparcel", config)
    client = build_client("easyparcel", config)

    assert courier_names() == sorted(COURIERS) == ["easyparcel", "fake"]
    assert isinstance(courier, EasyParcel)
    assert (courier.api, courier.base_url, courier.timezone, courier.batch_limit) == (
        "legacy", "https://connect.easyparcel.my", "Asia/Singapore", 100)
    assert isinstance(client, CourierClient) and client._timeout == 2.5
    assert isinstance(build_courier("fake", config), FakeCourier)
    assert isinstance(build_client("fake", config), FakeCourierClient)


def test_registry_defaults_to_the_open_api_on_its_live_host():
    courier = build_courier("easyparcel", settings_module.load({}, dotenv_path=None))

    assert isinstance(courier, EasyParcel)
    assert courier.tracking_url == "https://api.easyparcel.com/open_api/2026-06/shipment/tracking_status"


def test_registry_refuses_an_unknown_courier():
    with pytest.raises(ValueError, match="unknown courier 'dhl'"):
        build_courier("dhl", settings_module.get())
