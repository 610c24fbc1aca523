"""How `trackcache serve` runs uvicorn: uvloop and httptools, a listening socket with TCP_NODELAY
(accepted connections inherit it, so keep-alive answers are not held back by Nagle's algorithm
for about 40 ms), and with several workers one socket per worker process bound with SO_REUSEPORT,
so the kernel spreads connections across the workers. uvicorn's own `--workers` shares one
socket, set up without TCP_NODELAY, where connections can all land on one worker (uvicorn
issue 3149)."""
from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.connection
import signal
import socket
import sys
from typing import Any

logger = logging.getLogger(__name__)

APP = "web.app:app"


def listening_socket(host: str, port: int, *, reuse_port: bool) -> socket.socket:
    """A bound TCP socket for uvicorn: TCP_NODELAY on, SO_REUSEPORT when several processes share
    the port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


def uvicorn_config(app: Any, options: dict[str, Any]) -> Any:
    import uvicorn

    return uvicorn.Config(app, loop="uvloop", http="httptools", lifespan="on", **options)


def run_worker(host: str, port: int, options: dict[str, Any], reuse_port: bool, app: str = APP) -> None:
    """One web process: its own socket, one uvicorn server on it."""
    import uvicorn

    sock = listening_socket(host, port, reuse_port=reuse_port)
    server = uvicorn.Server(uvicorn_config(app, options))
    server.run(sockets=[sock])


def serve(*, host: str, port: int, workers: int, options: dict[str, Any], app: str = APP) -> int:
    """Serve the app until SIGINT or SIGTERM; with `workers` > 1, that many processes (a worker
    that dies stops the others and `serve` exits 1, for the process supervisor to restart it)."""
    if workers == 1:
        run_worker(host, port, options, reuse_port=False, app=app)
        return 0
    # Bind once here first so a port in use fails at once, with the usual error.
    probe = listening_socket(host, port, reuse_port=True)
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=run_worker, args=(host, port, options, True, app), name=f"web-{n}")
                 for n in range(workers)]
    for process in processes:
        process.start()
    probe.close()

    def stop(signum: int, frame: Any) -> None:
        for process in processes:
            if process.is_alive():
                process.terminate()

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    status = 0
    remaining = list(processes)
    while remaining:
        ended = multiprocessing.connection.wait([process.sentinel for process in remaining])
        for process in [p for p in remaining if p.sentinel in ended]:
            process.join()
            remaining.remove(process)
            if process.exitcode not in (0, -signal.SIGTERM, -signal.SIGINT):
                logger.error("web worker %s ended with exit code %s; stopping the others", process.name,
                             process.exitcode)
                status = 1
                stop(signal.SIGTERM, None)
    sys.stdout.flush()
    return status
