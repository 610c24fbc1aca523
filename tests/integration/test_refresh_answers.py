"""Admin refreshes say what they did, per order id: queued, unknown, final (not polled, unless
`force`) or over budget; final shipments spend no courier call unless an admin forces it."""
from __future__ import annotations

from web_client import configured, scan

DELIVERED = [scan(0, "Shipment information received", "info_received"), scan(5, "Delivered", "delivered")]
IN_TRANSIT = [scan(0, "Parcel collected", "in_transit")]
BULK = "/api/admin/tracking/bulk-refresh"


def test_a_bulk_refresh_by_order_ids_answers_per_id_and_never_polls_final_shipments(api):
    # given an order in transit and a delivered one
    api.polled("ORD-Q1", "FKQ001", IN_TRANSIT)
    api.polled("ORD-Q2", "FKQ002", DELIVERED)
    calls = api.stack.courier.calls
    # when an admin refreshes them and an order id nobody registered
    answer = api.admin("POST", BULK, json={"order_ids": ["ORD-Q1", "ORD-NOPE", "ORD-Q2"]})
    # then each id says what happened, and only the shipment in transit is polled
    assert answer.status_code == 202
    body = answer.json()
    assert (body["count"], body["skipped_final"], body["skipped_over_budget"]) == (1, 1, 0)
    assert body["orders"] == [
        {"order_id": "ORD-Q1", "outcome": "queued", "queued": 1, "final": 0, "over_budget": 0},
        {"order_id": "ORD-NOPE", "outcome": "unknown", "queued": 0, "final": 0, "over_budget": 0},
        {"order_id": "ORD-Q2", "outcome": "final", "queued": 0, "final": 1, "over_budget": 0},
    ]
    api.stack.wait_for(lambda: api.stack.courier.calls == calls + 1, what="the one poll")
    api.stack.settle()
    assert api.stack.courier.requested[-1] == ("FKQ001",)


def test_a_bulk_refresh_of_a_final_status_polls_nothing_unless_forced(api):
    api.polled("ORD-Q3", "FKQ003", DELIVERED)
    calls = api.stack.courier.calls
    refused = api.admin("POST", BULK, json={"status": "delivered"}).json()
    assert (refused["count"], refused["skipped_final"]) == (0, 1)
    api.stack.settle()
    assert api.stack.courier.calls == calls
    forced = api.admin("POST", BULK, json={"status": "delivered", "force": True}).json()
    assert (forced["count"], forced["skipped_final"]) == (1, 0)
    api.stack.wait_for(lambda: api.stack.courier.calls == calls + 1, what="the forced poll")


def test_bulk_refresh_ids_that_do_not_fit_the_budget_say_over_budget(api):
    for index in range(3):
        api.register(f"ORD-QB{index}", f"FKQB0{index}")
    # a budget of 3 calls a day keeps 1 in reserve for manual refreshes; one number per call
    with configured(daily_budget=3, rate_buffer_percent=33, job_batch_size=1):
        body = api.admin("POST", BULK, json={"order_ids": ["ORD-QB0", "ORD-QB1", "ORD-QB2"]}).json()
    assert [order["outcome"] for order in body["orders"]] == ["queued", "queued", "over_budget"]
    assert (body["count"], body["skipped_over_budget"]) == (2, 1)
    api.stack.settle()


def test_refreshing_a_delivered_order_spends_no_call_and_says_so_unless_forced(api):
    api.polled("ORD-Q4", "FKQ004", DELIVERED)
    calls = api.stack.courier.calls
    answer = api.admin("POST", "/api/admin/tracking/refresh-order/ORD-Q4")
    assert answer.status_code == 200
    assert answer.json() == {"order_id": "ORD-Q4", "job_ids": [], "count": 0, "skipped_final": 1,
                             "outcome": "final"}
    api.stack.settle()
    assert api.stack.courier.calls == calls
    forced = api.admin("POST", "/api/admin/tracking/refresh-order/ORD-Q4", params={"force": "true"})
    assert forced.status_code == 202 and forced.json()["outcome"] == "queued" and len(forced.json()["job_ids"]) == 1
    api.stack.wait_for(lambda: api.stack.courier.calls == calls + 1, what="the forced poll")
