"""`trackcache serve`'s sockets (web/server.py): TCP_NODELAY on the listening socket, which
accepted connections inherit, and SO_REUSEPORT so each worker process binds the port itself."""
from __future__ import annotations

import socket

from processes import free_port
from web.server import listening_socket


def test_worker_sockets_share_the_port_and_accepted_connections_do_not_wait_for_acks():
    port = free_port()
    first = listening_socket("127.0.0.1", port, reuse_port=True)
    second = listening_socket("127.0.0.1", port, reuse_port=True)  # a second worker binds the same port
    try:
        first.listen()
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            accepted, _ = first.accept()
            with accepted:
                assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    finally:
        first.close()
        second.close()


def test_a_single_worker_socket_keeps_the_port_to_itself():
    port = free_port()
    sock = listening_socket("127.0.0.1", port, reuse_port=False)
    try:
        assert not sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT)
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    finally:
        sock.close()
