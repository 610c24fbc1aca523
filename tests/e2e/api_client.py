"""HTTP helpers for the end-to-end tests: one client that speaks to a running trackcache as a
shop, a guest, a signed-in customer, an admin, a viewer, an internal caller and a courier would."""
from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass, field
from typing import Any

import requests
from itsdangerous import URLSafeTimedSerializer


@dataclass
class Credentials:
    admin_token: str
    viewer_token: str
    internal_key: str
    webhook_secret: str
    customer_secret: str = field(repr=False)
    customer_jwt_secret: str = field(default="", repr=False)
    customer_rsa_private_pem: str = field(default="", repr=False)
    customer_jwks_kid: str = ""


class ApiClient:
    """A running service at `base_url`. Guests are told apart by the address a trusted proxy
    reports (X-Forwarded-For; the server trusts 127.0.0.1 as its proxy), so each test can be its own
    client for the rate limits."""

    def __init__(self, base_url: str, credentials: Credentials, *, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.credentials = credentials
        self.timeout = timeout
        self.session = requests.Session()

    def close(self) -> None:
        self.session.close()

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self.timeout)
        return self.session.request(method, self.base_url + path, **kwargs)

    # --- customers -----------------------------------------------------------------------------

    def track_as_guest(self, order_id: str, email: str, *, client_ip: str, etag: str | None = None,
                       **params: str) -> requests.Response:
        headers = {"X-Forwarded-For": client_ip}
        if etag:
            headers["If-None-Match"] = etag
        return self.request("GET", "/api/customer/track-order", headers=headers,
                            params={"order_id": order_id, "email": email, **params})

    def customer_token(self, customer_id: str, *, premium: bool = False) -> str:
        """A token as the shop mints it (the README's snippet)."""
        serializer = URLSafeTimedSerializer(self.credentials.customer_secret, salt="trackcache-customer")
        return serializer.dumps({"customer_id": customer_id, "premium": premium})

    def track_as_customer(self, order_id: str, customer_id: str, *, premium: bool = False,
                          **params: str) -> requests.Response:
        token = self.customer_token(customer_id, premium=premium)
        return self.request("GET", "/api/customer/track-order", headers={"Authorization": f"Bearer {token}"},
                            params={"order_id": order_id, **params})

    def customer_jwt(self, customer_id: str, *, algorithm: str = "HS256", expires_in: int = 300,
                     audience: str = "trackcache-e2e") -> str:
        """A standard JWT as the shop (HS256, shared secret) or its identity provider (RS256, the
        key whose public half is in the JWKS file) mints it: the README's snippet."""
        import jwt

        claims = {"sub": customer_id, "aud": audience, "iat": int(time.time()), "exp": int(time.time()) + expires_in}
        if algorithm == "HS256":
            return jwt.encode(claims, self.credentials.customer_jwt_secret, algorithm="HS256")
        return jwt.encode(claims, self.credentials.customer_rsa_private_pem, algorithm=algorithm,
                          headers={"kid": self.credentials.customer_jwks_kid})

    def customer_orders(self, token: str, **params: str) -> requests.Response:
        return self.request("GET", "/api/customer/orders", headers={"Authorization": f"Bearer {token}"},
                            params=params)

    # --- staff ---------------------------------------------------------------------------------

    def as_admin(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.credentials.admin_token}", **kwargs.pop("headers", {})}
        return self.request(method, path, headers=headers, **kwargs)

    def as_viewer(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.credentials.viewer_token}", **kwargs.pop("headers", {})}
        return self.request(method, path, headers=headers, **kwargs)

    def register(self, order_id: str, email: str, tracking_number: str, *, customer_id: str | None = None,
                 courier: str = "easyparcel") -> requests.Response:
        body = {"order_id": order_id, "customer_email": email, "tracking_number": tracking_number, "courier": courier}
        if customer_id:
            body["customer_id"] = customer_id
        return self.as_admin("POST", "/api/admin/shipments", json=body)

    def bulk_register(self, items: list[Any], *, idempotency_key: str | None = None) -> requests.Response:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return self.as_admin("POST", "/api/admin/shipments/bulk", json={"shipments": items}, headers=headers,
                             timeout=60)

    def changes(self, after: str | None = None, **params: str) -> dict[str, Any]:
        response = self.as_admin("GET", "/api/admin/changes", params={**({"after": after} if after else {}), **params})
        response.raise_for_status()
        return response.json()

    def order_record(self, order_id: str) -> dict[str, Any]:
        response = self.as_admin("GET", f"/api/admin/shipments/{order_id}")
        response.raise_for_status()
        return response.json()

    def statuses(self, order_id: str) -> list[str]:
        return [item["current_status"] for item in self.order_record(order_id)["shipments"]]

    def job_status(self, **params: str) -> dict[str, Any]:
        response = self.as_admin("GET", "/api/admin/tracking/job-status", params=params)
        response.raise_for_status()
        return response.json()

    def internal(self, method: str, path: str, *, key: str | None = None) -> requests.Response:
        headers = {} if key == "" else {"X-Internal-Key": key if key is not None else self.credentials.internal_key}
        return self.request(method, path, headers=headers)

    # --- couriers ------------------------------------------------------------------------------

    def easyparcel_webhook(self, body: bytes, *, secret: str | None = None) -> requests.Response:
        path_secret = self.credentials.webhook_secret if secret is None else secret
        return self.request("POST", f"/api/webhooks/easyparcel/{path_secret}", data=body,
                            headers={"Content-Type": "application/json"})

    def signed_webhook(self, courier: str, body: bytes) -> requests.Response:
        stamp = str(int(time.time()))
        mac = hmac.new(self.credentials.webhook_secret.encode(), stamp.encode() + b"." + body, hashlib.sha256)
        return self.request("POST", f"/api/webhooks/{courier}", data=body, headers={
            "Content-Type": "application/json", "X-Trackcache-Timestamp": stamp,
            "X-Trackcache-Signature": "sha256=" + mac.hexdigest()})

