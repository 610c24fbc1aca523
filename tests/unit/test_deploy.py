"""docker-compose.yml renders (validated by `docker-compose config`; no Docker engine needed) and
refuses to render without the production secrets."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from services import is_ci

ROOT = Path(__file__).resolve().parents[2]
SECRETS = {
    "TRACKING_ADMIN_TOKENS": "compose-admin-token-0123456789",
    "TRACKING_INTERNAL_API_KEY": "compose-internal-key-0123456789",
    "TRACKING_WEBHOOK_SECRET": "compose-webhook-secret-0123456789",
    "TRACKING_CUSTOMER_TOKEN_SECRET": "compose-customer-secret-0123456789",
    "TRACKING_EMAIL_HASH_KEY": "compose-email-key-0123456789",
}


def compose_command() -> list[str]:
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    if is_ci():
        pytest.fail("docker-compose is not installed (.ci/run installs it)", pytrace=False)
    pytest.skip("docker-compose is not installed")


def compose_config(env: dict[str, str]) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("TRACKING_", "EASYPARCEL_"))}
    return subprocess.run([*compose_command(), "-f", str(ROOT / "docker-compose.yml"), "config"], cwd=ROOT,
                          env={**clean, **env}, capture_output=True, text=True, timeout=60)


def test_compose_file_renders_with_the_secrets_set():
    result = compose_config(SECRETS)
    assert result.returncode == 0, result.stderr
    for service in ("postgres", "redis", "migrate", "web", "worker", "scheduler", "simulator"):
        assert f"  {service}:" in result.stdout
    assert result.stdout.count("healthcheck:") >= 6


def test_compose_file_refuses_to_render_without_a_secret():
    partial = {k: v for k, v in SECRETS.items() if k != "TRACKING_WEBHOOK_SECRET"}
    result = compose_config(partial)
    assert result.returncode != 0
    assert "set TRACKING_WEBHOOK_SECRET" in result.stderr
