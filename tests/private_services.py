"""Services of a test's own, for tests that stop, kill or restart them: a Redis on a spare port
(never the shared one on 6379) that keeps nothing on disk, so a restart brings it back empty.

    with PrivateRedis() as redis:
        redis.stop(); ...; redis.start()      # comes back empty, as a Redis without persistence does

It gives up with a clear error when redis-server is missing."""
from __future__ import annotations

import shutil
import subprocess
import time
from types import TracebackType
from typing import Self

from processes import free_port


def _wait_for(condition, *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise RuntimeError(f"timed out after {timeout}s waiting for {what}")


class PrivateRedis:
    """A `redis-server` on a spare port that keeps nothing on disk; `stop()` and `start()` give a
    Redis that comes back empty, like the production Redis without persistence."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.process: subprocess.Popen | None = None
        self.binary = shutil.which("redis-server")
        if self.binary is None:
            raise RuntimeError("redis-server is not installed (apt-get install redis-server)")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def is_up(self) -> bool:
        import redis

        try:
            with redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=1) as client:
                return bool(client.ping())
        except redis.RedisError:
            return False

    def start(self) -> Self:
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--daemonize", "no", "--loglevel", "warning"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        _wait_for(self.is_up, timeout=20, what=f"the private Redis on port {self.port}")
        return self

    def stop(self) -> None:
        """Kill it (SIGKILL: whatever it held is gone, as after a crash)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()
