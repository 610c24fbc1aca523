"""The simulator's configuration and an in-process server: `SimulatorServer(config).start()` runs
uvicorn on a background thread on 127.0.0.1 (a free port unless one is given) for tests, benchmarks
and the all-in-one dev mode."""
from __future__ import annotations

import logging
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType
from typing import Self

import uvicorn

from sim.faults import FaultSettings, validate_faults
from sim.journeys import OPENAPI_VERSIONS

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SimulatorConfig:
    """Everything the simulator can be told at start; faults can also change at runtime."""

    host: str = "127.0.0.1"
    port: int = 0  # 0: any free port
    seed: str = "trackcache"
    speed: float = 720.0  # simulated seconds per real second (720: a day in two minutes)
    epoch: datetime | None = None  # simulated time at start; None: the real start time
    client_id: str = "demo-client"
    client_secret: str = field(default="demo-secret", repr=False)
    api_key: str = field(default="demo-api-key", repr=False)
    token_ttl_seconds: int = 36000  # EasyParcel's expires_in
    faults: FaultSettings = field(default_factory=FaultSettings)
    flaky_omit_rate: float = 0.5  # share of responses that leave out an EPFLK number
    webhook_url: str | None = None
    webhook_duplicates: float = 0.0  # probability that a webhook is delivered twice
    webhook_shuffle: bool = False
    webhook_api_version: str = "2026-06"  # code table of webhook status codes
    webhook_interval: float = 0.5  # real seconds between looks for new events
    webhook_timeout: float = 5.0
    webhook_retries: int = 3
    log_level: str = "warning"

    def __post_init__(self) -> None:
        validate_config(self)


def validate_config(config: SimulatorConfig) -> None:
    """Raises ValueError naming the first bad value."""
    if not 0 <= config.port <= 65535:
        raise ValueError(f"port must be 0-65535, got {config.port!r}")
    if config.speed < 0:
        raise ValueError(f"speed must be >= 0, got {config.speed!r}")
    if config.epoch is not None and config.epoch.tzinfo is None:
        raise ValueError("epoch must carry a timezone (e.g. 2026-01-01T00:00:00Z)")
    if not config.client_id or not config.client_secret or not config.api_key:
        raise ValueError("client id, client secret and API key must not be empty")
    if config.token_ttl_seconds <= 0:
        raise ValueError(f"token TTL must be positive, got {config.token_ttl_seconds!r}")
    if not 0.0 <= config.flaky_omit_rate <= 1.0:
        raise ValueError(f"flaky omit rate must be between 0 and 1, got {config.flaky_omit_rate!r}")
    if not 0.0 <= config.webhook_duplicates <= 1.0:
        raise ValueError(f"webhook duplicate rate must be between 0 and 1, got {config.webhook_duplicates!r}")
    if config.webhook_url is not None and not config.webhook_url.startswith(("http://", "https://")):
        raise ValueError(f"webhook URL must start with http:// or https://, got {config.webhook_url!r}")
    if config.webhook_api_version not in OPENAPI_VERSIONS:
        raise ValueError(f"webhook API version must be one of {', '.join(OPENAPI_VERSIONS)}, "
                         f"got {config.webhook_api_version!r}")
    if config.webhook_interval <= 0 or config.webhook_timeout <= 0 or config.webhook_retries < 0:
        raise ValueError("webhook interval and timeout must be positive and retries >= 0")
    if config.log_level.lower() not in ("critical", "error", "warning", "info", "debug", "trace"):
        raise ValueError(f"log level must be critical, error, warning, info or debug, got {config.log_level!r}")
    validate_faults(config.faults)


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening-ready TCP socket bound to host:port (port 0: a free one).

    Raises:
        OSError: the address cannot be bound (in use, not local, ...).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def uvicorn_server(config: SimulatorConfig) -> uvicorn.Server:
    """A uvicorn server for the simulator app (lifespan on, bounded graceful shutdown)."""
    from sim.app import create_app

    return uvicorn.Server(uvicorn.Config(
        create_app(config), log_level=config.log_level.lower(), lifespan="on", access_log=False,
        timeout_graceful_shutdown=2,
    ))


class SimulatorServer:
    """The simulator on a background thread: `start()`, then `url`, then `stop()` (or `with`)."""

    def __init__(self, config: SimulatorConfig | None = None) -> None:
        self.config = config or SimulatorConfig()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self.port: int | None = None

    @property
    def url(self) -> str:
        """Base URL, e.g. http://127.0.0.1:54321 (no trailing slash)."""
        if self.port is None:
            raise RuntimeError("the simulator is not started")
        host = self.config.host if ":" not in self.config.host else f"[{self.config.host}]"
        return f"http://{host}:{self.port}"

    def start(self, timeout: float = 10.0) -> Self:
        """Start serving and wait until uvicorn accepts connections.

        Raises:
            OSError: the port cannot be bound.
            RuntimeError: the server did not come up within `timeout` seconds.
        """
        if self._thread is not None:
            return self
        self._socket = bind_socket(self.config.host, self.config.port)
        self.port = self._socket.getsockname()[1]
        self._server = uvicorn_server(self.config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._socket]},
                                        name=f"sim-server-{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the courier simulator did not start")
            time.sleep(0.01)
        logger.info("courier simulator listening on %s", self.url)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving (in-flight hangs are cut after a short grace period)."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive() and self._server is not None:
                self._server.force_exit = True
                self._thread.join(timeout)
        if self._socket is not None:
            self._socket.close()
        self._server = self._thread = self._socket = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()
