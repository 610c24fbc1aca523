"""The read cache's final form of a document (web.read_bodies) and the hot documents' bounds
(web.hot_documents): pure, no I/O, no clock but the one passed in."""
from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from web import views
from web.hot_documents import HotDocuments
from web.read_bodies import ReadyDocument, body_parts, ready_document

NOW = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


def shipment_row(number: str, hours_old: float | None, status: str = "in_transit") -> dict:
    updated = None if hours_old is None else NOW - timedelta(hours=hours_old)
    return {"tracking_number": number, "courier": "fake", "status": status,
            "events": [{"time": "2026-11-30T01:00:00Z", "status": status, "raw_text": "Scan \"quoted\"\nline",
                        "location": "Kuala Lumpur Hub, Kuala Lumpur, MY", "raw_code": "4"}],
            "last_updated": updated, "next_update_due": NOW + timedelta(hours=2)}


def document_of(rows: list[dict], audience: str = views.GUEST) -> tuple[dict, ReadyDocument]:
    view = views.order_view("ORD-1", rows, audience=audience)
    internal = [{"id": n + 1, "last_updated": views.iso(row["last_updated"]), "is_pollable": row["status"] != "delivered"}
                for n, row in enumerate(rows)]
    return view, ready_document(exists=True, email_hash="a" * 64, customer_id="cust-1", view=view, shipments=internal)


def test_the_joined_body_is_the_json_the_route_answered_before():
    view, document = document_of([shipment_row("A1", 3), shipment_row("A2", None), shipment_row("A3", 0.5)])
    refresh = {"requested": False}
    expected = views.with_data_age(view, NOW) | {"refresh": refresh}
    body = document.body(NOW.timestamp(), json.dumps(refresh).encode())
    assert json.loads(body) == expected
    assert list(json.loads(body)["shipments"][0]) == list(expected["shipments"][0])  # same key order
    assert [s["data_age_seconds"] for s in json.loads(body)["shipments"]] == [3 * 3600, None, 1800]


def test_an_order_without_shipments_still_makes_a_body():
    view, document = document_of([])
    assert json.loads(document.body(NOW.timestamp(), b'{"requested":false}')) == {
        "order_id": "ORD-1", "shipments": [], "refresh": {"requested": False}}
    assert len(body_parts(view)) == 1


def test_a_document_survives_the_read_cache_and_gives_back_its_view_and_etag():
    view, document = document_of([shipment_row("A1", 3), shipment_row("A2", 30, "delivered")])
    again = ReadyDocument.from_bytes(document.to_bytes())
    assert again == document
    assert again.view() == view
    assert again.etag == views.etag_for(view)


def test_anything_but_the_current_format_reads_as_a_miss():
    old_envelope = json.dumps({"v": 1, "exists": True, "email_hash": "a" * 64, "view": {}, "shipments": []}).encode()
    for raw in (old_envelope, b"", b"not json", b'{"v":3}', b'{"v":3,"exists":true}\n{"order_id":1}\nextra',
                b'{"v":2,"exists":true,"email_hash":"","customer_id":null,"etag":"","shipments":[]}\n{}'):
        assert ReadyDocument.from_bytes(raw) is None


def test_stale_shipments_are_the_pollable_ones_older_than_the_ttl():
    _, document = document_of([shipment_row("A1", 30), shipment_row("A2", 1), shipment_row("A3", None),
                               shipment_row("A4", 30, "delivered")])
    assert document.has_stale(NOW.timestamp(), 24 * 3600)
    _, fresh = document_of([shipment_row("A2", 1), shipment_row("A4", 30, "delivered")])
    assert not fresh.has_stale(NOW.timestamp(), 24 * 3600)
    assert fresh.has_stale(NOW.timestamp(), 1800)
    assert document.pollable_ids() == [1, 2, 3]


def test_a_missing_order_has_no_body_and_the_dummy_hash():
    missing = ready_document(exists=False)
    assert ReadyDocument.from_bytes(missing.to_bytes()) == missing and not missing.exists


def test_an_owner_only_document_keeps_the_owner_fields_and_no_body():
    view, _ = document_of([shipment_row("A1", 3)])
    owner_only = ready_document(exists=True, email_hash="b" * 64, customer_id="cust-7", view=view,
                                shipments=[{"id": 1, "last_updated": None, "is_pollable": True}], is_complete=False)
    again = ReadyDocument.from_bytes(owner_only.to_bytes())
    assert again == owner_only
    assert (again.exists, again.is_complete, again.email_hash, again.customer_id) == (True, False, "b" * 64, "cust-7")
    assert again.shipments == () and again.parts == (b"{}",) and again.etag == ""
    assert ReadyDocument.from_bytes(document_of([])[1].to_bytes()).is_complete


# --- hot documents ---------------------------------------------------------------------------------

def hot(**bounds) -> HotDocuments:
    return HotDocuments(**{"max_entries": 3, "max_bytes": 1 << 20, "max_age": 30.0, **bounds})


def test_the_least_recently_used_entry_leaves_first_when_entries_are_full():
    cache = hot()
    _, document = document_of([shipment_row("A1", 1)])
    for order in ("O1", "O2", "O3"):
        assert cache.put("guest", order, document, 0.0, generation=cache.generation)
    assert cache.get("guest", "O1", 1.0) is document  # O1 is now the most recent
    cache.put("guest", "O4", document, 1.0, generation=cache.generation)
    assert len(cache) == 3 and cache.get("guest", "O2", 1.0) is None and cache.get("guest", "O1", 1.0) is document


def test_the_memory_bound_holds_whatever_is_put():
    _, document = document_of([shipment_row(f"A{n}", 1) for n in range(5)])
    cache = hot(max_entries=1000, max_bytes=document.size * 2 + 10)
    for n in range(10):
        cache.put("customer", f"O{n}", document, 0.0, generation=cache.generation)
        assert cache.size <= cache.max_bytes
    assert len(cache) == 2
    assert not hot(max_bytes=document.size - 1).put("guest", "big", document, 0.0, generation=0)


def test_an_entry_never_outlives_its_age_bound():
    cache = hot(max_age=30.0)
    _, document = document_of([shipment_row("A1", 1)])
    cache.put("guest", "O1", document, 100.0, generation=cache.generation)
    assert cache.get("guest", "O1", 129.9) is document
    assert cache.get("guest", "O1", 130.0) is None and len(cache) == 0 and cache.size == 0


def test_an_invalidation_drops_every_audience_and_refuses_fills_read_before_it():
    cache = hot()
    _, document = document_of([shipment_row("A1", 1)])
    cache.put("guest", "O1", document, 0.0, generation=cache.generation)
    cache.put("customer", "O1", document, 0.0, generation=cache.generation)
    read_at = cache.generation
    cache.drop(["O1"])
    assert cache.get("guest", "O1", 0.0) is None and cache.get("customer", "O1", 0.0) is None
    assert not cache.put("guest", "O1", document, 0.0, generation=read_at)
    assert cache.put("guest", "O1", document, 0.0, generation=cache.generation)
    cache.clear()
    assert len(cache) == 0 and cache.size == 0


# --- deferred rate-limit charges (signed-in customers) ------------------------------------------------

def test_deferred_charges_count_what_is_not_sent_and_what_is_in_flight():
    from web.read_store import Charged, DeferredCharges

    charges = DeferredCharges()
    assert charges.charge("c", cost=1, limit=2, now=0.0).is_allowed
    batch = charges.take_batch()
    assert batch == [("c", 1, 2)] and not charges.has_pending()
    # while the first batch is on its way, the next charges still count it
    assert charges.charge("c", cost=1, limit=2, now=0.0).used == 2
    refused = charges.charge("c", cost=1, limit=2, now=0.0)
    assert not refused.is_allowed and refused.used == 3 and refused.retry_after > 0
    # another process charged 5 meanwhile: the shared count says so once the batch is answered
    charges.settle(batch, [Charged(used=6, ttl_seconds=100.0, document=None)], now=1.0)
    verdict = charges.charge("c", cost=1, limit=2, now=1.0)
    assert verdict.used == 6 + 2 + 1 and verdict.retry_after == 100


def test_deferred_charges_that_could_not_be_sent_are_let_go_and_a_window_ends():
    from web.read_store import Charged, DeferredCharges

    charges = DeferredCharges()
    charges.charge("c", cost=3, limit=10, now=0.0)
    charges.settle(charges.take_batch(), None, now=0.0)
    assert charges.charge("c", cost=1, limit=10, now=0.0).used == 1
    charges.settle(charges.take_batch(), [Charged(used=9, ttl_seconds=50.0, document=None)], now=0.0)
    assert charges.charge("c", cost=1, limit=10, now=49.0).used == 10
    charges.settle(charges.take_batch(), [Charged(used=10, ttl_seconds=1.0, document=None)], now=49.0)
    assert charges.charge("c", cost=1, limit=10, now=50.5).used == 1  # the window ended

