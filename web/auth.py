"""Who is asking: admin and viewer bearer tokens (compared as SHA-256 digests in constant time),
customer tokens signed by the shop (itsdangerous), the internal key and networks, and the
webhook secret and signatures. The checks are plain functions; the `require_*` helpers apply
them to a request and raise `ApiError` in the one error shape."""
from __future__ import annotations

import hashlib
import hmac
import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from starlette.requests import Request

from web.errors import ApiError

CUSTOMER_TOKEN_SALT = "trackcache-customer"
CUSTOMER_TOKEN_MAX_AGE = 30 * 24 * 3600
WEBHOOK_TOLERANCE_SECONDS = 300
ADMIN, VIEWER = "admin", "viewer"
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class InvalidCustomerToken(ValueError):
    """A customer token that cannot be used; the message says why (expired, bad signature, shape)."""


@dataclass(frozen=True)
class Staff:
    """An admin or viewer, known only by the fingerprint of their token."""

    role: str
    fingerprint: str

    @property
    def actor(self) -> str:
        """How the pipeline's logs name this person (`admin:<fingerprint>`)."""
        return f"{self.role}:{self.fingerprint}"


@dataclass(frozen=True)
class Customer:
    customer_id: str
    is_premium: bool = False


# --- pure checks --------------------------------------------------------------------------------

def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header (None when absent or another scheme)."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def token_fingerprint(token: str) -> str:
    """The short name of a token in logs and the audit log: the first 12 hex digits of its SHA-256."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()[:12]


def _matches_any(digest: str, digests: Iterable[str]) -> bool:
    # Every entry is compared (no early exit), so timing does not tell which entry matched.
    found = False
    for entry in digests:
        found |= hmac.compare_digest(digest.encode("ascii"), entry.encode("ascii"))
    return found


def role_of(token: str, admin_digests: Sequence[str], viewer_digests: Sequence[str]) -> str | None:
    """`admin`, `viewer` or None for a presented bearer token, given the configured digests."""
    digest = hashlib.sha256(token.encode("utf-8")).hexdigest()
    is_admin = _matches_any(digest, admin_digests)
    is_viewer = _matches_any(digest, viewer_digests)
    if is_admin:
        return ADMIN
    return VIEWER if is_viewer else None


def is_same_secret(presented: str | None, expected: str) -> bool:
    """Constant-time equality of a presented secret with the configured one; never true when the
    configured secret is empty (a deployment that set none accepts nobody)."""
    if not expected or presented is None:
        return False
    return hmac.compare_digest(presented.encode("utf-8"), expected.encode("utf-8"))


def is_address_allowed(address: str | None, networks: Sequence[str]) -> bool:
    """Whether a client address is inside one of the networks (any address when none are set)."""
    if not networks:
        return True
    if not address:
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in ipaddress.ip_network(network, strict=False) for network in networks)


def _serializer(secret: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret, salt=CUSTOMER_TOKEN_SALT)


def mint_customer_token(secret: str, customer_id: str, *, premium: bool = False) -> str:
    """A customer token as the shop mints it: `{"customer_id", "premium"}` signed with the secret."""
    if not secret:
        raise ValueError("TRACKING_CUSTOMER_TOKEN_SECRET is empty: customer tokens cannot be minted")
    if not isinstance(customer_id, str) or not customer_id:
        raise ValueError("customer_id must be a non-empty string")
    return _serializer(secret).dumps({"customer_id": customer_id, "premium": bool(premium)})


def read_customer_token(secret: str, token: str, *, max_age_seconds: int = CUSTOMER_TOKEN_MAX_AGE) -> Customer:
    """The customer a token names.

    Raises:
        InvalidCustomerToken: expired, not signed with this secret, or not the expected payload.
    """
    if not secret:
        raise InvalidCustomerToken("customer tokens are not configured on this server")
    try:
        payload: Any = _serializer(secret).loads(token, max_age=max_age_seconds)
    except SignatureExpired:
        raise InvalidCustomerToken("the customer token has expired") from None
    except BadSignature:
        raise InvalidCustomerToken("the customer token is not valid") from None
    if not isinstance(payload, dict):
        raise InvalidCustomerToken("the customer token does not carry a customer")
    customer_id, premium = payload.get("customer_id"), payload.get("premium", False)
    if not isinstance(customer_id, str) or not 0 < len(customer_id) <= 128 or not isinstance(premium, bool):
        raise InvalidCustomerToken("the customer token does not carry a customer")
    return Customer(customer_id=customer_id, is_premium=premium)


def sign_webhook(secret: str, timestamp: str, body: bytes) -> str:
    """The `X-Trackcache-Signature` value for a body: `sha256=<hex HMAC of "<timestamp>.<body>">`."""
    mac = hmac.new(secret.encode("utf-8"), timestamp.encode("ascii") + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def webhook_signature_problem(secret: str, timestamp: str | None, signature: str | None, body: bytes, *,
                              now: float, tolerance_seconds: int = WEBHOOK_TOLERANCE_SECONDS) -> str | None:
    """Why a signed webhook must be refused (None when the signature is good and fresh)."""
    if not secret:
        return "webhook signatures are not configured on this server"
    if not timestamp or not signature:
        return "X-Trackcache-Timestamp and X-Trackcache-Signature headers are required"
    stamp = timestamp.strip()
    if not stamp.isdigit() or len(stamp) > 12:
        return "X-Trackcache-Timestamp must be Unix seconds"
    if abs(now - int(stamp)) > tolerance_seconds:
        return f"the signature timestamp is more than {tolerance_seconds} seconds from the server's clock"
    try:
        expected = sign_webhook(secret, stamp, body)
    except UnicodeEncodeError:  # pragma: no cover - isdigit() admits only ASCII digits here
        return "X-Trackcache-Timestamp must be Unix seconds"
    if not hmac.compare_digest(signature.strip().encode("utf-8"), expected.encode("ascii")):
        return "the signature does not match the body"
    return None


# --- request guards ------------------------------------------------------------------------------

def client_address(request: Request) -> str | None:
    return request.client.host if request.client else None


def require_staff(request: Request) -> Staff:
    """The admin or viewer behind a request; viewers may only read.

    Raises:
        ApiError: 401 without a known token, 403 for a viewer's write.
    """
    from pipeline import runtime

    config = runtime.current().config
    token = bearer_token(request.headers.get("authorization"))
    role = role_of(token, config.admin_tokens, config.viewer_tokens) if token else None
    if token is None or role is None:
        raise ApiError(401, "unauthorized", "an admin or viewer bearer token is required",
                       headers={"WWW-Authenticate": 'Bearer realm="trackcache-admin"'})
    staff = Staff(role=role, fingerprint=token_fingerprint(token))
    if role == VIEWER and request.method not in READ_METHODS:
        raise ApiError(403, "forbidden", "viewer tokens may only read; this needs an admin token")
    return staff


def require_customer(request: Request) -> Customer | None:
    """The signed-in customer of a request, or None for a guest (no Authorization header).

    Raises:
        ApiError: 401 when a bearer token is presented but is not a valid customer token.
    """
    from pipeline import runtime

    header = request.headers.get("authorization")
    if header is None:
        return None
    token = bearer_token(header)
    challenge = {"WWW-Authenticate": 'Bearer realm="trackcache-customer"'}
    if token is None:
        raise ApiError(401, "invalid_token", "the Authorization header must be 'Bearer <customer token>'",
                       headers=challenge)
    try:
        return read_customer_token(runtime.current().config.customer_token_secret.reveal(), token)
    except InvalidCustomerToken as error:
        raise ApiError(401, "invalid_token", str(error), headers=challenge) from None


def require_internal(request: Request) -> None:
    """Internal callers: from an allowed network (when networks are configured) with the key.

    Raises:
        ApiError: 403 from another network, 401 without the right X-Internal-Key.
    """
    from pipeline import runtime

    config = runtime.current().config
    if not is_address_allowed(client_address(request), config.internal_networks):
        raise ApiError(403, "forbidden_network", "internal routes do not answer this client address")
    if not is_same_secret(request.headers.get("x-internal-key"), config.internal_api_key.reveal()):
        raise ApiError(401, "unauthorized", "a valid X-Internal-Key header is required")
