"""Who is asking: admin and viewer bearer tokens (compared as SHA-256 digests in constant time),
customer tokens signed by the shop (standard JWTs: HS256, RS256, ES256; or the older itsdangerous
form), the internal key and networks, and the webhook secret and signatures. The checks are plain functions; the `require_*` helpers apply
them to a request and raise `ApiError` in the one error shape."""
from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import os
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import jwt
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
    known = VERIFIED_TOKENS.get(secret, token)
    if known is not None:
        customer, signed_at = known
        if int(time.time()) - signed_at > max_age_seconds:
            raise InvalidCustomerToken("the customer token has expired")
        return customer
    try:
        payload, signed = _serializer(secret).loads(token, max_age=max_age_seconds, return_timestamp=True)
    except SignatureExpired:
        raise InvalidCustomerToken("the customer token has expired") from None
    except BadSignature:
        raise InvalidCustomerToken("the customer token is not valid") from None
    if not isinstance(payload, dict):
        raise InvalidCustomerToken("the customer token does not carry a customer")
    customer_id, premium = payload.get("customer_id"), payload.get("premium", False)
    if not isinstance(customer_id, str) or not 0 < len(customer_id) <= 128 or not isinstance(premium, bool):
        raise InvalidCustomerToken("the customer token does not carry a customer")
    customer = Customer(customer_id=customer_id, is_premium=premium)
    VERIFIED_TOKENS.put(secret, token, customer, int(signed.timestamp()))
    return customer


class VerifiedTokens:
    """Customer tokens this process has verified, with the second they were signed: presented
    again, a token is checked for age only. py-spy put a fifth of a signed-in read's CPU in
    itsdangerous (base64, HMAC, JSON). Bounded: emptied when full."""

    def __init__(self, max_entries: int = 10_000) -> None:
        self.max_entries = max_entries
        self._entries: dict[tuple[str, str], tuple[Customer, int]] = {}
        self._lock = threading.Lock()

    def get(self, secret: str, token: str) -> tuple[Customer, int] | None:
        return self._entries.get((secret, token))

    def put(self, secret: str, token: str, customer: Customer, signed_at: int) -> None:
        with self._lock:
            if len(self._entries) >= self.max_entries:
                self._entries.clear()
            self._entries[(secret, token)] = (customer, signed_at)


VERIFIED_TOKENS = VerifiedTokens()


# --- customer JWTs (integration API) --------------------------------------------------------------

HS256, RS256, ES256 = "HS256", "RS256", "ES256"
JWKS_ALGORITHMS = (RS256, ES256)


@dataclass(frozen=True)
class CustomerJwtPolicy:
    """How customer JWTs are checked: which keys, and the optional audience and issuer."""

    hs256_secret: str = ""
    jwks_file: str = ""
    audience: str = ""
    issuer: str = ""
    leeway_seconds: int = 30


def jwt_policy_from(config: Any) -> CustomerJwtPolicy:
    """The policy of the process's settings."""
    return CustomerJwtPolicy(hs256_secret=config.customer_jwt_secret.reveal(), jwks_file=config.customer_jwks_file,
                             audience=config.customer_jwt_audience, issuer=config.customer_jwt_issuer,
                             leeway_seconds=config.customer_jwt_leeway)


def is_jwt(token: str) -> bool:
    """Whether a bearer token is a JWT (its first segment is a JSON header naming an `alg`) rather
    than an itsdangerous customer token (whose first segment is the payload)."""
    head, dot, _ = token.partition(".")
    if not dot or not head or len(head) > 2048:
        return False
    try:
        header = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    except (ValueError, TypeError):
        return False
    return isinstance(header, dict) and "alg" in header


_jwks_lock = threading.Lock()
_jwks_cache: dict[str, tuple[float, jwt.PyJWKSet]] = {}


def load_jwks(path: str) -> jwt.PyJWKSet:
    """The key set of a JWKS file, read again when the file changes.

    Raises:
        InvalidCustomerToken: the file cannot be read or holds no usable key.
    """
    try:
        mtime = os.stat(path).st_mtime
    except OSError as error:
        raise InvalidCustomerToken(f"the customer JWKS file cannot be read: {error.strerror}") from None
    with _jwks_lock:
        cached = _jwks_cache.get(path)
        if cached is not None and cached[0] == mtime:
            return cached[1]
    try:
        with open(path, encoding="utf-8") as handle:
            keys = jwt.PyJWKSet.from_json(handle.read())
    except (OSError, ValueError, jwt.PyJWKSetError, jwt.PyJWKError) as error:
        raise InvalidCustomerToken(f"the customer JWKS file holds no usable key: {error}") from None
    with _jwks_lock:
        _jwks_cache[path] = (mtime, keys)
    return keys


def _jwks_key(header: dict[str, Any], path: str) -> Any:
    """The public key a JWT's header points at (`kid`, or the only key of its algorithm)."""
    keys = load_jwks(path)
    kid = header.get("kid")
    if kid is not None:
        try:
            key = keys[str(kid)]
        except KeyError:
            raise InvalidCustomerToken("the customer JWT names a key (kid) this server does not know") from None
        if key.algorithm_name not in (header["alg"], None):
            raise InvalidCustomerToken("the customer JWT's algorithm does not match its key")
        return key.key
    candidates = [key for key in keys.keys if key.algorithm_name == header["alg"]]
    if len(candidates) != 1:
        raise InvalidCustomerToken("the customer JWT has no kid and the JWKS file has no single key for its algorithm")
    return candidates[0].key


def read_customer_jwt(token: str, policy: CustomerJwtPolicy) -> Customer:
    """The customer a standard JWT names: `sub` is the customer id, `exp` is required, `aud`/`iss`
    are checked when the policy sets them, and `premium: true` marks a premium customer. HS256 is
    checked with the shared secret, RS256/ES256 with the JWKS file's public keys; nothing else is
    accepted (so a public key can never be used as an HMAC secret).

    Raises:
        InvalidCustomerToken: why the token cannot be used.
    """
    try:
        header = jwt.get_unverified_header(token)
    except jwt.InvalidTokenError:
        raise InvalidCustomerToken("the customer JWT is malformed") from None
    algorithm = header.get("alg")
    key: Any
    if algorithm == HS256:
        if not policy.hs256_secret:
            raise InvalidCustomerToken("HS256 customer JWTs are not configured on this server")
        key = policy.hs256_secret
    elif algorithm in JWKS_ALGORITHMS:
        if not policy.jwks_file:
            raise InvalidCustomerToken(f"{algorithm} customer JWTs are not configured on this server")
        key = _jwks_key(header, policy.jwks_file)
    else:
        raise InvalidCustomerToken(f"customer JWTs must be signed with HS256, RS256 or ES256, not {algorithm}")
    try:
        claims = jwt.decode(
            token, key, algorithms=[algorithm], audience=policy.audience or None, issuer=policy.issuer or None,
            leeway=policy.leeway_seconds,
            options={"require": ["exp", "sub"], "verify_aud": bool(policy.audience)})
    except jwt.ExpiredSignatureError:
        raise InvalidCustomerToken("the customer token has expired") from None
    except jwt.MissingRequiredClaimError as error:
        raise InvalidCustomerToken(f"the customer JWT has no {error.claim!r} claim") from None
    except jwt.InvalidAudienceError:
        raise InvalidCustomerToken("the customer JWT is for another audience (aud)") from None
    except jwt.InvalidIssuerError:
        raise InvalidCustomerToken("the customer JWT is from another issuer (iss)") from None
    except jwt.ImmatureSignatureError:
        raise InvalidCustomerToken("the customer JWT is not valid yet (nbf or iat in the future)") from None
    except jwt.InvalidTokenError:
        raise InvalidCustomerToken("the customer token is not valid") from None
    customer_id, premium = claims.get("sub"), claims.get("premium", False)
    if not isinstance(customer_id, str) or not 0 < len(customer_id) <= 128 or not isinstance(premium, bool):
        raise InvalidCustomerToken("the customer token does not carry a customer")
    return Customer(customer_id=customer_id, is_premium=premium)


def read_bearer_customer(token: str, *, secret: str, policy: CustomerJwtPolicy) -> Customer:
    """The customer behind a bearer token of either kind: a JWT, or an itsdangerous token signed
    with TRACKING_CUSTOMER_TOKEN_SECRET (kept working for shops that mint those).

    Raises:
        InvalidCustomerToken: why the token cannot be used.
    """
    if is_jwt(token):
        return read_customer_jwt(token, policy)
    return read_customer_token(secret, token)


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
    """The connecting address, or the forwarded one when uvicorn believed a trusted proxy's
    X-Forwarded-For (see `uvicorn_proxy_options`)."""
    return request.client.host if request.client else None


def uvicorn_proxy_options(trusted_proxies: Sequence[str]) -> dict[str, Any]:
    """uvicorn's proxy-header options for the configured trusted proxies: forwarded headers are
    believed only from those addresses, and from nobody when none are listed. The list is always
    passed explicitly, so uvicorn never falls back to FORWARDED_ALLOW_IPS or its 127.0.0.1 default."""
    return {"proxy_headers": bool(trusted_proxies), "forwarded_allow_ips": list(trusted_proxies)}


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
    return customer_of_authorization(request.headers.get("authorization"))


def customer_of_authorization(header: str | None) -> Customer | None:
    """The signed-in customer an Authorization header names, or None for a guest (no header).

    Raises:
        ApiError: 401 when a bearer token is presented but is not a valid customer token.
    """
    from pipeline import runtime

    if header is None:
        return None
    token = bearer_token(header)
    challenge = {"WWW-Authenticate": 'Bearer realm="trackcache-customer"'}
    if token is None:
        raise ApiError(401, "invalid_token", "the Authorization header must be 'Bearer <customer token>'",
                       headers=challenge)
    config = runtime.current().config
    secret = config.customer_token_secret.reveal()
    try:
        if VERIFIED_TOKENS.get(secret, token) is not None:  # seen before: only its age is checked
            return read_customer_token(secret, token)
        return read_bearer_customer(token, secret=secret, policy=jwt_policy_from(config))
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
