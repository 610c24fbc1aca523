"""`trackcache dev` does not believe X-Forwarded-For from localhost: a local caller cannot dodge
the guest rate limit by inventing addresses (issue 14 point 5, issue 18 point 7)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys

import requests

from processes import ROOT, free_port, stop, wait_until


def start_dev(tmp_path, extra_env: dict[str, str]) -> tuple[subprocess.Popen, str]:
    port, sim_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRACKING_", "DATABASE_URL", "REDIS_URL",
                                                                   "EASYPARCEL_", "FORWARDED_ALLOW_IPS"))}
    env.update({"PYTHONPATH": str(ROOT), "TRACKING_GUEST_RATE_LIMIT": "3", **extra_env})
    log = tmp_path / "dev.log"
    with open(log, "wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-c", "import sys, cli; sys.exit(cli.main())", "dev", "--no-demo", "--port", str(port),
             "--sim-port", str(sim_port)],
            cwd=tmp_path, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
    wait_until(lambda: "Press Ctrl-C" in log.read_text(errors="replace") or process.poll() is not None,
               timeout=60, what="trackcache dev to start")
    assert process.poll() is None, log.read_text(errors="replace")
    return process, f"http://127.0.0.1:{port}"


def stop_dev(process: subprocess.Popen) -> None:
    stop(process, signal.SIGINT)


def guest_lookups(base: str, forwarded_for: list[str]) -> list[int]:
    return [requests.get(f"{base}/api/customer/track-order", params={"order_id": "NOPE-1", "email": "a@example.com"},
                         headers={"X-Forwarded-For": address}, timeout=10).status_code for address in forwarded_for]


def test_dev_counts_the_guest_limit_per_real_address_whatever_x_forwarded_for_says(tmp_path):
    # given dev with the default settings (no trusted proxies) and a limit of 3 units an hour
    process, base = start_dev(tmp_path, {})
    try:
        # when one local caller sends failed lookups (3 units each) claiming a new address each time
        codes = guest_lookups(base, [f"198.51.100.{i}" for i in range(1, 4)])
        # then the second one is already refused: every lookup counted against 127.0.0.1
        assert codes == [404, 429, 429], codes
    finally:
        stop_dev(process)


def test_dev_believes_x_forwarded_for_from_a_listed_proxy(tmp_path):
    process, base = start_dev(tmp_path, {"TRACKING_TRUSTED_PROXIES": "127.0.0.1"})
    try:
        codes = guest_lookups(base, [f"198.51.100.{i}" for i in range(1, 4)])
        assert codes == [404, 404, 404], codes
    finally:
        stop_dev(process)
