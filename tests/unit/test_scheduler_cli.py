"""`trackcache scheduler` with Redis unreachable prints one line and waits for it, instead of a
traceback (issue 18 point 9); SIGTERM still ends it cleanly."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from test_cli import SAFE_SECRETS, run_cli

ROOT = Path(__file__).resolve().parents[2]


def test_the_scheduler_waits_for_an_unreachable_redis_with_one_line_and_stops_on_sigterm(tmp_path):
    env = {**os.environ, **SAFE_SECRETS, "PYTHONPATH": str(ROOT), "DATABASE_URL": f"sqlite:///{tmp_path / 's.db'}",
           "REDIS_URL": "redis://127.0.0.1:1/0"}
    assert run_cli("migrate", env=env, cwd=tmp_path).returncode == 0
    process = subprocess.Popen([sys.executable, "-c", "import sys, cli; sys.exit(cli.main())", "scheduler"],
                               cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    time.sleep(6)
    still_running = process.poll() is None
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=20)
    assert still_running, output
    assert process.returncode == 0, output
    assert "Traceback" not in output
    unreachable = [line for line in output.splitlines() if "unreachable" in line]
    assert len(unreachable) == 1 and "Redis" in unreachable[0], output
