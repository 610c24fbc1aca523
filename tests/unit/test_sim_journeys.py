"""The simulator's journeys: deterministic per number and seed, each scenario in its promised
state at start and at its intended end, played out on the simulated clock, and rendered in
EasyParcel's wire formats with the real quirks (mixed time stamps, unreliable order)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pipeline import status as statuses
from sim import journeys as J

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "easyparcel"
EPOCH = datetime(2026, 3, 1, tzinfo=UTC)
SEED = "test-seed"
SCENARIO_PREFIXES = [s.prefix for s in J.SCENARIOS]


def fixture(name: str):
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def numbers_for(prefix: str, count: int = 25) -> list[str]:
    return [f"{prefix or '6318'}{index:06d}" for index in range(count)]


def parse_stamp(text: str) -> datetime:
    """EasyParcel stamps as the adapter reads them: ISO with Z is UTC, naive is Malaysia time."""
    if text.endswith("Z"):
        return datetime.fromisoformat(text)
    return datetime.fromisoformat(text).replace(tzinfo=J.MALAYSIA).astimezone(UTC)


# --- determinism ---------------------------------------------------------------------------------

def test_same_number_seed_and_epoch_give_the_same_journey():
    for number in numbers_for("", 5) + numbers_for("EPRTN", 5):
        assert J.build_journey(number, SEED, EPOCH) == J.build_journey(number, SEED, EPOCH)


def test_another_seed_gives_another_journey():
    number = "631888951038"
    assert J.build_journey(number, "a", EPOCH).events != J.build_journey(number, "b", EPOCH).events


def test_journeys_do_not_depend_on_python_hash_randomisation():
    # given the same journey rendered by two interpreters with different hash seeds
    code = (
        "import json, sys; from datetime import datetime, UTC; from sim import journeys as J;"
        "j = J.build_journey('EPFAD123', 's', datetime(2026, 3, 1, tzinfo=UTC));"
        "print(json.dumps(J.render_openapi_item(j, datetime(2026, 4, 1, tzinfo=UTC), '2026-06', 's')))"
    )
    outputs = []
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed, "PYTHONPATH": str(ROOT)}
        result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                                timeout=60, check=True)
        outputs.append(result.stdout)
    # then they are identical
    assert outputs[0] == outputs[1] and outputs[0].strip()


# --- scenarios ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("number", "prefix"), [
    ("EPDEL0001", "EPDEL"), ("epexc42", "EPEXC"), ("EPRTN", "EPRTN"), ("EPNOF9", "EPNOF"),
    ("960301021837659", ""), ("XEPDEL1", ""),
])
def test_the_prefix_picks_the_scenario(number, prefix):
    assert J.scenario_for(number).prefix == prefix


def test_scenario_table_is_consistent():
    prefixes = [s.prefix for s in J.SCENARIOS]
    assert len(set(prefixes)) == len(prefixes)
    assert J.SCENARIOS[-1].prefix == "" and all(prefixes[:-1])
    for scenario in J.SCENARIOS:
        assert scenario.plan in J.PLANS
        assert scenario.end_status is None or statuses.is_known(scenario.end_status)
        planned = {kind for step in J.PLANS[scenario.plan] for kind in step.kinds}
        assert not planned or scenario.anchor_kind in planned
    for kind in J.EVENT_KINDS.values():
        assert statuses.is_known(kind.intended_status)


@pytest.mark.parametrize("prefix", SCENARIO_PREFIXES)
def test_every_scenario_reaches_its_intended_end(prefix):
    scenario = J.SCENARIOS[SCENARIO_PREFIXES.index(prefix)]
    for number in numbers_for(prefix):
        journey = J.build_journey(number, SEED, EPOCH)
        if scenario.end_status is None:
            assert journey.events == ()
            continue
        times = [event.time for event in journey.events]
        assert times == sorted(times) and len(set(times)) == len(times)
        assert journey.events[-1].intended_status == scenario.end_status
        # the end comes within a few simulated days of the start (a week or so across the sea)
        assert journey.events[-1].time <= EPOCH + timedelta(days=10)


# Status of each scenario's numbers at the given simulated time after start (None: not found).
STATE_SOON_AFTER_START = {
    "EPDEL": (0, "delivered"),
    "EPOFD": (0, "out_for_delivery"),
    "EPTRN": (0, "in_transit"),
    "EPFAD": (0, "failed_attempt"),
    "EPEXC": (0, "exception"),
    "EPRTN": (4, "returned"),
    "EPCAN": (0, "cancelled"),
    "EPPND": (0, "info_received"),
    "EPNOF": (0, None),
    "EPLAT": (0, None),
    "EPFLK": (0, "info_received"),
    "": (1, "info_received"),
}


@pytest.mark.parametrize("prefix", SCENARIO_PREFIXES)
def test_demo_numbers_are_in_every_status_soon_after_start(prefix):
    hours, expected = STATE_SOON_AFTER_START[prefix]
    for number in numbers_for(prefix):
        visible = J.visible_events(J.build_journey(number, SEED, EPOCH), EPOCH + timedelta(hours=hours))
        assert (visible[-1].intended_status if visible else None) == expected, number


def test_late_numbers_appear_after_two_simulated_hours():
    journey = J.build_journey("EPLAT1", SEED, EPOCH)
    assert J.visible_events(journey, EPOCH + timedelta(hours=1, minutes=59)) == ()
    assert J.visible_events(journey, EPOCH + timedelta(hours=2))


def test_stuck_scenarios_never_move_again():
    for prefix in ("EPEXC", "EPPND", "EPCAN"):
        journey = J.build_journey(f"{prefix}1", SEED, EPOCH)
        assert J.visible_events(journey, EPOCH) == journey.events


def test_normal_journeys_sometimes_fail_an_attempt_and_use_a_transit_hub():
    kinds = [[e.kind for e in J.build_journey(n, SEED, EPOCH).events] for n in numbers_for("", 200)]
    with_retry = sum("failed_attempt" in k for k in kinds)
    assert 10 < with_retry < 60
    assert any(k.count("hub_arrival") == 3 for k in kinds) and any(k.count("hub_arrival") == 2 for k in kinds)
    assert any("dropped_off" in k for k in kinds) and any("collected" in k for k in kinds)


def _handover_to_delivery_days(journey):
    times = {event.kind: event.time for event in reversed(journey.events)}
    handed = times.get("collected") or times.get("dropped_off")
    return (journey.events[-1].time - handed).total_seconds() / 86400


def _states(journey):
    from pipeline.estimates import route_of
    events = [{"time": e.time.isoformat(), "status": e.intended_status, "location": e.location} for e in journey.events]
    origin, destination = route_of(events)
    return origin[0], destination[0]


def test_transit_time_depends_on_the_route():
    journeys = [J.build_journey(n, SEED, EPOCH) for n in numbers_for("", 300)]
    west, sea = [], []
    for journey in journeys:
        origin, destination = _states(journey)
        kind = J.route_kind(origin, destination)
        (west if kind == "west" else sea if kind == "sea" else []).append(_handover_to_delivery_days(journey))
    assert west and sea
    assert max(west) < 4.5 and sorted(west)[len(west) // 2] < 2.5
    assert min(sea) > 2 and sorted(sea)[len(sea) // 2] > 3.5


def test_couriers_make_no_scans_on_sundays():
    for number in numbers_for("", 300):
        for event in J.build_journey(number, SEED, EPOCH).events:
            if not event.is_easyparcel:
                assert event.time.astimezone(J.MALAYSIA).weekday() != 6, (number, event)


def test_history_journeys_are_finished_by_the_end_and_mostly_delivered():
    end = datetime(2026, 11, 30, tzinfo=UTC)
    history = J.history_journeys(400, SEED, end=end, days=60)
    assert len(history) == 400 and len({j.tracking_number for j in history}) == 400
    assert all(j.events[-1].time <= end and j.events[0].time >= end - timedelta(days=60) for j in history)
    outcomes = [j.events[-1].kind for j in history]
    assert 1 <= outcomes.count("returned") <= 30 and outcomes.count("delivered") == 400 - outcomes.count("returned")
    assert history == J.history_journeys(400, SEED, end=end, days=60)


# --- time -----------------------------------------------------------------------------------------

def test_simulated_time_runs_at_the_given_speed():
    started = datetime(2026, 5, 5, 12, 0, tzinfo=UTC)
    assert J.simulated_time(EPOCH, 720, started, started) == EPOCH
    assert J.simulated_time(EPOCH, 720, started, started + timedelta(minutes=2)) == EPOCH + timedelta(days=1)
    assert J.simulated_time(EPOCH, 0, started, started + timedelta(hours=5), 60) == EPOCH + timedelta(minutes=1)


def test_events_become_visible_as_simulated_time_passes_them():
    journey = J.build_journey("631888951038", SEED, EPOCH)
    for index, event in enumerate(journey.events):
        assert len(J.visible_events(journey, event.time - timedelta(seconds=1))) == index
        assert len(J.visible_events(journey, event.time)) == index + 1


# --- wire formats ---------------------------------------------------------------------------------

def rendered_items(version: str = "2026-06", count: int = 60) -> list[dict]:
    items = []
    for number in numbers_for("", count) + numbers_for("EPRTN", 10) + numbers_for("EPFAD", 10):
        journey = J.build_journey(number, SEED, EPOCH)
        item = J.render_openapi_item(journey, EPOCH + timedelta(days=10), version, SEED)
        assert item is not None
        items.append(item)
    return items


def test_open_api_items_have_exactly_the_fixture_fields():
    sample = fixture("openapi_tracking_response_partial_not_found.json")["data"]["results"]
    for item in rendered_items(count=5):
        assert list(item) == list(sample[0])
        for entry in item["status_log"]:
            assert list(entry) == list(sample[0]["status_log"][0])
    assert list(J.openapi_not_found_item("1234567890")) == list(sample[3])
    assert J.openapi_not_found_item("1234567890") == sample[3]


def test_envelope_message_counts_like_easyparcel():
    body = J.openapi_tracking_response([], 3, 1, "1.x")
    assert body["message"] == fixture("openapi_tracking_response_partial_not_found.json")["message"]
    assert list(body) == ["status_code", "request_id", "message", "data"]


def test_latest_fields_copy_the_last_element_as_returned():
    for item in rendered_items():
        last = item["status_log"][-1]
        assert item["latest_event_date"] == last["event_date"]
        assert item["latest_tracking_status"] == last["tracking_status"]
        assert item["latest_shipment_status_code"] == last["shipment_status_code"]


def test_status_logs_mix_iso_utc_and_naive_malaysia_time():
    for item in rendered_items(count=10):
        stamps = [entry["event_date"] for entry in item["status_log"]]
        iso = [s for s in stamps if s.endswith("Z")]
        naive = [s for s in stamps if not s.endswith("Z")]
        assert len(iso) == 1 and naive
        assert all(len(s) == 24 and s[10] == "T" for s in iso)  # 2026-01-23T04:28:52.494Z
        assert all(len(s) == 19 and s[10] == " " for s in naive)  # 2026-01-23 12:29:47


def test_status_log_order_is_not_reliably_chronological():
    orders = {"oldest_first": 0, "newest_first": 0, "other": 0}
    for item in rendered_items():
        times = [parse_stamp(entry["event_date"]) for entry in item["status_log"]]
        if times == sorted(times):
            orders["oldest_first"] += 1
        elif times == sorted(times, reverse=True):
            orders["newest_first"] += 1
        else:
            orders["other"] += 1
    assert all(count > 3 for count in orders.values()), orders


def test_the_latest_element_is_not_always_the_newest_event():
    items = rendered_items()
    newest_last = [parse_stamp(i["latest_event_date"]) == max(parse_stamp(e["event_date"]) for e in i["status_log"])
                   for i in items]
    assert any(newest_last) and not all(newest_last)


def test_the_same_state_always_renders_the_same_order():
    journey = J.build_journey("EPFAD77", SEED, EPOCH)
    later = EPOCH + timedelta(days=3)
    assert J.render_openapi_item(journey, later, "2026-06", SEED) == J.render_openapi_item(journey, later, "2026-06", SEED)


def test_nothing_visible_renders_as_none():
    journey = J.build_journey("EPNOF1", SEED, EPOCH)
    assert J.render_openapi_item(journey, EPOCH + timedelta(days=9), "2026-06", SEED) is None
    assert J.render_legacy_item(journey, EPOCH + timedelta(days=9)) is None


@pytest.mark.parametrize("version", J.OPENAPI_VERSIONS)
def test_codes_come_from_the_version_s_code_table(version):
    tables = fixture("status_codes.json")
    table_name = ("openapi_shipment_status_codes" if version >= "2026-03"
                  else "openapi_tracking_status_codes_2025_09_table")
    allowed = {int(code) for code in tables[table_name]["codes"]}
    for item in rendered_items(version, count=20):
        assert {entry["shipment_status_code"] for entry in item["status_log"]} <= allowed


def test_new_table_codes_match_the_documented_meanings():
    expected = {"info_sent": 7, "order_created": 7, "collected": 3, "dropped_off": 11, "hub_departure": 4,
                "delivered": 5, "returned": 6, "on_hold": 8}
    for kind, code in expected.items():
        assert J.status_code_for(kind, "2026-06") == code
    # every documented version uses the new table, as the adapter does
    assert J.status_code_for("delivered", "2025-12") == 5
    assert J.status_code_for("on_hold", "2025-09") == 8


def test_legacy_items_have_the_fixture_fields_newest_first_in_malaysia_time():
    sample = fixture("legacy_eptrackingbulk_response_in_transit.json")["result"][0]
    journey = J.build_journey("EPDEL5", SEED, EPOCH)
    item = J.render_legacy_item(journey, EPOCH)
    assert list(item) == list(sample)
    assert list(item["status_list"][0]) == list(sample["status_list"][0])
    stamps = [datetime.fromisoformat(f"{e['event_date']} {e['event_time']}") for e in item["status_list"]]
    assert stamps == sorted(stamps, reverse=True)
    newest = journey.events[-1]
    assert stamps[0].replace(tzinfo=J.MALAYSIA) == newest.time
    assert item["latest_status"] == item["status_list"][0]["status"] == newest.text
    assert item["latest_update"] == f"{item['status_list'][0]['event_date']} {item['status_list'][0]['event_time']}"


def test_legacy_not_found_matches_the_fixture():
    failed = fixture("legacy_eptrackingbulk_response_bulk_partial.json")["result"][1]
    assert J.legacy_not_found_item("000000000000") == failed
    assert J.legacy_error("5", "Unauthorized user") == fixture("legacy_eptrackingbulk_response_unauthorized.json")


def test_webhooks_look_like_the_fixture():
    sample = fixture("webhook_shipment_tracking_update.json")
    journey = J.build_journey("EPDEL9", SEED, EPOCH)
    last = len(journey.events) - 1
    hook = J.render_webhook(journey, last, SEED)
    assert list(hook) == list(sample)
    assert list(hook["status_log"][0]) == list(sample["status_log"][0])
    assert len(hook["status_log"]) == len(journey.events)
    times = [parse_stamp(entry["timestamp"]) for entry in hook["status_log"]]
    assert times == sorted(times, reverse=True)  # newest first, like the sample
    assert hook["latest_tracking_status"] == journey.events[-1].text
    assert hook["timestamp"] == hook["status_log"][0]["timestamp"]


def test_webhook_uuids_are_stable_and_unique_per_event():
    journey = J.build_journey("631888951038", SEED, EPOCH)
    ids = [J.render_webhook(journey, i, SEED)["uuid"] for i in range(len(journey.events))]
    assert len(set(ids)) == len(ids)
    assert ids == [J.render_webhook(journey, i, SEED)["uuid"] for i in range(len(journey.events))]


def test_flaky_omission_is_deterministic_and_near_its_rate():
    decisions = [J.is_omitted(SEED, "EPFLK1", n, 0.5) for n in range(1, 401)]
    assert decisions == [J.is_omitted(SEED, "EPFLK1", n, 0.5) for n in range(1, 401)]
    assert 150 < sum(decisions) < 250
    assert not any(J.is_omitted(SEED, "EPFLK1", n, 0.0) for n in range(1, 50))


def test_describe_journey_marks_what_is_visible():
    journey = J.build_journey("EPOFD3", SEED, EPOCH)
    described = J.describe_journey(journey, EPOCH)
    assert described["scenario"] == "out_for_delivery"
    visible = [e for e in described["events"] if e["is_visible"]]
    assert visible and visible[-1]["kind"] == "out_for_delivery"
    assert not described["events"][-1]["is_visible"]


# --- the real adapter reads what the simulator writes ---------------------------------------------

def _adapter(api: str = "open", version: str = "2026-06"):
    from pipeline.couriers.easyparcel import EasyParcel

    return EasyParcel(api=api, base_url="http://sim.invalid", api_version=version)


def _response(body: dict):
    from pipeline.couriers.base import HttpResponse

    return HttpResponse(status=200, headers={"content-type": "application/json"}, body=json.dumps(body).encode())


def _all_journeys() -> list[J.Journey]:
    return [J.build_journey(number, SEED, EPOCH) for prefix in SCENARIO_PREFIXES for number in numbers_for(prefix, 12)]


@pytest.mark.parametrize("version", J.OPENAPI_VERSIONS)
def test_adapter_maps_every_open_api_event_to_its_intended_status(version):
    later = EPOCH + timedelta(days=10)
    journeys = [j for j in _all_journeys() if j.events]
    items = [J.render_openapi_item(j, later, version, SEED) for j in journeys]
    body = J.openapi_tracking_response(items, len(items), 0, "1.test")
    result = _adapter("open", version).parse_tracking_response(_response(body), [j.tracking_number for j in journeys])
    assert not result.failures
    for journey, update in zip(journeys, result.updates, strict=True):
        assert update.tracking_number == journey.tracking_number
        assert [e.time for e in update.events] == [e.time for e in journey.events]
        assert [(e.raw_text, e.status) for e in update.events] == [
            (e.text, e.intended_status) for e in journey.events]


def test_adapter_maps_every_legacy_event_to_its_intended_status():
    later = EPOCH + timedelta(days=10)
    journeys = _all_journeys()
    items = [J.render_legacy_item(j, later) or J.legacy_not_found_item(j.tracking_number) for j in journeys]
    result = _adapter("legacy").parse_tracking_response(_response(J.legacy_tracking_response(items)),
                                                        [j.tracking_number for j in journeys])
    updates = {u.tracking_number: u for u in result.updates}
    failures = {f.tracking_number: f for f in result.failures}
    for journey in journeys:
        if not journey.events:
            assert failures[journey.tracking_number].kind == "not_found"
            continue
        update = updates[journey.tracking_number]
        # legacy stamps have whole seconds only
        assert [(e.time, e.raw_text, e.status) for e in update.events] == [
            (e.time.replace(microsecond=0), e.text, e.intended_status) for e in journey.events]


def test_adapter_maps_every_webhook_to_its_intended_status():
    adapter = _adapter("open", "2026-06")
    for journey in _all_journeys():
        for index, event in enumerate(journey.events):
            message = adapter.parse_webhook(json.dumps(J.render_webhook(journey, index, SEED)))
            assert message.topic == J.WEBHOOK_TOPIC and message.event_id
            (update,) = message.updates
            assert update.events[-1].status == event.intended_status
            assert update.events[-1].time == event.time
            assert [e.status for e in update.events] == [e.intended_status for e in journey.events[: index + 1]]


def test_poll_and_webhook_give_the_same_event_fingerprints():
    journey = J.build_journey("EPFAD5", SEED, EPOCH)
    later = EPOCH + timedelta(days=10)
    item = J.render_openapi_item(journey, later, "2026-06", SEED)
    polled = _adapter().parse_tracking_response(_response(J.openapi_tracking_response([item], 1, 0, "1.t")),
                                                [journey.tracking_number]).updates[0]
    hooked = _adapter().parse_webhook(json.dumps(J.render_webhook(journey, len(journey.events) - 1, SEED))).updates[0]
    assert [e.fingerprint for e in polled.events] == [e.fingerprint for e in hooked.events]
