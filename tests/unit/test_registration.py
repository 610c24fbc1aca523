"""Registration input: per-field errors for bad values, normalised good values, conflicts."""
from __future__ import annotations

import pytest

from pipeline.registration import ExistingOrder, ShipmentRegistration, registration_conflict, validate_registration

COURIERS = ["easyparcel"]
GOOD = {"order_id": "ORD-1001", "customer_email": "aisyah@example.com", "tracking_number": "ep 7002-1", "courier": ""}


def test_a_good_row_is_normalised():
    registration, errors = validate_registration(GOOD, COURIERS)
    assert errors == {}
    assert registration == ShipmentRegistration("ORD-1001", "aisyah@example.com", "EP7002-1", "easyparcel")


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("order_id", "", "is required"),
        ("order_id", "bad id!", "must be 1-128 characters"),
        ("customer_email", "not-an-email", "must be an email address"),
        ("customer_email", None, "is required"),
        ("tracking_number", "x", "must be 4-64 characters"),
        ("tracking_number", 12345, "must be a string"),
        ("courier", "dhl", "must be one of: easyparcel"),
        ("customer_id", "has space", "must be 1-128 characters"),
    ],
)
def test_each_bad_field_is_named_with_its_problem(field, value, message):
    registration, errors = validate_registration({**GOOD, field: value}, COURIERS)
    assert registration is None
    assert errors[field].startswith(message)


def test_conflicts_name_what_differs():
    registration = ShipmentRegistration("ORD-1", "a@example.com", "EP0001", "easyparcel", customer_id="c1")
    assert registration_conflict(registration, "hash", None, None) is None
    assert registration_conflict(registration, "hash", ExistingOrder("hash", "c1"), "easyparcel") is None
    assert "different customer email" in registration_conflict(registration, "hash", ExistingOrder("other", None), None)
    assert "another customer" in registration_conflict(registration, "hash", ExistingOrder("hash", "c2"), None)
    assert "courier other" in registration_conflict(registration, "hash", ExistingOrder("hash", None), "other")
