"""Dashboard sessions and tracking-page links: the signing key, links that expire and cannot be
forged, sessions that keep a token digest and lose their role when the token is removed, CSRF
tokens, safe redirects and posted forms."""
from __future__ import annotations

import hashlib

import pytest

from web import sessions

ADMIN = "admin-token-0123456789"
VIEWER = "viewer-token-0123456789"
ADMINS = (hashlib.sha256(ADMIN.encode()).hexdigest(),)
VIEWERS = (hashlib.sha256(VIEWER.encode()).hexdigest(),)


def test_the_key_is_the_session_secret_else_derived_from_shared_secrets_else_per_process():
    assert sessions.session_key("explicit-secret", "a" * 16, "b" * 16) == "explicit-secret"
    derived = sessions.session_key("", "a" * 16, "b" * 16)
    assert derived == sessions.session_key("", "a" * 16, "b" * 16) and len(derived) == 64
    assert derived != sessions.session_key("", "a" * 16, "c" * 16)
    assert "a" * 16 not in derived
    assert sessions.session_key("", "", "b" * 16, fallback="random") == "random"


def test_a_track_link_names_its_order_and_cannot_be_forged_or_used_after_it_expires():
    link = sessions.make_track_link("key-1", "ORD-1")
    assert sessions.read_track_link("key-1", link, max_age_seconds=60) == "ORD-1"
    with pytest.raises(sessions.InvalidLink) as forged:
        sessions.read_track_link("key-2", link, max_age_seconds=60)
    assert not forged.value.is_expired
    with pytest.raises(sessions.InvalidLink) as expired:
        sessions.read_track_link("key-1", link, max_age_seconds=-1)
    assert expired.value.is_expired
    for junk in ("", "abc", link[:-3] + "AAA"):
        with pytest.raises(sessions.InvalidLink):
            sessions.read_track_link("key-1", junk, max_age_seconds=60)


def test_a_session_keeps_the_token_digest_and_gets_its_role_from_the_current_settings():
    session: dict = {"csrf_token": "old", "actions": [1]}
    sessions.sign_in(session, ADMIN)
    assert ADMIN not in str(session) and session["digest"] == ADMINS[0]
    assert "actions" not in session and session["csrf_token"] != "old", "signing in starts a fresh session"
    staff = sessions.staff_of(session, ADMINS, VIEWERS)
    assert staff is not None and (staff.role, staff.fingerprint) == ("admin", ADMINS[0][:12])
    viewer: dict = {}
    sessions.sign_in(viewer, VIEWER)
    assert sessions.staff_of(viewer, ADMINS, VIEWERS).role == "viewer"
    assert sessions.staff_of(session, (), VIEWERS) is None, "a removed token ends its sessions"
    assert sessions.staff_of({}, ADMINS, VIEWERS) is None
    assert sessions.staff_of({"digest": "x" * 10}, ADMINS, VIEWERS) is None


def test_role_of_digest_prefers_admin_and_refuses_unknown_digests():
    assert sessions.role_of_digest(ADMINS[0], ADMINS, ADMINS) == "admin"
    assert sessions.role_of_digest("0" * 64, ADMINS, VIEWERS) is None
    assert sessions.role_of_digest("é" * 64, ADMINS, VIEWERS) is None


def test_csrf_tokens_are_per_session_and_compared_exactly():
    session: dict = {}
    token = sessions.csrf_token(session)
    assert len(token) >= 32 and sessions.csrf_token(session) == token
    assert sessions.is_valid_csrf(session, token)
    assert not sessions.is_valid_csrf(session, token + "x")
    assert not sessions.is_valid_csrf(session, None) and not sessions.is_valid_csrf({}, token)
    assert not sessions.is_valid_csrf({}, "")


@pytest.mark.parametrize(("origin", "expected"), [
    (None, True), ("http://shop.example", True), ("https://shop.example", True), ("https://evil.example", False),
    ("null", False), ("http://shop.example.evil.example", False),
])
def test_same_origin_check(origin, expected):
    assert sessions.is_same_origin(origin, "shop.example", "http") is expected


@pytest.mark.parametrize(("target", "expected"), [
    (None, "/admin"), ("", "/admin"), ("/admin", "/admin"), ("/admin/search?q=ORD-1", "/admin/search?q=ORD-1"),
    ("https://evil.example/admin", "/admin"), ("//evil.example", "/admin"), ("/track", "/admin"),
    ("/admin\\@evil", "/admin"), ("/admin\r\nSet-Cookie: x=1", "/admin"),
])
def test_safe_next_only_goes_back_into_the_dashboard(target, expected):
    assert sessions.safe_next(target) == expected


def test_parse_form_reads_urlencoded_bodies():
    assert sessions.parse_form(b"order_id=ORD-1&email=a%40b.example&empty=&x=1&x=2") == {
        "order_id": "ORD-1", "email": "a@b.example", "empty": "", "x": "2"}
    assert sessions.parse_form(b"name=%FF") == {"name": "\ufffd"}
    assert sessions.parse_form(b"") == {}
