"""Merging updates: a set union of events by fingerprint, status derived by time with finals
sticky, idempotent and independent of order (hypothesis)."""
from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone

from hypothesis import given, settings as hypothesis_settings, strategies as st

from pipeline import status as S
from pipeline.canonical import TrackingEvent, TrackingUpdate
from pipeline.merge import ShipmentState, StoredEvents, derive_status, merge_updates, union_events

T0 = datetime(2026, 4, 23, 2, 0, tzinfo=timezone.utc)


def event(minutes: int, status: str | None, text: str | None = None, location: str | None = None) -> TrackingEvent:
    return TrackingEvent(time=T0 + timedelta(minutes=minutes), raw_text=text or f"{status} scan",
                         status=status, raw_code=None, location=location)


def update(*events: TrackingEvent, number: str = "EP1") -> TrackingUpdate:
    return TrackingUpdate(courier="easyparcel", tracking_number=number, events=tuple(events))


def test_late_in_transit_does_not_undo_delivered():
    # given a delivered shipment
    state = merge_updates(ShipmentState(), [update(event(0, S.IN_TRANSIT), event(60, S.DELIVERED))],
                          max_events=50).state
    # when a stale poll arrives with only an earlier scan, and a later stray transit scan
    outcome = merge_updates(state, [update(event(30, S.IN_TRANSIT, "hub scan")),
                                    update(event(90, S.IN_TRANSIT, "stray scan"))], max_events=50)
    # then it stays delivered
    assert outcome.state.status == S.DELIVERED
    assert outcome.state.delivered_at == T0 + timedelta(minutes=60)


def test_status_follows_the_newest_event_by_time_not_arrival_order():
    outcome = merge_updates(ShipmentState(), [update(event(120, S.OUT_FOR_DELIVERY)), update(event(10, S.INFO_RECEIVED))],
                            max_events=50)
    assert outcome.state.status == S.OUT_FOR_DELIVERY
    assert [e.status for e in outcome.state.events] == [S.OUT_FOR_DELIVERY, S.INFO_RECEIVED]


def test_unknown_codes_never_become_a_status_but_are_kept_and_flagged():
    outcome = merge_updates(ShipmentState(), [update(event(0, S.IN_TRANSIT), event(5, None, "Mystery code 42"))],
                            max_events=50)
    assert outcome.state.status == S.IN_TRANSIT
    assert outcome.state.has_unmapped_events
    assert any(e.raw_text == "Mystery code 42" for e in outcome.state.events)


def test_no_known_event_means_pending():
    assert derive_status([event(0, None)]) == S.PENDING
    assert derive_status([]) == S.PENDING


def test_expired_stays_expired_until_the_courier_reports_a_final_status():
    expired = ShipmentState(status=S.EXPIRED, events=(event(0, S.IN_TRANSIT),))
    assert merge_updates(expired, [update(event(10, S.IN_TRANSIT, "late scan"))], max_events=50).state.status == S.EXPIRED
    assert merge_updates(expired, [update(event(20, S.DELIVERED))], max_events=50).state.status == S.DELIVERED


def test_same_update_twice_adds_nothing_the_second_time():
    first = merge_updates(ShipmentState(), [update(event(0, S.IN_TRANSIT), event(5, S.OUT_FOR_DELIVERY))], max_events=50)
    second = merge_updates(first.state, [update(event(0, S.IN_TRANSIT), event(5, S.OUT_FOR_DELIVERY))], max_events=50)
    assert first.events_added == 2 and first.status_changed
    assert second.events_added == 0 and second.is_noop
    assert second.state == first.state


def test_a_scan_seen_by_webhook_and_by_poll_merges_into_one_event_keeping_the_location():
    from_webhook = event(0, S.IN_TRANSIT, "Parcel has been collected at Penang", None)
    from_poll = event(0, S.IN_TRANSIT, "Parcel has been collected at Penang", "Penang")
    merged = union_events([from_webhook], [from_poll], max_events=50)
    assert len(merged) == 1 and merged[0].location == "Penang"
    assert union_events([from_poll], [from_webhook], max_events=50) == merged


def test_history_is_capped_at_max_events_keeping_the_newest():
    many = [event(i, S.IN_TRANSIT, f"scan {i}") for i in range(10)]
    outcome = merge_updates(ShipmentState(), [update(*many)], max_events=3)
    assert [e.raw_text for e in outcome.state.events] == ["scan 9", "scan 8", "scan 7"]
    assert outcome.events_added == 3


def test_a_status_only_report_becomes_an_event():
    report = TrackingUpdate(courier="easyparcel", tracking_number="EP1", reported_status=S.CANCELLED,
                            reported_at=T0 + timedelta(hours=1))
    outcome = merge_updates(ShipmentState(events=(event(0, S.INFO_RECEIVED),), status=S.INFO_RECEIVED),
                            [report], max_events=50)
    assert outcome.state.status == S.CANCELLED
    assert outcome.events_added == 1


# --- properties ---------------------------------------------------------------------------

# An adapter maps a courier's text to one status, or to none while the code is unmapped; the
# same scan never arrives with two different known statuses.
TEXT_STATUS = {"collected": S.IN_TRANSIT, "hub scan": S.IN_TRANSIT, "out": S.OUT_FOR_DELIVERY,
               "done": S.DELIVERED, "back": S.RETURNED, "void": S.CANCELLED, "held": S.EXCEPTION,
               "weird": None}
events_strategy = st.builds(
    lambda minute, text, is_mapped, location: TrackingEvent(
        time=T0 + timedelta(minutes=minute), raw_text=text, status=TEXT_STATUS[text] if is_mapped else None,
        raw_code=None, location=location),
    st.integers(min_value=0, max_value=600),
    st.sampled_from(sorted(TEXT_STATUS)),
    st.booleans(),
    st.sampled_from([None, "Penang", "Kuala Lumpur"]),
)
updates_strategy = st.lists(st.lists(events_strategy, max_size=6).map(lambda evs: update(*evs)), max_size=5)


def merge_all(updates, max_events=8, state=None):
    state = state or ShipmentState()
    for item in updates:
        state = merge_updates(state, [item], max_events=max_events).state
    return state


@hypothesis_settings(max_examples=300, deadline=None)
@given(updates_strategy, st.randoms(use_true_random=False))
def test_merge_result_does_not_depend_on_order(updates, rng):
    shuffled = list(updates)
    rng.shuffle(shuffled)
    assert merge_all(updates) == merge_all(shuffled)


@hypothesis_settings(max_examples=300, deadline=None)
@given(updates_strategy)
def test_merging_again_changes_nothing(updates):
    once = merge_all(updates)
    twice = merge_all(updates, state=once)
    assert twice == once
    assert all(merge_updates(once, [u], max_events=8).is_noop for u in updates)


@hypothesis_settings(max_examples=300, deadline=None)
@given(updates_strategy)
def test_batch_merge_equals_one_by_one(updates):
    assert merge_updates(ShipmentState(), updates, max_events=8).state == merge_all(updates)


@hypothesis_settings(max_examples=300, deadline=None)
@given(updates_strategy, updates_strategy)
def test_a_final_status_is_never_left_for_a_non_final_one(first, later):
    state = merge_all(first)
    after = merge_all(later, state=state)
    if S.is_final(state.status):
        assert S.is_final(after.status)


def test_an_event_dated_far_ahead_of_now_is_kept_but_does_not_count_as_news():
    now = datetime(2026, 11, 30, tzinfo=timezone.utc)
    far = TrackingEvent(time=datetime(9999, 12, 31, tzinfo=timezone.utc), raw_text="bogus", status=S.IN_TRANSIT)
    near = TrackingEvent(time=now - timedelta(hours=1), raw_text="collected", status=S.IN_TRANSIT)
    skewed = TrackingEvent(time=now + timedelta(hours=3), raw_text="hub", status=S.IN_TRANSIT)
    state = merge_updates(ShipmentState(), [TrackingUpdate(courier="fake", tracking_number="X1", events=(near, far))],
                          max_events=50, now=now).state
    assert len(state.events) == 2 and state.last_event_at == near.time
    # a scan a few hours ahead (clock skew) still counts; the stored far one never does
    again = merge_updates(state, [TrackingUpdate(courier="fake", tracking_number="X1", events=(skewed,))],
                          max_events=50, now=now).state
    assert again.last_event_at == skewed.time


@given(st.integers(0, 10**7), st.integers(0, 999_999), st.sampled_from([None, S.IN_TRANSIT, S.DELIVERED]),
       st.text(max_size=30), st.one_of(st.none(), st.text(max_size=5)))
def test_a_stored_event_reads_back_with_the_same_time_text_and_fingerprint(seconds, micros, status, text, code):
    original = TrackingEvent(time=T0 + timedelta(seconds=seconds, microseconds=micros), raw_text=text,
                             status=status, raw_code=code)
    stored = original.to_dict()
    read = TrackingEvent.from_dict(stored)
    # the stored time text and fingerprint are taken, and they are what the event computes itself
    fresh = TrackingEvent(time=read.time, raw_text=read.raw_text, status=read.status, raw_code=read.raw_code)
    assert (read.time_iso, read.fingerprint) == (fresh.time_iso, fresh.fingerprint) == (stored["time"],
                                                                                          stored["fingerprint"])
    assert read == original and read.to_dict() == stored


def test_an_event_stored_without_a_fingerprint_or_in_another_time_form_gets_both_computed():
    read = TrackingEvent.from_dict({"time": "2026-04-23T10:00:00+08:00", "raw_text": "Picked up"})
    assert read.time_iso == "2026-04-23T02:00:00Z"
    assert read.fingerprint == TrackingEvent(time=T0, raw_text="Picked up").fingerprint
    # a Z time in another form, with no stored fingerprint, is not taken as the stored text either
    padded = TrackingEvent.from_dict({"time": "2026-04-23T02:00:00.000000Z", "raw_text": "Picked up"})
    assert (padded.time_iso, padded.fingerprint) == (read.time_iso, read.fingerprint)



# --- merging into stored events without reading them back (merge._merge_newer) --------------

TEXT_ANY_STATUS = {**TEXT_STATUS, "lapsed": S.EXPIRED}  # a courier can report expiry too
timed_events = st.builds(
    lambda seconds, micros, text, is_mapped, location: TrackingEvent(
        time=T0 + timedelta(seconds=seconds, microseconds=micros), raw_text=text,
        status=TEXT_ANY_STATUS[text] if is_mapped else None, raw_code=None, location=location),
    st.integers(min_value=0, max_value=36_000), st.sampled_from([0, 0, 1, 500_000, 999_999]),
    st.sampled_from(sorted(TEXT_ANY_STATUS)), st.booleans(), st.sampled_from([None, "Penang"]))


def stored_form(events, how, rng):
    """The dicts a row may hold: as a merge writes them, or otherwise (out of order, a fingerprint
    missing, a time in another form, an extra key), which the lazy merge must notice."""
    dicts = [e.to_dict() for e in events]
    if not dicts or how == "as written":
        return dicts
    if how == "shuffled":
        rng.shuffle(dicts)
    elif how == "no fingerprint":
        dicts[rng.randrange(len(dicts))].pop("fingerprint")
    elif how == "offset time":
        d = dicts[rng.randrange(len(dicts))]
        d.pop("fingerprint")
        d["time"] = d["time"].replace("Z", "+00:00")
    elif how == "extra key":
        dicts[rng.randrange(len(dicts))]["note"] = "hand-made"
    return dicts


@hypothesis_settings(max_examples=500, deadline=None)
@given(st.lists(st.lists(timed_events, max_size=5).map(lambda evs: update(*evs)), max_size=4),
       st.lists(timed_events, min_size=1, max_size=3), st.booleans(), st.sampled_from([4, 8, 50]),
       st.sampled_from(["as written", "as written", "shuffled", "no fingerprint", "offset time", "extra key"]),
       st.one_of(st.none(), st.integers(0, 40_000)), st.randoms(use_true_random=False))
def test_merging_into_stored_events_equals_merging_into_events(history, scans, is_expired, max_events, how, now_s, rng):
    state = merge_all(history, max_events=max_events)
    if is_expired:
        state = replace(state, status=S.EXPIRED)
    dicts = stored_form(state.events, how, rng)
    now = None if now_s is None else T0 + timedelta(seconds=now_s) - timedelta(days=1)
    # mostly scans after the stored ones (the common case), some before or among them
    newest = max((e.time for e in state.events), default=T0)
    shift = newest - T0 - timedelta(seconds=600) if rng.random() < 0.8 else timedelta(0)
    incoming = [update(*(replace(scan, time=scan.time + shift) for scan in scans))]
    lazy = merge_updates(replace(state, events=StoredEvents(dicts)), incoming, max_events=max_events, now=now)
    eager = merge_updates(replace(state, events=tuple(TrackingEvent.from_dict(d) for d in dicts)), incoming,
                          max_events=max_events, now=now)
    assert lazy == eager
    written = lazy.state.events.dicts if isinstance(lazy.state.events, StoredEvents) else [
        e.to_dict() for e in lazy.state.events]
    assert written == [e.to_dict() for e in eager.state.events]


def test_a_newer_scan_is_merged_without_reading_the_stored_events_back():
    state = merge_all([update(event(0, S.IN_TRANSIT, "collected"), event(30, S.IN_TRANSIT, "hub scan"))], max_events=50)
    stored = StoredEvents([e.to_dict() for e in state.events])
    outcome = merge_updates(replace(state, events=stored), [update(event(60, S.DELIVERED, "done", "Penang"))],
                            max_events=50)
    events = outcome.state.events
    assert isinstance(events, StoredEvents) and events._events is None  # nothing was read back as events
    assert events.dicts[1:] == stored.dicts and events.dicts[1]  is stored.dicts[0]
    assert (outcome.state.status, outcome.events_added, outcome.state.delivery_location) == (S.DELIVERED, 1, "Penang")
    assert outcome.state.delivered_at == T0 + timedelta(minutes=60) == outcome.state.last_event_at
    # a courier's expiry scan is not a sticky final status (derive_status): a later scan decides
    lapsed = TrackingEvent(time=T0 + timedelta(minutes=40), raw_text="lapsed", status=S.EXPIRED)
    again = merge_updates(replace(state, events=StoredEvents(stored.dicts)),
                          [update(lapsed, event(50, S.IN_TRANSIT, "hub scan"))], max_events=50)
    assert again.state.status == S.IN_TRANSIT and again.state.events._events is None
    # an older scan (a late webhook) takes the whole merge, and says the same as before
    late = merge_updates(outcome.state, [update(event(10, S.IN_TRANSIT, "hub scan"))], max_events=50)
    assert late.state.status == S.DELIVERED and late.events_added == 1 and len(late.state.events) == 4


def test_clean_update_cleans_what_a_database_refuses_and_returns_a_clean_update_as_it_is():
    from pipeline.canonical import clean_update

    clean = update(event(0, S.IN_TRANSIT, "hub scan", "Penang"))
    assert clean_update(clean) is clean
    dirty = update(event(0, S.IN_TRANSIT, "hub\x00 scan", "Pen\ud800ang"), number="EP\x001")
    cleaned = clean_update(dirty)
    assert cleaned.tracking_number == "EP1"
    assert (cleaned.events[0].raw_text, cleaned.events[0].location) == ("hub scan", "Pen\ufffdang")
    assert cleaned.events[0].time == dirty.events[0].time


def test_only_stored_events_in_to_dict_form_are_merged_without_reading_them_back():
    from pipeline.merge import _stored_keys

    written = event(0, S.IN_TRANSIT, "collected").to_dict()
    assert _stored_keys([written]) == [(written["time"][:-1], written["fingerprint"])]
    # the same instant written otherwise would not sort by its text: read back as events instead
    for other_time in ("2026-04-23T02:00:00.000000Z", "2026-04-23 02:00:00Z", "2026-04-23T02:00:00+00:00",
                       "2026-04-23T02:00:00.5Z", 1776909600):
        assert _stored_keys([{**written, "time": other_time}]) is None, other_time
    assert _stored_keys([{**written, "fingerprint": ""}]) is None
    assert _stored_keys([{**written, "raw_text": None}]) is None
    assert _stored_keys([{**written, "note": "x"}]) is None
    assert _stored_keys([{k: v for k, v in written.items() if k != "location"}]) is None
    assert _stored_keys(["not an event"]) is None
