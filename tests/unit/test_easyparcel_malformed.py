"""Malformed EasyParcel payloads (random JSON, real fixtures with fields deleted or retyped,
random bytes) only ever raise CourierPayloadError or a CourierError, never a stray exception; and
whatever parses keeps the bulk invariant (each requested number is an update or a failure)."""
from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from fixture_files import FIXTURES
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.canonical import BulkResult, WebhookMessage
from pipeline.couriers.base import CourierError, CourierPayloadError, HttpResponse
from pipeline.couriers.easyparcel import EasyParcel

FOLDER = Path(FIXTURES) / "easyparcel"
OPEN_RESPONSES = sorted(p.name for p in FOLDER.glob("openapi_*.json") if "request" not in p.name)
LEGACY_RESPONSES = sorted(p.name for p in FOLDER.glob("legacy_*response*.json"))
WEBHOOKS = sorted(p.name for p in FOLDER.glob("webhook_*.json"))
REQUESTED = ("7028021894371796", "960301021838937", "1234567890", "683534779", "238725129086", "000000000000")

OPEN = EasyParcel("open", "https://api.easyparcel.com")
LEGACY = EasyParcel("legacy", "https://connect.easyparcel.my")

json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20,
)
# Values that look like what the payloads hold, so mutations reach deep code paths.
plausible = st.sampled_from([
    "", "0", "1", "success", "not_found", "Success", "Fail", "Error", "2025-04-23 10:46:00",
    "2026-01-23T04:28:52.494Z", "2025-02-30 10:00:00", "10:46", "99:99:99", 0, 5, 8, -1, 2**70, 1.5,
    None, True, [], {}, {"0": {}}, [{}], "shipment.tracking.update", "shipment.status.update",
]) | json_values

HTTP_STATUSES = st.sampled_from([200, 200, 200, 201, 204, 301, 400, 401, 403, 404, 408, 422, 429, 500, 503])


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, child in value.items():
            found.extend(_paths(child, (*prefix, key)))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found.extend(_paths(child, (*prefix, index)))
    return found


@st.composite
def mutated_fixture(draw: st.DrawFn, names: list[str]) -> bytes:
    """A real fixture with one to three fields deleted or replaced by another JSON value."""
    document = json.loads((FOLDER / draw(st.sampled_from(names))).read_text(encoding="utf-8"))
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        paths = _paths(document)
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = document
        for step in path[:-1]:
            parent = parent[step]
        if draw(st.booleans()):
            del parent[path[-1]]
        else:
            # a copy: the sampled containers are shared, and a later mutation must not change them
            parent[path[-1]] = copy.deepcopy(draw(plausible))
    return json.dumps(document).encode("utf-8")


def bodies(names: list[str]) -> st.SearchStrategy[bytes]:
    return (
        mutated_fixture(names)
        | st.binary(max_size=200)
        | json_values.map(lambda v: json.dumps(v).encode("utf-8"))
        | st.text(max_size=100).map(lambda t: t.encode("utf-8"))
    )


def _check_bulk(result: BulkResult) -> None:
    assert isinstance(result, BulkResult)
    numbers = [u.tracking_number for u in result.updates] + [f.tracking_number for f in result.failures]
    assert sorted(numbers) == sorted(REQUESTED)
    for update in result.updates:
        times = [e.time for e in update.events]
        assert times == sorted(times)
        assert all(t.utcoffset() is not None and t.utcoffset().total_seconds() == 0 for t in times)


common = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@common
@given(body=bodies(OPEN_RESPONSES), status=HTTP_STATUSES)
def test_open_api_responses_only_raise_courier_errors(body, status):
    try:
        result = OPEN.parse_tracking_response(HttpResponse(status, {"retry-after": "x"}, body), REQUESTED)
    except (CourierPayloadError, CourierError) as exc:
        assert str(exc)
    else:
        _check_bulk(result)


@common
@given(body=bodies(LEGACY_RESPONSES), status=HTTP_STATUSES)
def test_legacy_responses_only_raise_courier_errors(body, status):
    try:
        result = LEGACY.parse_tracking_response(HttpResponse(status, {}, body), REQUESTED)
    except (CourierPayloadError, CourierError) as exc:
        assert str(exc)
    else:
        _check_bulk(result)


@common
@given(body=bodies(WEBHOOKS), as_text=st.booleans())
def test_webhooks_only_raise_payload_errors(body, as_text):
    payload: bytes | str = body
    if as_text:
        payload = body.decode("utf-8", "replace")
    try:
        message = OPEN.parse_webhook(payload)
    except CourierPayloadError as exc:
        assert str(exc)
    else:
        assert isinstance(message, WebhookMessage)
        for update in message.updates:
            assert all(e.time.utcoffset() is not None for e in update.events)


@common
@given(body=bodies(OPEN_RESPONSES), status=HTTP_STATUSES)
def test_token_responses_only_raise_courier_errors(body, status):
    try:
        token, expires_in = OPEN.parse_token_response(HttpResponse(status, {}, body))
    except (CourierPayloadError, CourierError):
        pass
    else:
        assert token and expires_in >= 0


@pytest.mark.parametrize(("body", "message"), [
    (b"\xff\xfe", r"^body: not UTF-8"),
    (b"", r"^body: empty"),
    (b"[1, 2]", r"^body: expected an object"),
    (b'{"status_code": 200}', r"^body\.data: missing"),
    (b'{"data": {"results": 5}}', r"^body\.data\.results: expected a list, got 5"),
    (b'{"data": {"results": [{"awb_number": "1", "status": "success", "status_log": [{"event_date": 12}]}]}}',
     r"^body\.data\.results\[0\]\.status_log\[0\]\.event_date: expected a date, got 12"),
    ((b'{"data": {"results": [{"awb_number": "1", "status": "success", "status_log": [{"event_date": '
      b'"2025-04-23 10:46:00", "shipment_status_code": "eight"}]}]}}'),
     r"^body\.data\.results\[0\]\.status_log\[0\]\.shipment_status_code: expected an integer"),
    (b'{"data": {"results": [{"status": "success"}]}}', r"^body\.data\.results\[0\]\.awb_number: missing"),
    ("[[[[" * 5000 + "]]]]" * 5000, r"^body: "),
])
def test_payload_errors_say_what_is_wrong_and_where(body, message):
    with pytest.raises(CourierPayloadError, match=message):
        OPEN.parse_tracking_response(HttpResponse(200, {}, body if isinstance(body, bytes) else body.encode()),
                                     ["1"])


@pytest.mark.parametrize(("body", "message"), [
    (b'{"topic": 3}', r"^body\.topic: expected a string, got 3"),
    (b'{"topic": "shipment.tracking.update", "awb_number": "1", "status_log": {"0": {"timestamp": "x"}}}',
     r'^body\.status_log\["0"\]\.timestamp: expected a date like'),
    (b'{"topic": "shipment.status.update", "awb_number": "1", "shipment_status": "Cancelled"}',
     r"^body\.event_date: missing"),
    (b'{"topic": "shipment.awb.update", "uuid": {"a": 1}}', r"^body\.uuid: expected a string"),
])
def test_webhook_payload_errors_say_what_is_wrong_and_where(body, message):
    with pytest.raises(CourierPayloadError, match=message):
        OPEN.parse_webhook(body)
