"""The courier simulator on a real loopback port, talked to by the real EasyParcel adapter and
courier client (OAuth included), and sending webhooks to a small receiver the test runs."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Self

import pytest
import requests
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from pipeline.couriers.base import CourierAuthError, CourierRateLimited, CourierUnavailable
from pipeline.couriers.client import CourierClient
from pipeline.couriers.easyparcel import EasyParcel
from sim import journeys as J
from sim.server import SimulatorConfig, SimulatorServer, bind_socket

ROOT = Path(__file__).resolve().parents[2]
EPOCH = datetime(2026, 3, 1, tzinfo=UTC)
SEED = "integration"
SCENARIO_PREFIXES = [s.prefix for s in J.SCENARIOS]


def sim_config(**options) -> SimulatorConfig:
    return SimulatorConfig(**{"speed": 0, "epoch": EPOCH, "seed": SEED, **options})


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorServer]:
    with SimulatorServer(sim_config()) as server:
        yield server


@pytest.fixture
def sim_url(sim: SimulatorServer) -> str:
    requests.post(f"{sim.url}/_sim/reset", timeout=5).raise_for_status()
    return sim.url


def open_client(url: str, *, secret: str = "demo-secret", timeout: float = 5.0,
                version: str = "2026-06") -> CourierClient:
    return CourierClient(EasyParcel(api="open", base_url=url, api_version=version), client_id="demo-client",
                         client_secret=secret, timeout_seconds=timeout)


def legacy_client(url: str, api_key: str = "demo-api-key") -> CourierClient:
    return CourierClient(EasyParcel(api="legacy", base_url=url), api_key=api_key, timeout_seconds=5.0)


def control(url: str, path: str, body: dict | None = None) -> dict:
    response = requests.post(f"{url}/_sim/{path}", json=body or {}, timeout=5)
    response.raise_for_status()
    return response.json()


def stats(url: str) -> dict:
    return requests.get(f"{url}/_sim/stats", timeout=5).json()


def current_status(update) -> str | None:
    return update.events[-1].status if update.events else None


# --- polling through the real adapter ---------------------------------------------------------------

def test_real_client_fetches_a_batch_with_oauth(sim_url):
    # given the real client pointed at the simulator with only the base URL changed
    client = open_client(sim_url)
    numbers = ["EPDEL1", "EPOFD1", "EPTRN1", "EPFAD1", "EPEXC1", "EPCAN1", "EPPND1", "EPNOF1"]
    # when it fetches a batch
    outcome = client.fetch_tracking(numbers)
    # then a token call and a tracking call were made and every number is accounted for
    assert outcome.is_success, outcome.error
    assert [call.kind for call in outcome.calls] == ["token", "tracking"]
    result = client.courier.parse_tracking_response(outcome.response, numbers)
    statuses = {u.tracking_number: current_status(u) for u in result.updates}
    assert statuses == {"EPDEL1": "delivered", "EPOFD1": "out_for_delivery", "EPTRN1": "in_transit",
                        "EPFAD1": "failed_attempt", "EPEXC1": "exception", "EPCAN1": "cancelled",
                        "EPPND1": "info_received"}
    assert [(f.tracking_number, f.kind) for f in result.failures] == [("EPNOF1", "not_found")]
    assert result.message == "7 requests success, 1 request error."
    # and the token is reused on the next call
    assert [call.kind for call in client.fetch_tracking(["EPDEL2"]).calls] == ["tracking"]
    counted = stats(sim_url)
    assert counted["calls"] == {"oauth_token": 1, "open_api_tracking": 2}
    assert counted["tracking_numbers"]["requested"] == 9
    client.close()


def test_a_429_surfaces_its_retry_after(sim_url):
    client = open_client(sim_url)
    control(sim_url, "faults", {"rate_limit_next": 1, "retry_after_seconds": 7})
    outcome = client.fetch_tracking(["EPDEL1"])
    assert isinstance(outcome.error, CourierRateLimited)
    assert outcome.error.retry_after == 7.0 and outcome.error.http_status == 429
    assert client.fetch_tracking(["EPDEL1"]).is_success
    assert stats(sim_url)["faults"]["rate_limited"] == 1
    client.close()


def test_a_5xx_is_unavailable(sim_url):
    client = open_client(sim_url)
    control(sim_url, "faults", {"fail_next": 1})
    outcome = client.fetch_tracking(["EPDEL1"])
    assert isinstance(outcome.error, CourierUnavailable) and outcome.error.http_status == 500
    assert client.fetch_tracking(["EPDEL1"]).is_success
    client.close()


def test_a_hang_longer_than_the_client_timeout_is_unavailable(sim_url):
    client = open_client(sim_url, timeout=0.5)
    assert client.fetch_tracking(["EPDEL1"]).is_success  # the token is in hand
    control(sim_url, "faults", {"timeout_next": 1, "timeout_seconds": 1.5})
    started = time.monotonic()
    outcome = client.fetch_tracking(["EPDEL1"])
    assert time.monotonic() - started < 1.4
    assert isinstance(outcome.error, CourierUnavailable) and outcome.response is None
    client.close()


def test_an_exhausted_quota_is_rate_limited_until_midnight(sim_url):
    client = open_client(sim_url)
    control(sim_url, "faults", {"daily_quota": 1})
    assert client.fetch_tracking(["EPDEL1"]).is_success
    outcome = client.fetch_tracking(["EPDEL1"])
    assert isinstance(outcome.error, CourierRateLimited)
    assert 0 < outcome.error.retry_after <= 86400
    client.close()


def test_wrong_client_secret_is_an_auth_error(sim_url):
    outcome = open_client(sim_url, secret="wrong").fetch_tracking(["EPDEL1"])
    assert isinstance(outcome.error, CourierAuthError)
    assert [call.kind for call in outcome.calls] == ["token"]


def test_legacy_api_through_the_real_client(sim_url):
    client = legacy_client(sim_url)
    outcome = client.fetch_tracking(["EPDEL1", "EPNOF1"])
    assert outcome.is_success, outcome.error
    result = client.courier.parse_tracking_response(outcome.response, ["EPDEL1", "EPNOF1"])
    assert [current_status(u) for u in result.updates] == ["delivered"]
    assert [f.kind for f in result.failures] == ["not_found"]
    wrong = legacy_client(sim_url, api_key="not-the-key").fetch_tracking(["EPDEL1"])
    assert isinstance(wrong.error, CourierAuthError)
    control(sim_url, "faults", {"fail_next": 1, "error_status": 502})
    assert isinstance(client.fetch_tracking(["EPDEL1"]).error, CourierUnavailable)
    client.close()


def test_omitted_flaky_numbers_become_missing_failures():
    with SimulatorServer(sim_config(flaky_omit_rate=1.0)) as server:
        client = open_client(server.url)
        outcome = client.fetch_tracking(["EPFLK1", "EPDEL1"])
        result = client.courier.parse_tracking_response(outcome.response, ["EPFLK1", "EPDEL1"])
        client.close()
    assert [(f.tracking_number, f.kind) for f in result.failures] == [("EPFLK1", "missing")]
    assert result.message == "1 requests success, 1 request error."


@pytest.mark.parametrize(("api", "version"), [("open", "2026-06"), ("open", "2026-03"), ("open", "2025-12"),
                                              ("legacy", "2026-06")])
def test_every_scenario_maps_to_its_intended_statuses_through_the_server(sim_url, api, version):
    # given full journeys (ten simulated days on)
    control(sim_url, "clock", {"advance_seconds": 10 * 86400})
    numbers = [f"{prefix or '9603'}{i:04d}" for prefix in SCENARIO_PREFIXES for i in range(3)]
    if api == "open":
        client = open_client(sim_url, version=version)
    else:
        client = legacy_client(sim_url)
    # when the real client fetches and the adapter parses them
    outcome = client.fetch_tracking(numbers)
    result = client.courier.parse_tracking_response(outcome.response, numbers)
    client.close()
    # then every event has the status the simulator meant, and each scenario ends where it should
    updates = {u.tracking_number: u for u in result.updates}
    for number in numbers:
        journey = J.build_journey(number, SEED, EPOCH)
        if journey.scenario.is_flaky and number not in updates:
            continue
        if journey.scenario.end_status is None:
            assert number not in updates
            continue
        assert [e.status for e in updates[number].events] == [e.intended_status for e in journey.events]
        assert current_status(updates[number]) == journey.scenario.end_status


# --- webhooks -----------------------------------------------------------------------------------------

class Receiver:
    """A tiny webhook receiver on a free loopback port; fails the first `failures` requests."""

    def __init__(self, failures: int = 0) -> None:
        self.bodies: list[bytes] = []
        self.failures = failures
        self.requests = 0
        self.lock = threading.Lock()

        async def receive(request: Request) -> JSONResponse:
            body = await request.body()
            with self.lock:
                self.requests += 1
                if self.requests <= self.failures:
                    return JSONResponse({"error": "try again"}, 503)
                self.bodies.append(body)
            return JSONResponse({"ok": True})

        self.socket = bind_socket("127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.socket.getsockname()[1]}/hooks"
        app = Starlette(routes=[Route("/hooks", receive, methods=["POST"])])
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.socket]}, daemon=True)

    def __enter__(self) -> Self:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "receiver did not start"
            time.sleep(0.01)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.socket.close()

    def wait_for(self, predicate: Callable[[list[bytes]], bool], timeout: float = 15.0) -> list[bytes]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                bodies = list(self.bodies)
            if predicate(bodies):
                return bodies
            time.sleep(0.05)
        raise AssertionError(f"receiver got {len(bodies)} webhooks, not what was expected")


def webhook_sim(receiver: Receiver, **options) -> SimulatorServer:
    return SimulatorServer(sim_config(webhook_url=receiver.url, webhook_interval=0.05, **options))


def expected_events(number: str, days: float) -> list[J.JourneyEvent]:
    journey = J.build_journey(number, SEED, EPOCH)
    return [e for e in journey.events if EPOCH < e.time <= EPOCH + timedelta(days=days)]


def test_webhooks_announce_new_events_and_the_adapter_reads_them():
    adapter = EasyParcel()
    numbers = ["EPOFD1", "EPRTN1", "EPFAD1"]
    expected = sum(len(expected_events(n, 3)) for n in numbers)
    with Receiver() as receiver, webhook_sim(receiver) as server:
        # given registered numbers, when three simulated days pass
        control(server.url, "shipments", {"awb_numbers": numbers})
        control(server.url, "clock", {"advance_seconds": 3 * 86400})
        bodies = receiver.wait_for(lambda got: len(got) >= expected)
        time.sleep(0.2)
        counted = stats(server.url)["webhooks"]
    # then one webhook per new event arrived, each readable by the real adapter
    assert len(bodies) == expected
    messages = [adapter.parse_webhook(body) for body in bodies]
    assert len({m.event_id for m in messages}) == expected
    for number in numbers:
        ours = [m.updates[0] for m in messages if m.updates[0].tracking_number == number]
        newest = [update.events[-1] for update in ours]
        assert [(e.time, e.status) for e in newest] == [
            (e.time, e.intended_status) for e in expected_events(number, 3)]
    assert counted["delivered"] == expected and counted["failed"] == 0


def test_numbers_seen_in_polls_get_webhooks_later():
    with Receiver() as receiver, webhook_sim(receiver) as server:
        client = open_client(server.url)
        assert client.fetch_tracking(["EPLAT1"]).is_success
        client.close()
        control(server.url, "clock", {"advance_seconds": 3 * 3600})
        bodies = receiver.wait_for(lambda got: len(got) >= 1)
    assert EasyParcel().parse_webhook(bodies[0]).updates[0].tracking_number == "EPLAT1"


def test_duplicates_and_shuffled_deliveries_can_be_asked_for():
    number = "EPLAT7"
    events = expected_events(number, 3)
    assert len(events) >= 3
    with Receiver() as receiver, webhook_sim(receiver, webhook_duplicates=1.0, webhook_shuffle=True) as server:
        control(server.url, "shipments", {"awb_numbers": [number]})
        control(server.url, "clock", {"advance_seconds": 3 * 86400})
        bodies = receiver.wait_for(lambda got: len(got) >= 2 * len(events))
    messages = [EasyParcel().parse_webhook(body) for body in bodies]
    ids = [m.event_id for m in messages]
    assert len(ids) == 2 * len(events) and all(ids.count(i) == 2 for i in ids)
    times = [m.updates[0].events[-1].time for m in messages]
    assert times != sorted(times)  # out of order


def test_a_failed_delivery_is_retried():
    with Receiver(failures=2) as receiver, webhook_sim(receiver) as server:
        control(server.url, "shipments", {"awb_numbers": ["EPLAT2"]})
        control(server.url, "clock", {"advance_seconds": 2.2 * 3600})
        receiver.wait_for(lambda got: len(got) >= 1)
        time.sleep(0.2)
        counted = stats(server.url)["webhooks"]
    assert counted["retries"] >= 2 and counted["delivered"] >= 1 and counted["failed"] == 0


# --- the command --------------------------------------------------------------------------------------

def test_sim_command_serves_in_the_foreground_until_interrupted():
    code = ("import argparse, sys; from sim import cli; p = argparse.ArgumentParser(prog='trackcache sim');"
            "cli.add_arguments(p); sys.exit(cli.run(p.parse_args(sys.argv[1:])))")
    process = subprocess.Popen(
        [sys.executable, "-c", code, "--port", "0", "--speed", "0", "--epoch", "2026-03-01T00:00:00Z"],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )
    try:
        banner = process.stdout.readline()
        url = banner.split(" on ", 1)[1].split(" ", 1)[0]
        deadline = time.monotonic() + 15
        while True:
            try:
                body = requests.get(f"{url}/_sim/stats", timeout=2).json()
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline, "the simulator did not come up"
                time.sleep(0.05)
        assert body["sim_time"] == "2026-03-01T00:00:00Z"
    finally:
        process.send_signal(signal.SIGINT)
        returncode = process.wait(timeout=15)
        process.stdout.close()
        process.stderr.close()
    assert returncode == 0


def test_sim_command_refuses_a_port_in_use():
    taken = bind_socket("127.0.0.1", 0)
    taken.listen()
    try:
        code = ("import argparse, sys; from sim import cli; p = argparse.ArgumentParser();"
                "cli.add_arguments(p); sys.exit(cli.run(p.parse_args(sys.argv[1:])))")
        result = subprocess.run([sys.executable, "-c", code, "--port", str(taken.getsockname()[1])],
                                cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
                                text=True, timeout=60, check=False)
    finally:
        taken.close()
    assert result.returncode == 4
    assert len(result.stderr.strip().splitlines()) == 1 and "cannot listen" in result.stderr
