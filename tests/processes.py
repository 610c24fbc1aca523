"""Running `trackcache` commands as real processes in tests: free ports, starting a command in
its own process group with its output in a log file, stopping it, and waiting for a condition."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_cli(env: dict[str, str], log: Path, *args: str, cwd: Path = ROOT) -> subprocess.Popen:
    """A `trackcache` command in its own process group, its output appended to `log`."""
    with open(log, "ab") as output:
        return subprocess.Popen([sys.executable, "-c", "import sys, cli; sys.exit(cli.main())", *args], cwd=cwd,
                                env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True)


def stop(process: subprocess.Popen, sig: int = signal.SIGTERM, *, timeout: float = 30) -> None:
    """Send `sig` to the command's process group; SIGKILL it if it has not ended in `timeout`."""
    if process.poll() is None:
        os.killpg(process.pid, sig)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def wait_until(condition: Callable[[], Any], *, timeout: float = 60.0, what: str, interval: float = 0.25) -> Any:
    """Poll until `condition()` is truthy; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
