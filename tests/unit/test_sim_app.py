"""The simulator app through Starlette's TestClient: OAuth, EasyParcel's error bodies, tracking
answers (not_found, omitted items), legacy API, injected faults, quota, stats and control API."""
from __future__ import annotations

import base64
import json
import time
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from starlette.exceptions import StarletteDeprecationWarning

# Starlette 1.10's TestClient warns at import that it prefers httpx2 over httpx (requirements-dev
# pins httpx); the client works the same, so that one warning is let through here.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

from sim import journeys as J
from sim.app import create_app
from sim.faults import FaultSettings
from sim.server import SimulatorConfig

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "easyparcel"
EPOCH = datetime(2026, 3, 1, tzinfo=UTC)
TRACKING = "/open_api/2026-06/shipment/tracking_status"
LEGACY = "/?ac=EPTrackingBulk"


def fixture(name: str):
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


class FakeWallClock:
    def __init__(self) -> None:
        self.now = datetime(2026, 5, 5, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def make_client(wall: FakeWallClock | None = None, **options) -> TestClient:
    config = SimulatorConfig(**{"speed": 0, "epoch": EPOCH, "seed": "unit", **options})
    return TestClient(create_app(config, wall_clock=wall or FakeWallClock()))


def basic(client_id: str = "demo-client", secret: str = "demo-secret") -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


def token_for(client: TestClient) -> str:
    response = client.post("/oauth/token", data={"grant_type": "client_credentials"}, headers=basic())
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


def track(client: TestClient, numbers, token: str | None = None, path: str = TRACKING):
    token = token or token_for(client)
    return client.post(path, json={"awb_numbers": numbers}, headers={"Authorization": f"Bearer {token}"})


def legacy(client: TestClient, numbers, api_key: str | None = "demo-api-key"):
    form = {} if api_key is None else {"api": api_key}
    form.update({f"bulk[{i}][awb_no]": n for i, n in enumerate(numbers)})
    return client.post(LEGACY, data=form)


@pytest.fixture
def client():
    with make_client() as test_client:
        yield test_client


# --- OAuth ----------------------------------------------------------------------------------------

def test_token_has_the_documented_shape(client):
    response = client.post("/oauth/token", data={"grant_type": "client_credentials"}, headers=basic())
    body = response.json()
    sample = fixture("openapi_tracking_request.json")["oauth"]["sample_token_response"]
    assert list(body) == list(sample) and list(body["app"]) == list(sample["app"])
    assert body["token_type"] == "Bearer" and body["expires_in"] == 36000
    assert body["app"]["client_id"] == "demo-client"
    assert body["expires_at"].endswith("Z") and len(body["expires_at"]) == 24


@pytest.mark.parametrize("headers", [basic(secret="wrong"), basic(client_id="other"), {}, {"Authorization": "Basic !!"}])
def test_wrong_client_credentials_get_401(client, headers):
    response = client.post("/oauth/token", data={"grant_type": "client_credentials"}, headers=headers)
    assert response.status_code == 401
    assert response.json() == {"status_code": 401, "message": "Invalid client credentials", "data": None}


def test_unsupported_grant_is_a_validation_error(client):
    response = client.post("/oauth/token", data={"grant_type": "password"}, headers=basic())
    assert response.status_code == 400 and response.json()["message"] == "Validation error"


def test_a_refresh_token_gives_a_new_access_token_once(client):
    first = client.post("/oauth/token", data={"grant_type": "client_credentials"}, headers=basic()).json()
    form = {"grant_type": "refresh_token", "refresh_token": first["refresh_token"]}
    renewed = client.post("/oauth/token", data=form, headers=basic())
    assert renewed.status_code == 200 and renewed.json()["access_token"] != first["access_token"]
    assert client.post("/oauth/token", data=form, headers=basic()).status_code == 401


def test_credentials_can_be_changed_by_options():
    with make_client(client_id="shop", client_secret="s3cret") as custom:
        assert custom.post("/oauth/token", data={"grant_type": "client_credentials"}, headers=basic()).status_code == 401
        response = custom.post("/oauth/token", data={"grant_type": "client_credentials"},
                               headers=basic("shop", "s3cret"))
        assert response.status_code == 200


# --- Open API errors ------------------------------------------------------------------------------

def test_missing_token_gets_the_named_401_body(client):
    response = client.post(TRACKING, json={"awb_numbers": ["EPDEL1"]})
    assert response.status_code == 401
    expected = fixture("openapi_auth_error_invalid_token.json")
    expected["error"]["name"] = "missing_token"
    assert response.json() == expected


def test_unknown_token_gets_easyparcels_invalid_token_body(client):
    response = track(client, ["EPDEL1"], token="not-a-token")
    assert response.status_code == 401
    assert response.json() == fixture("openapi_auth_error_invalid_token.json")


def test_expired_token_gets_easyparcels_message_form_body():
    wall = FakeWallClock()
    with make_client(wall, token_ttl_seconds=60) as client:
        token = token_for(client)
        assert track(client, ["EPDEL1"], token).status_code == 200
        wall.now += timedelta(seconds=61)
        response = track(client, ["EPDEL1"], token)
    assert response.status_code == 401
    assert response.json() == fixture("openapi_auth_error_message_form.json")


@pytest.mark.parametrize("body", [{"awb_numbers": []}, {}, {"awb_numbers": None}, "not json"])
def test_empty_awb_list_is_easyparcels_validation_error(client, body):
    headers = {"Authorization": f"Bearer {token_for(client)}"}
    if isinstance(body, str):
        response = client.post(TRACKING, content=body, headers=headers)
    else:
        response = client.post(TRACKING, json=body, headers=headers)
    assert response.status_code == 400
    assert response.json() == fixture("openapi_validation_error.json")


def test_more_than_100_numbers_are_refused(client):
    response = track(client, [f"N{i}" for i in range(101)])
    assert response.status_code == 400
    assert response.json()["data"]["errors"] == ["The awb numbers may not have more than 100 items."]
    assert track(client, [f"N{i}" for i in range(100)]).status_code == 200


def test_unknown_api_version_is_404(client):
    response = track(client, ["EPDEL1"], path="/open_api/2024-01/shipment/tracking_status")
    assert response.status_code == 404


# --- Open API answers -----------------------------------------------------------------------------

def test_a_mixed_batch_answers_like_easyparcel(client):
    response = track(client, ["EPDEL1", "EPEXC1", "EPNOF1", "EPCAN1"])
    body = response.json()
    assert response.status_code == 200
    assert list(body) == ["status_code", "request_id", "message", "data"]
    assert body["status_code"] == 200 and body["message"] == "3 requests success, 1 request error."
    millis, _, request_uuid = body["request_id"].partition(".")
    assert millis.isdigit() and len(request_uuid) == 36
    results = {item["awb_number"]: item for item in body["data"]["results"]}
    assert results["EPNOF1"] == {"awb_number": "EPNOF1", "status": "not_found", "message": "AWB number not found"}
    assert 5 in {e["shipment_status_code"] for e in results["EPDEL1"]["status_log"]}
    assert results["EPCAN1"]["status"] == "success" and "Cancelled" in {
        e["tracking_status"] for e in results["EPCAN1"]["status_log"]}


def test_old_api_versions_use_the_same_code_table_as_the_adapter(client):
    # EasyParcel rewrote every version's docs to the new table, and the adapter reads them so.
    body = track(client, ["EPDEL1"], path="/open_api/2025-12/shipment/tracking_status").json()
    (item,) = body["data"]["results"]
    delivered = [e for e in item["status_log"] if e["tracking_status"] in ("Delivered",) or
                 e["tracking_status"].startswith("Deliverd")]
    assert delivered[0]["shipment_status_code"] == 5


def test_flaky_numbers_are_sometimes_left_out_entirely():
    with make_client(flaky_omit_rate=1.0) as client:
        body = track(client, ["EPFLK1", "EPDEL1", "EPDEL2"]).json()
    assert body["message"] == "2 requests success, 1 request error."
    assert [item["awb_number"] for item in body["data"]["results"]] == ["EPDEL1", "EPDEL2"]


def test_flaky_omission_follows_the_seed():
    def statuses() -> list[int]:
        with make_client() as client:
            token = token_for(client)
            return [len(track(client, ["EPFLK7"], token).json()["data"]["results"]) for _ in range(30)]

    first = statuses()
    assert first == statuses() and 0 < sum(first) < 30


def test_events_appear_as_the_clock_is_advanced(client):
    before = track(client, ["EPLAT1"]).json()["data"]["results"][0]
    assert before["status"] == "not_found"
    client.post("/_sim/clock", json={"advance_seconds": 3 * 3600})
    after = track(client, ["EPLAT1"]).json()["data"]["results"][0]
    assert after["status"] == "success"


def test_the_clock_runs_at_the_configured_speed():
    wall = FakeWallClock()
    with make_client(wall, speed=720) as client:
        wall.now += timedelta(minutes=2)
        assert client.get("/_sim/clock").json()["sim_time"] == "2026-03-02T00:00:00Z"
        client.post("/_sim/clock", json={"speed": 0})
        wall.now += timedelta(minutes=2)
        assert client.get("/_sim/clock").json()["sim_time"] == "2026-03-02T00:00:00Z"


# --- legacy API -----------------------------------------------------------------------------------

def test_legacy_tracking_answers_in_the_legacy_envelope(client):
    body = legacy(client, ["EPDEL1", "000000000000X"]).json()
    assert (body["api_status"], body["error_code"], body["error_remark"]) == ("Success", "0", "")
    found, missing = body["result"]
    assert found["awb"] == "EPDEL1" and found["status"] == "Success" and found["status_list"]
    # "000000000000X" has the default scenario, whose journey starts at the epoch: visible at once
    assert missing["awb"] == "000000000000X"
    assert legacy(client, ["EPNOF1"]).json()["result"] == [J.legacy_not_found_item("EPNOF1")]


def test_legacy_missing_key_is_error_3(client):
    response = legacy(client, ["EPDEL1"], api_key=None)
    assert response.status_code == 200
    assert response.json() == fixture("legacy_eptrackingbulk_response_missing_api_key.json")


def test_legacy_wrong_key_is_error_5(client):
    response = legacy(client, ["EPDEL1"], api_key="someone-elses-key")
    assert response.status_code == 200
    assert response.json() == fixture("legacy_eptrackingbulk_response_unauthorized.json")


def test_legacy_malformed_key_is_error_4(client):
    body = legacy(client, ["EPDEL1"], api_key="x" * 40).json()
    assert body == {"api_status": "Error", "error_code": "4", "error_remark": "Invalid api key"}


def test_legacy_without_numbers_is_error_6(client):
    assert legacy(client, []).json()["error_code"] == "6"


def test_legacy_can_be_given_another_key():
    with make_client(api_key="k-123") as client:
        assert legacy(client, ["EPDEL1"]).json()["error_code"] == "5"
        assert legacy(client, ["EPDEL1"], api_key="k-123").json()["api_status"] == "Success"


# --- faults ---------------------------------------------------------------------------------------

def test_fail_next_answers_5xx_then_recovers(client):
    client.post("/_sim/faults", json={"fail_next": 1, "error_status": 503})
    failed = track(client, ["EPDEL1"])
    assert failed.status_code == 503
    assert failed.json() == {"status_code": 503, "message": "Service Temporarily Unavailable", "data": None}
    assert track(client, ["EPDEL1"]).status_code == 200


def test_rate_limit_next_answers_429_with_retry_after(client):
    assert client.post("/_sim/faults", json={"rate_limit_next": 1, "retry_after_seconds": 9}).status_code == 200
    limited = track(client, ["EPDEL1"])
    assert limited.status_code == 429 and limited.headers["retry-after"] == "9"
    assert limited.json()["status_code"] == 429


def test_legacy_faults_look_like_a_gateway_page(client):
    client.post("/_sim/faults", json={"fail_next": 1, "error_status": 502})
    response = legacy(client, ["EPDEL1"])
    assert response.status_code == 502 and "502 Bad Gateway" in response.text


def test_a_timeout_hangs_then_answers_504(client):
    client.post("/_sim/faults", json={"timeout_next": 1, "timeout_seconds": 0.3})
    started = time.monotonic()
    response = track(client, ["EPDEL1"])
    assert response.status_code == 504 and time.monotonic() - started >= 0.3


def test_latency_delays_every_tracking_call():
    with make_client(faults=FaultSettings(latency_min=0.2, latency_max=0.3)) as client:
        token = token_for(client)
        started = time.monotonic()
        assert track(client, ["EPDEL1"], token).status_code == 200
        assert 0.2 <= time.monotonic() - started < 2


def test_random_faults_are_reproducible_with_the_seed():
    def statuses(seed: str) -> list[int]:
        settings = FaultSettings(error_rate=0.3, rate_limit_rate=0.2)
        with make_client(seed=seed, faults=settings) as client:
            token = token_for(client)
            return [track(client, ["EPDEL1"], token).status_code for _ in range(40)]

    first = statuses("a")
    assert first == statuses("a") != statuses("b")
    assert {200, 429, 500} == set(first)


def test_the_daily_quota_answers_429_until_midnight():
    wall = FakeWallClock()
    with make_client(wall, faults=FaultSettings(daily_quota=2)) as client:
        token = token_for(client)
        assert [track(client, ["EPDEL1"], token).status_code for _ in range(2)] == [200, 200]
        refused = track(client, ["EPDEL1"], token)
        assert refused.status_code == 429 and refused.headers["retry-after"] == str(12 * 3600)
        assert legacy(client, ["EPDEL1"]).status_code == 429
        assert client.get("/_sim/stats").json()["quota"] == {"daily_quota": 2, "used_today": 2, "remaining": 0}
        wall.now += timedelta(hours=12)
        assert track(client, ["EPDEL1"]).status_code == 200  # (the old token has expired by now)


def test_bad_fault_settings_are_refused_and_change_nothing(client):
    response = client.post("/_sim/faults", json={"error_rate": 2})
    assert response.status_code == 400 and "error_rate" in response.json()["error"]
    assert client.get("/_sim/faults").json()["error_rate"] == 0


def test_latency_can_be_set_as_a_range_at_runtime(client):
    body = client.post("/_sim/faults", json={"latency": "0-0.01"}).json()
    assert (body["latency_min"], body["latency_max"]) == (0, 0.01)


# --- stats and control ----------------------------------------------------------------------------

def test_stats_count_calls_numbers_and_faults(client):
    token = token_for(client)
    track(client, ["EPDEL1", "EPNOF1"], token)
    track(client, ["EPDEL1"], token="bad")
    client.post("/_sim/faults", json={"rate_limit_next": 1})
    track(client, ["EPDEL1"], token)
    legacy(client, ["EPDEL2"])
    stats = client.get("/_sim/stats").json()
    assert stats["calls"] == {"oauth_token": 1, "open_api_tracking": 3, "legacy_tracking": 1}
    assert stats["tracking_calls"] == 4
    assert stats["responses"] == {"200": 3, "401": 1, "429": 1}
    assert stats["tracking_numbers"] == {"requested": 3, "success": 2, "not_found": 1, "omitted": 0}
    assert stats["faults"]["rate_limited"] == 1 and stats["faults"]["error"] == 0
    assert stats["sim_time"] == stats["epoch"] == "2026-03-01T00:00:00Z"


def test_reset_clears_counters_faults_and_clock(client):
    token = token_for(client)
    track(client, ["EPDEL1"], token)
    client.post("/_sim/faults", json={"error_rate": 1})
    client.post("/_sim/clock", json={"advance_seconds": 3600})
    stats = client.post("/_sim/reset").json()
    assert stats["calls"] == {} and stats["fault_settings"]["error_rate"] == 0
    assert stats["sim_time"] == "2026-03-01T00:00:00Z"
    assert track(client, ["EPDEL1"], token).status_code == 200  # tokens survive a reset


def test_journey_endpoint_shows_the_whole_journey(client):
    body = client.get("/_sim/journeys/EPOFD1").json()
    assert body["scenario"] == "out_for_delivery" and body["end_status"] == "delivered"
    assert [e["is_visible"] for e in body["events"]][-1] is False


def test_scenarios_are_listed(client):
    rows = client.get("/_sim/scenarios").json()
    assert [row["prefix"] for row in rows][:3] == ["EPDEL", "EPOFD", "EPTRN"]
    assert client.get("/").json()["scenarios"] == rows


def test_registered_shipments_produce_webhooks_for_new_events_only(client):
    state = client.app.state.sim
    response = client.post("/_sim/shipments", json={"awb_numbers": ["EPOFD1", "EPRTN1"]})
    assert response.json() == {"registered": 2, "known_shipments": 2}
    assert state.collect_webhooks() == []  # what was visible at registration is not news
    client.post("/_sim/clock", json={"advance_seconds": 2 * 86400})
    hooks = state.collect_webhooks()
    assert {h["awb_number"] for h in hooks} == {"EPOFD1", "EPRTN1"}
    assert {h["latest_tracking_status"] for h in hooks} >= {"Returned to sender"}
    assert all(h["topic"] == "shipment.tracking.update" for h in hooks)
    assert state.collect_webhooks() == []


def test_shipment_registration_validates_its_body(client):
    assert client.post("/_sim/shipments", json={"awb_numbers": []}).status_code == 400
    many = client.post("/_sim/shipments", json={"awb_numbers": [f"N{i}" for i in range(500)]})
    assert many.json()["registered"] == 500


def test_numbers_seen_in_tracking_calls_are_watched_when_webhooks_are_on():
    # the URL is never called: the sender only runs in the lifespan, and this client has none
    app = create_app(SimulatorConfig(speed=0, epoch=EPOCH, webhook_url="http://127.0.0.1:9/hooks"))
    client = TestClient(app)
    track(client, ["EPFAD1"])
    client.post("/_sim/clock", json={"advance_seconds": 2 * 86400})
    hooks = app.state.sim.collect_webhooks()
    assert [h["awb_number"] for h in hooks] == ["EPFAD1"] * len(hooks) and len(hooks) >= 2


def test_config_refuses_bad_values():
    with pytest.raises(ValueError, match="speed"):
        SimulatorConfig(speed=-1)
    with pytest.raises(ValueError, match="webhook URL"):
        SimulatorConfig(webhook_url="ftp://x")
    with pytest.raises(ValueError, match="timezone"):
        SimulatorConfig(epoch=datetime(2026, 1, 1))
    assert "demo-secret" not in repr(SimulatorConfig()) and "demo-api-key" not in repr(SimulatorConfig())


# --- the command's options ------------------------------------------------------------------------

def parse_sim_args(*argv: str):
    import argparse

    from sim import cli

    parser = argparse.ArgumentParser(prog="trackcache sim")
    cli.add_arguments(parser)
    return parser.parse_args(list(argv))


def test_options_build_the_config():
    from sim import cli

    config = cli.config_from_args(parse_sim_args(
        "--port", "0", "--speed", "60", "--epoch", "2026-03-01T08:00:00+08:00", "--latency", "2-5",
        "--error-rate", "0.1", "--rate-limit-rate", "0.05", "--retry-after", "30", "--daily-quota", "1000",
        "--webhook-url", "http://127.0.0.1:8000/webhooks/easyparcel", "--webhook-duplicates", "0.2",
        "--webhook-shuffle", "--client-id", "c", "--client-secret", "s", "--api-key", "k"))
    assert (config.port, config.speed, config.epoch) == (0, 60.0, datetime(2026, 3, 1, tzinfo=UTC))
    assert (config.faults.latency_min, config.faults.latency_max, config.faults.daily_quota) == (2, 5, 1000)
    assert (config.faults.error_rate, config.faults.rate_limit_rate, config.faults.retry_after_seconds) == (0.1, 0.05, 30)
    assert config.webhook_shuffle and config.webhook_duplicates == 0.2
    assert (config.client_id, config.client_secret, config.api_key) == ("c", "s", "k")
    defaults = cli.config_from_args(parse_sim_args())
    assert (defaults.port, defaults.client_id, defaults.faults) == (cli.DEFAULT_PORT, "demo-client", FaultSettings())


@pytest.mark.parametrize(("argv", "named"), [
    (("--port", "abc"), "--port"), (("--port", "70000"), "port"), (("--speed", "fast"), "--speed"),
    (("--speed", "-2"), "speed"), (("--epoch", "yesterday"), "--epoch"), (("--latency", "5-2"), "latency"),
    (("--error-rate", "2"), "error_rate"), (("--daily-quota", "lots"), "--daily-quota"),
    (("--webhook-url", "nowhere"), "webhook URL"), (("--webhook-api-version", "2020-01"), "webhook API version"),
    (("--error-status", "404"), "error_status"), (("--timeout-seconds", "999"), "timeout_seconds"),
])
def test_bad_options_end_in_one_line_and_exit_2(capsys, argv, named):
    from sim import cli

    assert cli.run(parse_sim_args(*argv)) == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith("trackcache sim: ") and named in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
