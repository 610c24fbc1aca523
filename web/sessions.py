"""Who is using the pages: the signed dashboard session cookie (HttpOnly, SameSite=Lax, Secure
over HTTPS, scoped to /admin), its per-session CSRF token, the staff member a session names
(re-checked against the configured tokens on every request), the signed links the tracking page
hands a guest after a lookup, and the parsing of posted forms. The checks are plain functions;
`PageSessions` is the ASGI middleware that carries the cookie."""
from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
from collections.abc import Mapping, MutableMapping, Sequence
from typing import Any
from urllib.parse import parse_qsl

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from starlette.middleware.sessions import SessionMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from web.auth import ADMIN, VIEWER, Staff

SESSION_COOKIE = "trackcache_admin"
SESSION_PATH = "/admin"
CSRF_FIELD = "csrf_token"
TRACK_LINK_SALT = "trackcache-track-link"
_KEY_LABEL = b"trackcache page sessions v1"
_process_key = secrets.token_urlsafe(32)


class InvalidLink(ValueError):
    """A tracking-page link that cannot be used; `is_expired` tells an old link from a bad one."""

    def __init__(self, message: str, *, is_expired: bool) -> None:
        super().__init__(message)
        self.is_expired = is_expired


# --- keys ----------------------------------------------------------------------------------------

def session_key(session_secret: str, email_hash_key: str, customer_token_secret: str, *,
                fallback: str = _process_key) -> str:
    """The key that signs sessions and links: TRACKING_SESSION_SECRET when set, else derived from
    the two secrets every production process already shares (so all web processes agree), else
    (a dev setup with neither) a random key of this process."""
    if session_secret:
        return session_secret
    if email_hash_key and customer_token_secret:
        material = email_hash_key.encode("utf-8") + b"\x00" + customer_token_secret.encode("utf-8")
        return hmac.new(material, _KEY_LABEL, hashlib.sha256).hexdigest()
    return fallback


def key_from_config(config: Any) -> str:
    return session_key(config.session_secret.reveal(), config.email_hash_key.reveal(),
                       config.customer_token_secret.reveal())


# --- tracking-page links -------------------------------------------------------------------------

def make_track_link(key: str, order_id: str) -> str:
    """A signed, URL-safe token naming an order the holder has proved to know (order id + email)."""
    return URLSafeTimedSerializer(key, salt=TRACK_LINK_SALT).dumps({"o": order_id})


def read_track_link(key: str, token: str, *, max_age_seconds: int) -> str:
    """The order id a tracking-page link names.

    Raises:
        InvalidLink: expired, not signed with this key, or not a link.
    """
    try:
        payload = URLSafeTimedSerializer(key, salt=TRACK_LINK_SALT).loads(token, max_age=max_age_seconds)
    except SignatureExpired:
        raise InvalidLink("the tracking link has expired", is_expired=True) from None
    except BadSignature:
        raise InvalidLink("the tracking link is not valid", is_expired=False) from None
    order_id = payload.get("o") if isinstance(payload, dict) else None
    if not isinstance(order_id, str) or not order_id:
        raise InvalidLink("the tracking link is not valid", is_expired=False)
    return order_id


# --- staff sessions ------------------------------------------------------------------------------

def role_of_digest(digest: str, admin_digests: Sequence[str], viewer_digests: Sequence[str]) -> str | None:
    """`admin`, `viewer` or None for a token's SHA-256 digest (every entry compared, constant time)."""
    is_admin = is_viewer = False
    for entry in admin_digests:
        is_admin |= hmac.compare_digest(digest.encode("ascii", "replace"), entry.encode("ascii"))
    for entry in viewer_digests:
        is_viewer |= hmac.compare_digest(digest.encode("ascii", "replace"), entry.encode("ascii"))
    return ADMIN if is_admin else VIEWER if is_viewer else None


def sign_in(session: MutableMapping[str, Any], token: str) -> None:
    """Start a fresh session for a token's holder: the old session (and its CSRF token) is dropped,
    and only the token's digest is kept (the cookie is signed, not encrypted)."""
    session.clear()
    session["digest"] = hashlib.sha256(token.encode("utf-8")).hexdigest()
    session[CSRF_FIELD] = secrets.token_urlsafe(32)


def staff_of(session: Mapping[str, Any], admin_digests: Sequence[str],
             viewer_digests: Sequence[str]) -> Staff | None:
    """The staff member a session names, with the role the configured tokens give them now (a
    token removed from the settings ends its sessions)."""
    digest = session.get("digest")
    if not isinstance(digest, str) or len(digest) != 64:
        return None
    role = role_of_digest(digest, admin_digests, viewer_digests)
    return None if role is None else Staff(role=role, fingerprint=digest[:12])


def csrf_token(session: MutableMapping[str, Any]) -> str:
    """This session's CSRF token (made on first use)."""
    token = session.get(CSRF_FIELD)
    if not isinstance(token, str) or len(token) < 32:
        token = secrets.token_urlsafe(32)
        session[CSRF_FIELD] = token
    return token


def is_valid_csrf(session: Mapping[str, Any], presented: str | None) -> bool:
    """Whether a posted CSRF token is this session's (constant time; never true without a session)."""
    expected = session.get(CSRF_FIELD)
    if not isinstance(expected, str) or not expected or not presented:
        return False
    return hmac.compare_digest(presented.encode("utf-8"), expected.encode("utf-8"))


def is_same_origin(origin: str | None, host: str | None, scheme: str) -> bool:
    """Whether a request's Origin header (when the browser sent one) is this site."""
    if origin is None:
        return True
    return host is not None and origin in (f"{scheme}://{host}", f"https://{host}", f"http://{host}")


def safe_next(target: str | None, default: str = "/admin") -> str:
    """A local dashboard path to go back to after an action (anything else becomes the default)."""
    if not target or not target.startswith("/admin") or target.startswith("//") or "\\" in target \
            or any(ord(ch) < 32 for ch in target):
        return default
    return target


# --- forms ---------------------------------------------------------------------------------------

def parse_form(body: bytes) -> dict[str, str]:
    """An application/x-www-form-urlencoded body as a dict (the last value of a repeated field);
    undecodable bytes become replacement characters."""
    text = body.decode("utf-8", errors="replace")
    return {key: value for key, value in parse_qsl(text, keep_blank_values=True)}


# --- middleware ----------------------------------------------------------------------------------

class PageSessions:
    """ASGI middleware: the signed session cookie of the dashboard, only under /admin (the API and
    the tracking page never see it). The key and lifetime come from the running process's
    settings, read on the first dashboard request (no I/O at import)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._inner: dict[bool, SessionMiddleware] = {}
        self._lock = threading.Lock()

    def _middleware(self, is_https: bool) -> SessionMiddleware:
        with self._lock:
            inner = self._inner.get(is_https)
            if inner is None:
                from pipeline import runtime

                config = runtime.current().config
                inner = SessionMiddleware(self.app, secret_key=key_from_config(config),
                                          session_cookie=SESSION_COOKIE,
                                          max_age=config.admin_session_hours * 3600, path=SESSION_PATH,
                                          same_site="lax", https_only=is_https)
                self._inner[is_https] = inner
            return inner

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not (path == SESSION_PATH or path.startswith(SESSION_PATH + "/")):
            await self.app(scope, receive, send)
            return
        await self._middleware(scope.get("scheme") == "https")(scope, receive, send)
