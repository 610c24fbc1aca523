"""A running service for the end-to-end tests: a PostgreSQL database and a Redis namespace of the
session's own, the courier simulator (clock stopped, webhooks pointed at the app), an SMTP server
catching the customers' emails (for orders registered with notify_email),
and `trackcache serve` and `trackcache worker` as subprocesses, reached over HTTP through
`api_client`. Started once per session and stopped at its end."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

import pytest
import requests

from api_client import ApiClient, Credentials
from processes import ROOT, free_port, start_cli, stop, wait_until
from sim.mail_sink import MailSink

E2E_DATABASE = f"trackcache_e2e_{os.getpid()}"
SIM_SEED = "trackcache-e2e"
CREDENTIALS = Credentials(
    admin_token="e2e-admin-token-0123456789",
    viewer_token="e2e-viewer-token-0123456789",
    internal_key="e2e-internal-key-0123456789",
    webhook_secret="e2e-webhook-secret-0123456789",
    customer_secret="e2e-customer-secret-0123456789",
    customer_jwt_secret="e2e-customer-jwt-secret-0123456789-abcdef",
)
JWKS_KID = "e2e-rs256"


def write_customer_jwks(directory: Path) -> tuple[Path, str]:
    """A JWKS file with a fresh RSA public key (as a shop's identity provider publishes), and the
    private key in PEM that signs the RS256 customer tokens of the tests."""
    import jwt
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_jwk = jwt.algorithms.RSAAlgorithm.to_jwk(private_key.public_key(), as_dict=True)
    path = directory / "jwks.json"
    path.write_text(json.dumps({"keys": [public_jwk | {"kid": JWKS_KID, "alg": "RS256", "use": "sig"}]}))
    pem = private_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()).decode("ascii")
    return path, pem


@dataclass
class Service:
    api: ApiClient
    sim_url: str
    sim_epoch: datetime
    sim_seed: str
    log: Path
    env: dict[str, str] = field(default_factory=dict, repr=False)
    database_url: str = ""
    sink: MailSink | None = None








def fresh_database() -> str:
    """Drop and create the e2e database, migrate it, and return its URL."""
    from services import recreate_database

    return recreate_database(E2E_DATABASE, migrate=True)


def fresh_redis() -> tuple[str, str]:
    """The test Redis and a namespace of this session's own, emptied (never the whole database:
    other sessions may be using it)."""
    import settings
    from services import redis_test_url, require_service
    from stacks import clear_namespace

    url = redis_test_url()
    require_service("Redis", url)
    namespace = f"{settings.get().redis_namespace}-e2e"
    clear_namespace(url, namespace)
    return url, namespace


def is_ready(base_url: str) -> bool:
    try:
        return requests.get(f"{base_url}/readyz", timeout=2).status_code == 200
    except requests.RequestException:
        return False


@pytest.fixture(scope="session")
def service(tmp_path_factory) -> Iterator[Service]:
    from cryptography.fernet import Fernet

    from sim.server import SimulatorConfig, SimulatorServer

    database_url = fresh_database()
    redis_url, namespace = fresh_redis()
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    epoch = datetime.now(timezone.utc).replace(microsecond=0)
    jwks_path, CREDENTIALS.customer_rsa_private_pem = write_customer_jwks(tmp_path_factory.mktemp("jwks"))
    CREDENTIALS.customer_jwks_kid = JWKS_KID
    sim = SimulatorServer(SimulatorConfig(
        speed=0, epoch=epoch, seed=SIM_SEED, webhook_interval=0.2,
        webhook_url=f"{base_url}/api/webhooks/easyparcel/{CREDENTIALS.webhook_secret}")).start()
    sink = MailSink().start()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DATABASE_URL": database_url, "REDIS_URL": redis_url, "TRACKING_REDIS_NAMESPACE": namespace,
           "EASYPARCEL_API": "open", "EASYPARCEL_BASE_URL": sim.url, "EASYPARCEL_CLIENT_ID": "demo-client",
           "EASYPARCEL_CLIENT_SECRET": "demo-secret", "TRACKING_LOG_LEVEL": "warning",
           "TRACKING_ADMIN_TOKENS": CREDENTIALS.admin_token, "TRACKING_VIEWER_TOKENS": CREDENTIALS.viewer_token,
           "TRACKING_INTERNAL_API_KEY": CREDENTIALS.internal_key,
           "TRACKING_WEBHOOK_SECRET": CREDENTIALS.webhook_secret,
           "TRACKING_CUSTOMER_TOKEN_SECRET": CREDENTIALS.customer_secret,
           "TRACKING_CUSTOMER_JWT_SECRET": CREDENTIALS.customer_jwt_secret,
           "TRACKING_CUSTOMER_JWKS_FILE": str(jwks_path), "TRACKING_CUSTOMER_JWT_AUDIENCE": "trackcache-e2e",
           "TRACKING_EMAIL_HASH_KEY": "e2e-email-hash-key-0123456789", "TRACKING_INTERNAL_NETWORKS": "",
           "TRACKING_GUEST_RATE_LIMIT": "10", "TRACKING_CUSTOMER_RATE_LIMIT": "120",
           # The tests stand in for the reverse proxy: they report each guest's address from 127.0.0.1.
           "TRACKING_TRUSTED_PROXIES": "127.0.0.1",
           # Customer emails (only orders registered with notify_email get any) go to the test's sink.
           "TRACKING_CONTACT_KEYS": Fernet.generate_key().decode(), "TRACKING_SMTP_URL": sink.url,
           "TRACKING_EMAIL_FROM": "Shop <track@shop.example>", "TRACKING_PUBLIC_URL": base_url}
    log = tmp_path_factory.mktemp("e2e") / "service.log"
    processes = [start_cli(env, log, "serve", "--port", str(port), "--proxy-headers"),
                 start_cli(env, log, "worker", "--processes", "1", "--threads", "4")]
    api = ApiClient(base_url, CREDENTIALS)
    try:
        wait_until(lambda: is_ready(base_url) or any(p.poll() is not None for p in processes), timeout=60,
                   what=f"the server (log: {log})")
        assert all(p.poll() is None for p in processes), f"a process exited early; log: {log}"
        yield Service(api=api, sim_url=sim.url, sim_epoch=epoch, sim_seed=SIM_SEED, log=log, env=env,
                      database_url=database_url, sink=sink)
    finally:
        api.close()
        for process in processes:
            stop(process)
        sim.stop()
        sink.stop()
        from services import drop_database

        drop_database(E2E_DATABASE)
