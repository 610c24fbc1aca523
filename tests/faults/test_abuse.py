"""Enumeration and object-level authorization over a running `trackcache serve` (with its access
log on): guests guessing order ids or emails get identical 404s in the same timing class and hit
the rate limit; a customer token cannot read another customer's order; viewer tokens cannot
change anything; internal routes need the key; X-Forwarded-For is trusted only from the
configured proxies; and no secret ever appears in a log line or an error body."""
from __future__ import annotations

import statistics
import time
from pathlib import Path

import pytest
import requests
from deployment import (
    ADMIN_TOKEN,
    CUSTOMER_SECRET,
    INTERNAL_KEY,
    SECRETS,
    VIEWER_TOKEN,
    WEBHOOK_SECRET,
    Deployment,
)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    # One deployment for the module; the broker plays no part here.
    deployment = Deployment(tmp_path_factory.mktemp("abuse"), "redis", extra_env={"TRACKING_GUEST_RATE_LIMIT": "30",
                                                               "TRACKING_FAILED_LOOKUP_COST": "1",
                                                               "TRACKING_TRUSTED_PROXIES": "192.0.2.1"},
                            serve_args=("--access-log", "--proxy-headers"))
    try:
        deployment.start(workers=1, scheduler=False)
        from pipeline import service
        from pipeline.registration import ShipmentRegistration

        service.register_many([
            (ShipmentRegistration("ORD-ALICE-1", "alice@example.com", "EPDELAB00001", "easyparcel", "cust-alice"), None),
            (ShipmentRegistration("ORD-BOB-1", "bob@example.com", "EPDELAB00002", "easyparcel", "cust-bob"), None),
        ])
        yield deployment
    finally:
        deployment.close()


def track(deployment: Deployment, session: requests.Session, **kwargs) -> requests.Response:
    headers = kwargs.pop("headers", {})
    return session.get(f"{deployment.base_url}/api/customer/track-order", params=kwargs, headers=headers, timeout=10)


def test_guessing_orders_gives_identical_404s_and_hits_the_rate_limit(served):
    session = requests.Session()
    unknown, wrong_email = [], []
    bodies = set()
    for attempt in range(12):
        for target, kwargs in ((unknown, {"order_id": f"ORD-GUESS-{attempt}", "email": "alice@example.com"}),
                               (wrong_email, {"order_id": "ORD-ALICE-1", "email": f"guess{attempt}@example.com"})):
            started = time.perf_counter()
            response = track(served, session, **kwargs)
            target.append(time.perf_counter() - started)
            assert response.status_code == 404, response.text
            bodies.add(response.content)
    assert len(bodies) == 1, f"404 bodies differ: {bodies}"
    # The same timing class: neither kind of miss is tellable by its median time.
    slow, fast = sorted([statistics.median(unknown), statistics.median(wrong_email)], reverse=True)
    assert slow < fast * 3 + 0.02, f"median 404 times differ: unknown {unknown}, wrong email {wrong_email}"
    # Guessing on hits the limit (30 lookups an hour per client).
    codes = [track(served, session, order_id=f"ORD-MORE-{i}", email="x@example.com").status_code for i in range(10)]
    assert 429 in codes, codes


def test_forwarded_addresses_are_trusted_only_from_the_configured_proxies(served):
    # The server trusts X-Forwarded-For only from 192.0.2.1; this client is 127.0.0.1, so a
    # rotating X-Forwarded-For must not buy a fresh rate limit.
    session = requests.Session()
    codes = [track(served, session, order_id=f"ORD-SPOOF-{i}", email="x@example.com",
                   headers={"X-Forwarded-For": f"198.51.100.{i}"}).status_code for i in range(40)]
    assert 429 in codes, f"a spoofed X-Forwarded-For escaped the guest rate limit: {codes}"


def test_a_customer_token_reads_only_its_own_orders(served):
    from web.auth import mint_customer_token

    alice = mint_customer_token(CUSTOMER_SECRET, "cust-alice")
    session = requests.Session()
    own = track(served, session, order_id="ORD-ALICE-1", headers={"Authorization": f"Bearer {alice}"})
    other = track(served, session, order_id="ORD-BOB-1", headers={"Authorization": f"Bearer {alice}"})
    missing = track(served, session, order_id="ORD-NOBODY", headers={"Authorization": f"Bearer {alice}"})
    assert own.status_code == 200, own.text
    assert other.status_code == 404 and other.content == missing.content
    forged = mint_customer_token("not-the-shops-secret-0123456789", "cust-bob")
    assert track(served, session, order_id="ORD-BOB-1",
                 headers={"Authorization": f"Bearer {forged}"}).status_code == 401


def test_viewer_tokens_change_nothing_and_internal_routes_need_the_key(served):
    from web import openapi

    session = requests.Session()
    document = openapi.document()
    writes = [(method.upper(), path) for path, item in document["paths"].items()
              for method in item if method in ("post", "put", "patch", "delete") and path.startswith("/api/admin/")]
    assert writes
    for method, path in writes:
        url = served.base_url + path.replace("{order_id}", "ORD-ALICE-1")
        response = session.request(method, url, json={"all_active": True},
                                    headers={"Authorization": f"Bearer {VIEWER_TOKEN}"}, timeout=10)
        assert response.status_code == 403, f"{method} {path} as a viewer: {response.status_code}"
        anonymous = session.request(method, url, json={"all_active": True}, timeout=10)
        assert anonymous.status_code == 401, f"{method} {path} without a token: {anonymous.status_code}"
    internal = [(method.upper(), path) for path, item in document["paths"].items()
                for method in item if path.startswith("/api/internal/")]
    assert internal
    for method, path in internal:
        for headers in ({}, {"X-Internal-Key": "wrong-key-0123456789"}, {"Authorization": f"Bearer {ADMIN_TOKEN}"}):
            response = session.request(method, served.base_url + path, headers=headers, timeout=10)
            assert response.status_code in (401, 403), f"{method} {path} with {headers}: {response.status_code}"
        assert session.request(method, served.base_url + path, headers={"X-Internal-Key": INTERNAL_KEY},
                               timeout=30).status_code < 400


def test_secrets_appear_in_no_log_line_and_no_error_body(served):
    from web.auth import mint_customer_token

    session = requests.Session()
    customer = mint_customer_token(CUSTOMER_SECRET, "cust-alice")
    bodies = [
        session.post(served.webhook_url, data=b"{not json", timeout=10),  # secret in the path, refused body
        session.post(f"{served.base_url}/api/webhooks/easyparcel/{WEBHOOK_SECRET}x", data=b"{}", timeout=10),
        session.get(f"{served.base_url}/api/admin/tracking/job-status",
                    headers={"Authorization": f"Bearer {ADMIN_TOKEN}x"}, timeout=10),
        session.get(f"{served.base_url}/api/admin/tracking/job-status",
                    headers={"Authorization": f"Bearer {VIEWER_TOKEN}"}, timeout=10),
        session.get(f"{served.base_url}/api/internal/tracking/queue-stats",
                    headers={"X-Internal-Key": INTERNAL_KEY + "x"}, timeout=10),
        session.get(f"{served.base_url}/api/customer/track-order", params={"order_id": "ORD-BOB-1"},
                    headers={"Authorization": f"Bearer {customer}"}, timeout=10),
        session.get(f"{served.base_url}/api/customer/track-order", params={"order_id": "ORD-BOB-1"},
                    headers={"Authorization": f"Bearer {customer}x"}, timeout=10),
    ]
    for response in bodies:
        assert not any(secret in response.text for secret in (*SECRETS, customer)), response.text
    time.sleep(1)  # let the server flush its log
    leaks = secrets_in_logs([served.log], extra=(customer,))
    assert not leaks, f"secrets in logs: {leaks}"


def secrets_in_logs(paths: list[Path], *, extra: tuple[str, ...] = ()) -> list[str]:
    """Lines of these logs that hold a secret (the secret replaced by its name, for the report)."""
    found = []
    for path in paths:
        if not path.exists():
            continue
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            for secret in (*SECRETS, *extra):
                if secret in line:
                    found.append(f"{path.name}:{number}: {line.replace(secret, '<SECRET>')[:200]}")
    return found
