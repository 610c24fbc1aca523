"""Services of a test's own, for tests that stop, kill or restart them: a Redis and a PostgreSQL
cluster on spare ports (never the shared ones on 6379 and 5432), and a RabbitMQ virtual host of
its own on the shared RabbitMQ (a test never stops that broker, so a vhost isolates it enough).

    with PrivateRedis() as redis, PrivatePostgres() as pg:
        redis.stop(); ...; redis.start()      # restarts empty, as a Redis without persistence does
        pg.restart()                          # fast shutdown, then start on the same port

Each one gives up with a clear error when its binaries are missing; `services.require_service`
decides between skip (local) and fail (CI=true) for the shared RabbitMQ."""
from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
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


def postgres_bin_dir() -> Path:
    """The newest PostgreSQL server binaries on this machine (/usr/lib/postgresql/*/bin)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if not found:
        on_path = shutil.which("initdb")
        if on_path is None:
            raise RuntimeError("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
        return Path(on_path).parent
    return Path(found[-1]).parent


class PrivatePostgres:
    """A throwaway PostgreSQL cluster (initdb + pg_ctl) on a spare port with trust auth, run as
    the `postgres` user when the tests run as root (PostgreSQL refuses to run as root)."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.bin = postgres_bin_dir()
        self.root = Path(tempfile.mkdtemp(prefix="trackcache-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self._as_user: list[str] = []
        if os.geteuid() == 0:
            import pwd

            user = pwd.getpwnam("postgres")
            os.chown(self.root, user.pw_uid, user.pw_gid)
            self._as_user = ["runuser", "-u", "postgres", "--"]
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres",
                  "--no-sync", "-E", "UTF8")

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, *argv: str) -> None:
        result = subprocess.run([*self._as_user, *argv], check=False, capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(argv[:2])} failed: {result.stderr.strip() or result.stdout.strip()}")

    def is_up(self) -> bool:
        import psycopg2

        try:
            psycopg2.connect(self.admin_url, connect_timeout=1).close()
            return True
        except psycopg2.Error:
            return False

    def start(self) -> Self:
        options = (f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-o", options, "-w",
                  "-t", "60", "start")
        _wait_for(self.is_up, timeout=30, what=f"the private PostgreSQL on port {self.port}")
        return self

    def stop(self, mode: str = "fast") -> None:
        """Stop the cluster: `fast` (disconnect clients, clean shutdown) or `immediate` (a crash:
        recovery runs on the next start)."""
        if (self.data / "postmaster.pid").exists():
            self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def restart(self, mode: str = "fast") -> None:
        self.stop(mode)
        self.start()

    def create_database(self, name: str) -> str:
        import psycopg2

        conn = psycopg2.connect(self.admin_url)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE {name}")
        conn.close()
        return self.url(name)

    def destroy(self) -> None:
        try:
            self.stop("immediate")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.destroy()


RABBITMQ_URL = os.environ.get("TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672")


class RabbitVhost:
    """A virtual host of the test's own on the shared RabbitMQ (created with rabbitmqctl, deleted
    after), so two test sessions never consume each other's messages."""

    def __init__(self) -> None:
        self.name = f"trackcache-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.user = "guest"

    @property
    def url(self) -> str:
        return f"{RABBITMQ_URL}/{self.name}"

    @staticmethod
    def _ctl(*argv: str) -> None:
        result = subprocess.run(["rabbitmqctl", "-q", *argv], check=False, capture_output=True, text=True, timeout=60)
        if result.returncode != 0:
            raise RuntimeError(f"rabbitmqctl {argv[0]} failed: {result.stderr.strip() or result.stdout.strip()}")

    def create(self) -> Self:
        if shutil.which("rabbitmqctl") is None:
            raise RuntimeError("rabbitmqctl is not installed (apt-get install rabbitmq-server)")
        self._ctl("add_vhost", self.name)
        self._ctl("set_permissions", "-p", self.name, self.user, ".*", ".*", ".*")
        return self

    def delete(self) -> None:
        self._ctl("delete_vhost", self.name)

    def __enter__(self) -> Self:
        return self.create()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.delete()
