"""Pure parts of the integration API: customer JWTs (HS256, RS256, ES256 from a JWKS file; what is
refused and why), correction validation, what notification options do to an order's contact,
versions, list filters and cursors, the changes
feed's cursor, and idempotency key checks."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from datetime import UTC, datetime

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from pipeline import changes_feed
from pipeline.corrections import (
    ContactPlan,
    ContactRefusal,
    ContactState,
    ShipmentCorrection,
    matches_version,
    plan_contact,
    shipment_version,
    validate_correction,
)
from web import idempotency, listing
from web.auth import CustomerJwtPolicy, InvalidCustomerToken, is_jwt, mint_customer_token, read_bearer_customer

pytestmark = pytest.mark.unit

SECRET = "unit-jwt-secret-0123456789-abcdefghij"
LEGACY_SECRET = "unit-legacy-secret-0123"


def claims(**overrides) -> dict:
    return {"sub": "cust-1", "exp": int(time.time()) + 300} | overrides


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    """An RSA and an EC key pair, their public halves in a JWKS file."""
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    jwks = {"keys": [
        jwt.algorithms.RSAAlgorithm.to_jwk(rsa_key.public_key(), as_dict=True) | {"kid": "rsa-1", "alg": "RS256"},
        jwt.algorithms.ECAlgorithm.to_jwk(ec_key.public_key(), as_dict=True) | {"kid": "ec-1", "alg": "ES256"},
    ]}
    path = tmp_path_factory.mktemp("jwks") / "jwks.json"
    path.write_text(json.dumps(jwks))
    return {"rsa": rsa_key, "ec": ec_key, "path": str(path)}


def policy(keys=None, **overrides) -> CustomerJwtPolicy:
    return CustomerJwtPolicy(**({"hs256_secret": SECRET, "jwks_file": keys["path"] if keys else "",
                                 "leeway_seconds": 0} | overrides))


def read(token: str, used_policy: CustomerJwtPolicy):
    return read_bearer_customer(token, secret=LEGACY_SECRET, policy=used_policy)


@pytest.mark.parametrize("algorithm,kid", [("RS256", "rsa-1"), ("ES256", "ec-1"), ("RS256", None), ("ES256", None)])
def test_rs256_and_es256_tokens_are_checked_against_the_jwks_file(keys, algorithm, kid):
    private = keys["rsa"] if algorithm == "RS256" else keys["ec"]
    token = jwt.encode(claims(premium=True), private, algorithm=algorithm, headers={"kid": kid} if kid else None)
    customer = read(token, policy(keys))
    assert (customer.customer_id, customer.is_premium) == ("cust-1", True)


def test_an_hs256_token_names_its_customer_and_a_legacy_token_still_works():
    token = jwt.encode(claims(), SECRET, algorithm="HS256")
    assert is_jwt(token) and read(token, policy()).customer_id == "cust-1"
    legacy = mint_customer_token(LEGACY_SECRET, "cust-2")
    assert not is_jwt(legacy) and read(legacy, policy()).customer_id == "cust-2"


@pytest.mark.parametrize("make,reason", [
    (lambda k: jwt.encode(claims(exp=int(time.time()) - 10), SECRET, algorithm="HS256"), "expired"),
    (lambda k: jwt.encode({"sub": "cust-1"}, SECRET, algorithm="HS256"), "'exp'"),
    (lambda k: jwt.encode({"exp": int(time.time()) + 60}, SECRET, algorithm="HS256"), "'sub'"),
    (lambda k: jwt.encode(claims(), "another-secret-0123456789-0123456789", algorithm="HS256"), "not valid"),
    (lambda k: jwt.encode(claims(), SECRET * 2, algorithm="HS384"), "HS256, RS256 or ES256"),
    (lambda k: jwt.encode(claims(sub=""), SECRET, algorithm="HS256"), "not valid|does not carry"),
    (lambda k: jwt.encode(claims(premium="yes"), SECRET, algorithm="HS256"), "does not carry"),
    (lambda k: jwt.encode(claims(), k["rsa"], algorithm="RS256", headers={"kid": "nope"}), "kid"),
    (lambda k: jwt.encode(claims(), k["rsa"], algorithm="RS256", headers={"kid": "ec-1"}), "does not match"),
    (lambda k: jwt.encode(claims(nbf=int(time.time()) + 600), SECRET, algorithm="HS256"), "not valid yet"),
    (lambda k: "eyJhbGciOiJub25lIn0.eyJzdWIiOiJjdXN0LTEifQ.", "HS256, RS256 or ES256|malformed"),
])
def test_bad_tokens_are_refused_saying_why(keys, make, reason):
    with pytest.raises(InvalidCustomerToken, match=reason):
        read(make(keys), policy(keys))


def test_a_public_key_cannot_be_used_as_an_hmac_secret(keys):
    public_pem = keys["rsa"].public_key().public_bytes(serialization.Encoding.PEM,
                                                       serialization.PublicFormat.SubjectPublicKeyInfo)
    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).decode().rstrip("=")

    head = b64(json.dumps({"alg": "HS256", "kid": "rsa-1"}).encode()) + "." + b64(json.dumps(claims()).encode())
    forged = head + "." + b64(hmac.new(public_pem, head.encode(), hashlib.sha256).digest())
    with pytest.raises(InvalidCustomerToken):
        read(forged, CustomerJwtPolicy(hs256_secret="", jwks_file=keys["path"]))
    with pytest.raises(InvalidCustomerToken):
        read(forged, policy(keys))


def test_audience_and_issuer_are_checked_only_when_configured(keys):
    token = jwt.encode(claims(aud="shop-a", iss="https://id.shop-a.example"), SECRET, algorithm="HS256")
    assert read(token, policy()).customer_id == "cust-1"
    assert read(token, policy(audience="shop-a", issuer="https://id.shop-a.example")).customer_id == "cust-1"
    with pytest.raises(InvalidCustomerToken, match="audience"):
        read(token, policy(audience="shop-b"))
    with pytest.raises(InvalidCustomerToken, match="issuer"):
        read(token, policy(issuer="https://elsewhere.example"))


def test_unconfigured_algorithms_and_unreadable_key_files_are_refused(keys, tmp_path):
    rs = jwt.encode(claims(), keys["rsa"], algorithm="RS256")
    with pytest.raises(InvalidCustomerToken, match="not configured"):
        read(rs, policy())
    with pytest.raises(InvalidCustomerToken, match="not configured"):
        read(jwt.encode(claims(), SECRET, algorithm="HS256"), policy(hs256_secret=""))
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(InvalidCustomerToken, match="no usable key"):
        read(rs, policy(jwks_file=str(broken)))
    with pytest.raises(InvalidCustomerToken, match="cannot be read"):
        read(rs, policy(jwks_file=str(tmp_path / "missing.json")))


# --- corrections -----------------------------------------------------------------------------------

def test_corrections_take_known_fields_and_name_every_problem():
    correction, errors = validate_correction({"customer_email": " New@Example.com ", "customer_id": None,
                                              "courier": "EasyParcel"}, ["easyparcel"])
    assert errors == {} and correction is not None
    assert (correction.customer_email, correction.clears_customer_id, correction.courier) == (
        "New@Example.com", True, "easyparcel")
    assert correction.field_names() == ["customer_email", "customer_id", "courier"]
    _, errors = validate_correction({"customer_email": "nope", "customer_id": 5, "courier": "pigeon", "note": "x"},
                                    ["easyparcel"])
    assert set(errors) == {"customer_email", "customer_id", "courier", "note"}
    assert validate_correction({}, ["easyparcel"])[1] == {"body": "give at least one of: customer_email, "
                                                                  "customer_id, courier, notify_email, locale"}


def test_notification_options_are_a_boolean_and_a_supported_locale():
    correction, errors = validate_correction({"notify_email": False, "locale": "ms"}, ["easyparcel"], ("en", "ms"))
    assert errors == {} and correction is not None
    assert (correction.notify_email, correction.locale) == (False, "ms")
    assert correction.field_names() == ["notify_email", "locale"]
    _, errors = validate_correction({"notify_email": "yes", "locale": "fr"}, ["easyparcel"], ("en", "ms"))
    assert errors == {"notify_email": "must be true or false", "locale": "must be one of: en, ms"}
    _, errors = validate_correction({"notify_email": None, "locale": None}, ["easyparcel"], ("en", "ms"))
    assert set(errors) == {"notify_email", "locale"}


def plan(current: ContactState | None, *, keys: bool = True, replaces_address: bool = False, **fields):
    return plan_contact(ShipmentCorrection(**fields), current, order_id="ORD-1", has_contact_keys=keys,
                        default_locale="en", replaces_address=replaces_address)


ON = ContactState(notify_email=True, locale="en")


@pytest.mark.parametrize(("current", "fields", "expected"), [
    # nothing asked about notifications: nothing to do
    (ON, {"customer_id": "c1"}, ContactPlan()),
    # a stored contact: options change, and only what differs counts as changed
    (ON, {"notify_email": False}, ContactPlan(notify_email=False, changed=("notify_email",))),
    (ON, {"notify_email": True, "locale": "ms"}, ContactPlan(locale="ms", changed=("locale",))),
    (ON, {"notify_email": True, "locale": "en"}, ContactPlan()),
    (ContactState(notify_email=False, locale="ms"), {"notify_email": True},
     ContactPlan(notify_email=True, changed=("notify_email",))),
    # no stored address: turning emails on needs the address in the same PATCH
    (None, {"notify_email": True, "customer_email": "a@example.com"},
     ContactPlan(creates=True, notify_email=True, locale="en", changed=("notify_email",))),
    (None, {"notify_email": True, "locale": "ms", "customer_email": "a@example.com"},
     ContactPlan(creates=True, notify_email=True, locale="ms", changed=("notify_email", "locale"))),
    (ContactState(notify_email=True, locale="en", has_address=False),
     {"notify_email": True, "customer_email": "a@example.com"},
     ContactPlan(creates=True, notify_email=True, locale="en", changed=("notify_email",))),
    # emails off for an order that gets none: already so
    (None, {"notify_email": False}, ContactPlan()),
])
def test_notification_options_plan_what_the_contact_becomes(current, fields, expected):
    assert plan(current, **fields) == expected


@pytest.mark.parametrize(("current", "fields", "keys", "status", "field_name"), [
    (None, {"notify_email": True}, True, 422, "notify_email"),  # only the email's hash is stored
    (None, {"locale": "ms"}, True, 422, "locale"),  # no emails, so no email language
    (None, {"notify_email": True, "customer_email": "a@example.com"}, False, 422, "notify_email"),  # no key
    (ContactState(notify_email=False, locale="en", is_unsubscribed=True), {"notify_email": True}, True, 409, None),
    (ContactState(notify_email=True, locale="en", is_bounced=True), {"notify_email": True}, True, 409, None),
])
def test_notification_options_that_cannot_apply_are_refused_naming_why(current, fields, keys, status, field_name):
    refusal = plan(current, keys=keys, **fields)
    assert isinstance(refusal, ContactRefusal) and refusal.status == status
    if field_name is not None:
        assert list(refusal.fields) == [field_name]
        assert ("ORD-1" if keys else "TRACKING_CONTACT_KEYS") in refusal.fields[field_name]
    else:
        assert "ORD-1" in refusal.detail
    if fields.get("notify_email") and current is None and keys:
        assert "customer_email" in refusal.fields["notify_email"]


def test_a_bounced_address_takes_emails_again_once_a_new_address_is_given():
    bounced = ContactState(notify_email=True, locale="en", is_bounced=True)
    assert plan(bounced, notify_email=True, customer_email="new@example.com", replaces_address=True) == ContactPlan()
    assert not bounced.is_emailed and ON.is_emailed


def test_a_version_changes_with_every_correctable_field_and_if_match_compares_it():
    base = shipment_version("h", "c", "easyparcel", True)
    assert len({base, shipment_version("h2", "c", "easyparcel", True), shipment_version("h", None, "easyparcel", True),
                shipment_version("h", "c", "fake", True), shipment_version("h", "c", "easyparcel", False),
                shipment_version("h", "c", "easyparcel", True, ContactState(notify_email=True, locale="en")),
                shipment_version("h", "c", "easyparcel", True, ContactState(notify_email=False, locale="en")),
                shipment_version("h", "c", "easyparcel", True, ContactState(notify_email=True, locale="ms"))}) == 8
    assert matches_version(None, base) and matches_version("*", base) and matches_version(f'W/{base}, "x"', base)
    assert not matches_version('"other"', base)


# --- lists and cursors -----------------------------------------------------------------------------

def test_list_filters_parse_and_cursors_are_bound_to_their_filters():
    query, errors = listing.parse_shipment_list_query(
        {"tracking_number": "ep 123x", "status": "in_transit", "delayed": "true", "updated_since": "2026-12-01T00:00:00Z",
         "limit": "500"}, ["easyparcel"])
    assert errors == {} and query is not None
    assert (query.filters.tracking_number, query.filters.delayed, query.limit) == ("EP123X", True, 500)
    assert query.filters.updated_since == datetime(2026, 12, 1, tzinfo=UTC)
    cursor = listing.shipment_cursor(41, query.filters)
    again, _ = listing.parse_shipment_list_query({"tracking_number": "EP123X", "status": "in_transit", "delayed": "1",
                                                  "updated_since": "2026-12-01T00:00:00Z", "cursor": cursor},
                                                 ["easyparcel"])
    assert again is not None and again.after_id == 41
    _, errors = listing.parse_shipment_list_query({"cursor": cursor}, ["easyparcel"])
    assert "other filters" in errors["cursor"]
    _, errors = listing.parse_shipment_list_query({"cursor": "!!", "limit": "0", "delayed": "maybe",
                                                   "updated_since": "yesterday", "courier": "x"}, ["easyparcel"])
    assert set(errors) == {"limit", "delayed", "updated_since", "courier"}


def test_order_cursors_round_trip_and_bad_ones_are_named():
    moment = datetime(2026, 12, 1, 8, 30, tzinfo=UTC)
    parsed, errors = listing.parse_order_list_query({"cursor": listing.order_cursor(moment, "ORD|1"), "limit": "5"})
    assert errors == {} and parsed == (5, (moment, "ORD|1"))
    assert set(listing.parse_order_list_query({"cursor": "bm9wZQ", "limit": "101"})[1]) == {"cursor", "limit"}


def test_a_shipment_is_delayed_only_past_its_estimate_and_not_finished():
    now = datetime(2026, 12, 1, tzinfo=UTC)
    before = datetime(2026, 11, 30, tzinfo=UTC)
    assert listing.is_delayed("in_transit", before, now)
    assert not listing.is_delayed("delivered", before, now)
    assert not listing.is_delayed("in_transit", None, now)
    assert not listing.is_delayed("in_transit", datetime(2026, 12, 2, tzinfo=UTC), now)


def test_feed_cursors_round_trip_and_reject_anything_else():
    cursor = changes_feed.FeedCursor(2 ** 40 + 7, 99)
    assert changes_feed.decode_cursor(cursor.encode()) == cursor
    for bad in ("", "latest!", "YzIuMS4y", "x" * 100, listing.shipment_cursor(1, listing.ShipmentFilters())):
        with pytest.raises(ValueError):
            changes_feed.decode_cursor(bad)
    assert changes_feed.FeedCursor(1, 5) < changes_feed.FeedCursor(2, 1)


# --- idempotency -----------------------------------------------------------------------------------

def test_idempotency_keys_are_visible_ascii_and_requests_hash_every_part():
    assert idempotency.key_problem("0b7e6c0e-6d8a-4d3e") is None
    for bad in ("", "has space", "é", "x" * 256):
        assert idempotency.key_problem(bad)
    base = idempotency.request_hash("POST", "/a", b"", b"{}")
    assert len({base, idempotency.request_hash("POST", "/b", b"", b"{}"),
                idempotency.request_hash("POST", "/a", b"q=1", b"{}"),
                idempotency.request_hash("POST", "/a", b"", b"{ }")}) == 4
    assert idempotency.is_kept(200) and idempotency.is_kept(201) and idempotency.is_kept(202)
    assert not any(idempotency.is_kept(status) for status in (400, 401, 403, 404, 409, 422, 429, 500, 503))
