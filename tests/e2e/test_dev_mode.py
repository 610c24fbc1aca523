"""`trackcache dev`, the README's run command: on a fresh directory it migrates an SQLite file,
starts the simulator, the worker threads and the scheduler, creates demo orders, and within a
minute a demo order visibly moves through statuses (polls and the simulator's webhooks)."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import requests

from processes import ROOT, free_port





def test_dev_mode_serves_demo_orders_that_move_through_statuses_within_a_minute(tmp_path):
    port, sim_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRACKING_", "DATABASE_URL", "REDIS_URL",
                                                                   "EASYPARCEL_"))}
    env["PYTHONPATH"] = str(ROOT)
    log = tmp_path / "dev.log"
    with open(log, "wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-c", "import sys, cli; sys.exit(cli.main())", "dev", "--port", str(port),
             "--sim-port", str(sim_port), "--smtp-port", str(free_port())],
            cwd=tmp_path, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        # given the banner with a guest order to try
        banner = ""
        deadline = time.monotonic() + 60
        while "Press Ctrl-C" not in banner and time.monotonic() < deadline:
            time.sleep(0.5)
            banner = log.read_text(errors="replace")
        assert "Press Ctrl-C" in banner, banner
        assert (tmp_path / "trackcache.db").exists(), "the SQLite database is created in the working directory"
        admin_token = re.search(r"admin token\s+(\S+)", banner).group(1)
        guest = re.search(r"try as a guest\s+order (\S+), email (\S+)", banner)
        assert guest, banner
        first = requests.get(f"{base}/api/customer/track-order", timeout=10,
                             params={"order_id": guest.group(1), "email": guest.group(2)})
        assert first.status_code == 200, first.text
        # when we watch every demo order for up to a minute
        orders = requests.get(f"{base}/api/admin/tracking/attention", timeout=10,
                              headers={"Authorization": f"Bearer {admin_token}"})
        assert orders.status_code == 200
        demo = [f"DEMO-{1001 + i}" for i in range(36)]
        seen: dict[str, list[str]] = {}
        deadline = time.monotonic() + 60
        moved: list[str] = []
        while time.monotonic() < deadline and not moved:
            for order_id in demo:
                response = requests.get(f"{base}/api/admin/shipments/{order_id}", timeout=10,
                                        headers={"Authorization": f"Bearer {admin_token}"})
                assert response.status_code == 200, response.text
                for item in response.json()["shipments"]:  # the unfiltered rows
                    history = seen.setdefault(item["courier_tracking_number"], [])
                    if not history or history[-1] != item["current_status"]:
                        history.append(item["current_status"])
            moved = [number for number, history in seen.items() if len(history) >= 3]
            time.sleep(1)
        # then at least one shipment went through three statuses while we watched
        assert moved, f"no demo shipment moved through statuses within a minute: {seen}"
        statuses = {status for history in seen.values() for status in history}
        assert {"delivered", "in_transit", "exception", "cancelled"} <= statuses, statuses
    finally:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
    # and Ctrl-C shuts it down cleanly
    assert process.returncode == 0, log.read_text(errors="replace")[-2000:]
    assert "trackcache stopped." in log.read_text(errors="replace")
