"""A tracking read tells the truth about refreshes (requested with its jobs, under way since when,
not needed, unavailable), in the API and on the tracking page; `POST /api/customer/track-order`
answers like the GET without the email in the URL; and a real order with a wrong email costs the
same database work as an unknown order (ownership is checked on the order row first)."""
from __future__ import annotations

from contextlib import contextmanager

import pytest

import models
from models import TrackingJob
from pipeline import service
from web import reads
from web_client import configured, make_stale, scan  # noqa: F401  (fixtures)

DELIVERED = [scan(0, "Shipment information received", "info_received"), scan(5, "Delivered", "delivered")]


def test_a_premium_refresh_of_a_delivered_order_says_not_needed_and_creates_no_job(api):
    api.polled("ORD-RA1", "FKRA01", DELIVERED, customer_id="cust-ra1")
    jobs = TrackingJob.select().count()
    answer = api.customer("ORD-RA1", "cust-ra1", premium=True, refresh="1")
    assert answer.status_code == 200
    assert answer.json()["refresh"] == {"requested": False, "state": "not_needed", "reason": "final"}
    assert TrackingJob.select().count() == jobs


def test_a_refresh_that_cannot_be_enqueued_says_unavailable_and_the_next_read_asks_again(api, monkeypatch):
    sid = api.polled("ORD-RA2", "FKRA02")
    make_stale(sid, hours=48)

    def broker_down(*args, **kwargs):
        raise ConnectionError("broker unreachable")

    with monkeypatch.context() as patched:
        patched.setattr(service, "request_refresh", broker_down)
        refused = api.guest("ORD-RA2", "buyer@example.com")
    assert refused.status_code == 200
    assert refused.json()["refresh"] == {"requested": False, "state": "unavailable", "reason": "stale"}
    # the slot was given back, so the next read requests the refresh for real
    retried = api.guest("ORD-RA2", "buyer@example.com").json()["refresh"]
    assert (retried["state"], len(retried["job_ids"])) == ("requested", 1)
    api.stack.settle()


def test_a_stale_read_without_the_coordination_store_says_unavailable(api, monkeypatch):
    sid = api.polled("ORD-RA3", "FKRA03")
    make_stale(sid, hours=48)

    def store_down(*args, **kwargs):
        raise ConnectionError("redis unreachable")

    monkeypatch.setattr(reads, "claim_refresh_slots", store_down)
    answer = api.guest("ORD-RA3", "buyer@example.com")
    assert answer.status_code == 200
    assert answer.json()["refresh"] == {"requested": False, "state": "unavailable", "reason": "stale"}


def test_the_tracking_page_says_a_stale_lookup_asked_the_courier(api):
    sid = api.polled("ORD-RA4", "FKRA04")
    make_stale(sid, hours=48)
    lookup = api.client.post("/track", data={"order_id": "ORD-RA4", "email": "buyer@example.com"},
                             follow_redirects=False)
    assert lookup.status_code == 303 and "refresh=requested" in lookup.headers["location"]
    page = api.client.get(lookup.headers["location"])
    assert page.status_code == 200 and "we have asked the courier for news" in page.text
    api.stack.settle()
    # a fresh order's page says nothing of the kind
    api.polled("ORD-RA5", "FKRA05")
    fresh = api.client.post("/track", data={"order_id": "ORD-RA5", "email": "buyer@example.com"})
    assert fresh.status_code == 200 and 'id="refresh-notice"' not in fresh.text


# --- POST /api/customer/track-order ------------------------------------------------------------------

def post_track(api, body, **headers):
    return api.client.post("/api/customer/track-order", json=body, headers=headers)


def test_a_guest_reads_with_a_json_body_exactly_as_with_the_query_string(api):
    api.polled("ORD-RA6", "FKRA06")
    by_query = api.guest("ORD-RA6", "buyer@example.com")
    by_body = post_track(api, {"order_id": "ORD-RA6", "email": " Buyer@Example.com "})
    assert by_body.status_code == 200
    assert by_body.json()["shipments"] == by_query.json()["shipments"]
    assert by_body.headers["etag"] == by_query.headers["etag"]
    assert by_body.headers["cache-control"] == by_query.headers["cache-control"]
    # unknown order and wrong email: the same 404 as the GET form
    unknown = post_track(api, {"order_id": "ORD-NOPE", "email": "buyer@example.com"})
    wrong = post_track(api, {"order_id": "ORD-RA6", "email": "thief@example.com"})
    assert unknown.status_code == wrong.status_code == 404 and unknown.json() == wrong.json()
    assert unknown.json() == api.guest("ORD-NOPE", "buyer@example.com").json()


@pytest.mark.parametrize(("body", "status", "problem"), [
    ([1, 2], 400, None),
    ({"order_id": "ORD-1"}, 422, "email"),
    ({"order_id": 12, "email": "buyer@example.com"}, 422, "order_id"),
    ({"order_id": "ORD-1", "email": "buyer@example.com", "refresh": "yes"}, 422, "refresh"),
    ({"order_id": "ORD-1", "email": "buyer@example.com", "mail": "x"}, 422, "mail"),
])
def test_a_bad_tracking_body_is_refused_with_the_field_named(api, body, status, problem):
    answer = post_track(api, body)
    assert answer.status_code == status
    if problem:
        assert problem in answer.json()["fields"]
    else:
        assert answer.json()["error"] == "malformed_body"


def test_a_premium_customer_refreshes_with_a_json_body(api):
    from web_client import CUSTOMER_SECRET, mint_customer_token

    api.polled("ORD-RA7", "FKRA07", customer_id="cust-ra7")
    token = mint_customer_token(CUSTOMER_SECRET, "cust-ra7", premium=True)
    answer = post_track(api, {"order_id": "ORD-RA7", "refresh": True}, Authorization=f"Bearer {token}")
    assert answer.status_code == 200 and answer.json()["refresh"]["state"] == "requested"
    api.stack.settle()


# --- timing parity on a miss ------------------------------------------------------------------------

@contextmanager
def counted_queries():
    statements: list[str] = []
    database = models.database.obj
    original = database.execute_sql

    def counting(sql, *args, **kwargs):
        statements.append(sql)
        return original(sql, *args, **kwargs)

    database.execute_sql = counting
    try:
        yield statements
    finally:
        del database.execute_sql


@pytest.fixture
def generous_limit():
    with configured(guest_rate_limit=100):
        yield


def test_a_wrong_email_on_a_real_order_costs_what_an_unknown_order_costs(api, generous_limit):
    api.polled("ORD-RA8", "FKRA08")
    with counted_queries() as unknown:
        assert api.guest("ORD-RA8-NOPE", "buyer@example.com").status_code == 404
    with counted_queries() as wrong:
        assert api.guest("ORD-RA8", "thief@example.com").status_code == 404
    assert len(wrong) == len(unknown) == 1
    assert not any("tracking_cache" in sql for sql in wrong)
    # then both are cache hits alike, and the right email still reads the whole order
    with counted_queries() as both_again:
        assert api.guest("ORD-RA8-NOPE", "buyer@example.com").status_code == 404
        assert api.guest("ORD-RA8", "thief@example.com").status_code == 404
    assert both_again == []
    assert api.guest("ORD-RA8", "buyer@example.com").json()["shipments"][0]["tracking_number"] == "FKRA08"
