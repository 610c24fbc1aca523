"""Who may ask: customer tokens minted and read back (expiry, wrong secret, wrong payload), admin and
viewer tokens matched by digest, fingerprints, the internal key and networks, webhook signatures."""
from __future__ import annotations

import hashlib
import time

import pytest
from itsdangerous import URLSafeTimedSerializer

from web import auth

SECRET = "shop-secret-0123456789"


def test_a_minted_customer_token_reads_back_as_its_customer():
    token = auth.mint_customer_token(SECRET, "cust-42", premium=True)
    assert auth.read_customer_token(SECRET, token) == auth.Customer("cust-42", is_premium=True)
    assert auth.read_customer_token(SECRET, auth.mint_customer_token(SECRET, "c1")).is_premium is False


def test_the_readme_snippet_mints_the_same_kind_of_token():
    # What a shop runs (README, "Customer tokens"): itsdangerous with the documented salt and payload.
    token = URLSafeTimedSerializer(SECRET, salt="trackcache-customer").dumps({"customer_id": "c9", "premium": False})
    assert auth.read_customer_token(SECRET, token) == auth.Customer("c9", is_premium=False)


def test_a_token_older_than_thirty_days_is_refused(monkeypatch):
    issued = time.time() - 31 * 24 * 3600
    monkeypatch.setattr(time, "time", lambda: issued)
    token = auth.mint_customer_token(SECRET, "cust-42")
    monkeypatch.undo()
    with pytest.raises(auth.InvalidCustomerToken, match="expired"):
        auth.read_customer_token(SECRET, token)


@pytest.mark.parametrize(
    "token",
    [
        auth.mint_customer_token("another-secret-0123456789", "cust-42"),
        URLSafeTimedSerializer(SECRET, salt="another-salt").dumps({"customer_id": "c1", "premium": False}),
        "not-a-token",
        "",
    ],
    # fixed ids: a token's text holds the second it was minted, and xdist workers that collect in
    # different seconds would otherwise disagree on the test names and refuse to run
    ids=["another-secret", "another-salt", "not-a-token", "empty"],
)
def test_tokens_not_signed_by_the_shop_are_refused(token):
    with pytest.raises(auth.InvalidCustomerToken, match="not valid"):
        auth.read_customer_token(SECRET, token)


@pytest.mark.parametrize(
    "payload",
    [["cust"], {"customer_id": 42}, {"customer_id": ""}, {"customer_id": "c", "premium": "yes"}, {"premium": True},
     {"customer_id": "x" * 129}],
)
def test_signed_tokens_without_a_proper_customer_are_refused(payload):
    token = URLSafeTimedSerializer(SECRET, salt=auth.CUSTOMER_TOKEN_SALT).dumps(payload)
    with pytest.raises(auth.InvalidCustomerToken, match="does not carry a customer"):
        auth.read_customer_token(SECRET, token)


def test_without_a_configured_secret_no_token_is_minted_or_accepted():
    with pytest.raises(ValueError):
        auth.mint_customer_token("", "c1")
    with pytest.raises(auth.InvalidCustomerToken, match="not configured"):
        auth.read_customer_token("", auth.mint_customer_token(SECRET, "c1"))


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@pytest.mark.parametrize(
    ("token", "role"),
    [("admin-token-0123456789", "admin"), ("viewer-token-0123456789", "viewer"), ("other-token-0123456789", None),
     ("both-token-0123456789", "admin")],
)
def test_bearer_tokens_map_to_roles_by_digest(token, role):
    admins = (digest("admin-token-0123456789"), digest("both-token-0123456789"))
    viewers = (digest("viewer-token-0123456789"), digest("both-token-0123456789"))
    assert auth.role_of(token, admins, viewers) == role


@pytest.mark.parametrize(
    ("header", "token"),
    [("Bearer abc", "abc"), ("bearer  abc ", "abc"), ("Basic abc", None), ("Bearer", None), ("", None), (None, None)],
)
def test_the_bearer_token_is_read_from_the_authorization_header(header, token):
    assert auth.bearer_token(header) == token


def test_a_token_is_named_by_the_first_twelve_hex_digits_of_its_digest():
    assert auth.token_fingerprint("admin-token-0123456789") == digest("admin-token-0123456789")[:12]


@pytest.mark.parametrize(
    ("presented", "expected", "same"),
    [("key-0123456789", "key-0123456789", True), ("key-012345678", "key-0123456789", False), (None, "k", False),
     ("", "", False), ("anything", "", False), ("ключ", "ключ", True)],
)
def test_secrets_are_compared_whole_and_an_empty_configured_secret_accepts_nobody(presented, expected, same):
    assert auth.is_same_secret(presented, expected) is same


@pytest.mark.parametrize(
    ("address", "networks", "allowed"),
    [("10.1.2.3", (), True), ("10.1.2.3", ("10.0.0.0/8",), True), ("192.168.1.1", ("10.0.0.0/8",), False),
     ("127.0.0.1", ("10.0.0.0/8", "127.0.0.1/32"), True), ("::1", ("127.0.0.0/8",), False),
     ("testclient", ("10.0.0.0/8",), False), (None, ("10.0.0.0/8",), False)],
)
def test_internal_networks_limit_client_addresses(address, networks, allowed):
    assert auth.is_address_allowed(address, networks) is allowed


BODY = b'{"topic": "tracking", "event_id": "e1"}'
NOW = 1_800_000_000


def test_a_fresh_correct_signature_is_accepted():
    signature = auth.sign_webhook("whsec-0123456789", str(NOW), BODY)
    assert signature.startswith("sha256=") and len(signature) == 7 + 64
    assert auth.webhook_signature_problem("whsec-0123456789", str(NOW), signature, BODY, now=NOW + 299) is None


@pytest.mark.parametrize(
    ("timestamp", "signature", "body", "now", "problem"),
    [
        (None, "sha256=00", BODY, NOW, "headers are required"),
        (str(NOW), None, BODY, NOW, "headers are required"),
        ("yesterday", "sha256=00", BODY, NOW, "Unix seconds"),
        (str(NOW), "sha256=" + "0" * 64, BODY, NOW, "does not match"),
        (str(NOW), "SIGN", BODY + b" ", NOW, "does not match"),
        (str(NOW - 301), "SIGN", BODY, NOW, "300 seconds"),
        (str(NOW + 301), "SIGN", BODY, NOW, "300 seconds"),
    ],
)
def test_missing_wrong_or_stale_signatures_are_refused_with_the_reason(timestamp, signature, body, now, problem):
    if signature == "SIGN":
        signature = auth.sign_webhook("whsec-0123456789", timestamp, BODY)
    found = auth.webhook_signature_problem("whsec-0123456789", timestamp, signature, body, now=now)
    assert found is not None and problem in found


def test_without_a_webhook_secret_no_signature_is_accepted():
    assert "not configured" in auth.webhook_signature_problem("", str(NOW), auth.sign_webhook("", str(NOW), BODY),
                                                              BODY, now=NOW)


def test_a_verified_token_is_still_refused_once_it_is_too_old_and_only_under_its_own_secret(monkeypatch):
    # given a token read once (so remembered as verified)
    token = auth.mint_customer_token(SECRET, "cust-remembered")
    assert auth.read_customer_token(SECRET, token) == auth.Customer("cust-remembered")
    assert auth.VERIFIED_TOKENS.get(SECRET, token) is not None
    # then another secret does not accept it
    with pytest.raises(auth.InvalidCustomerToken, match="not valid"):
        auth.read_customer_token("another-secret-0123456789", token)
    # and thirty-one days later it has expired, remembered or not
    later = time.time() + 31 * 24 * 3600
    monkeypatch.setattr(time, "time", lambda: later)
    with pytest.raises(auth.InvalidCustomerToken, match="expired"):
        auth.read_customer_token(SECRET, token)


def test_the_verified_tokens_are_bounded():
    tokens = auth.VerifiedTokens(max_entries=3)
    for n in range(10):
        tokens.put(SECRET, f"token-{n}", auth.Customer(f"c{n}"), 0)
        assert len(tokens._entries) <= 3
    assert tokens.get(SECRET, "token-9") == (auth.Customer("c9"), 0)
