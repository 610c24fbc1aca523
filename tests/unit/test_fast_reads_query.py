"""The fast path's query-string split gives exactly what `parse_qsl` gives."""
from urllib.parse import parse_qsl

from hypothesis import given
from hypothesis import strategies as st

from web.fast_reads import query_parameters

PIECES = st.sampled_from(["order_id", "email", "refresh", "=", "&", "%40", "+", "a", "é", "1", "", "@", ";"])


@given(st.lists(PIECES, max_size=12).map("".join))
def test_the_split_matches_parse_qsl(text):
    query_string = text.encode("latin-1")
    assert query_parameters(query_string) == dict(parse_qsl(text, keep_blank_values=True))


def test_a_typical_tracking_query():
    assert query_parameters(b"order_id=ORD-1&email=a@b.example&refresh=0") == {
        "order_id": "ORD-1", "email": "a@b.example", "refresh": "0"}
