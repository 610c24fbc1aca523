"""`trackcache dev` shows its addresses only once the web server listens on them."""
from __future__ import annotations

import io
import threading
import time

import embedded


class FakeServer:
    def __init__(self) -> None:
        self.started = False
        self.should_exit = False


def test_the_banner_waits_for_the_server_to_listen(monkeypatch):
    shown: list[object] = []
    monkeypatch.setattr(embedded, "banner", lambda session, out: shown.append(session))
    server = FakeServer()
    waiter = threading.Thread(target=embedded.banner_once_listening, args=(server, "session", io.StringIO()))
    waiter.start()
    time.sleep(0.1)
    assert shown == []  # not listening yet: nothing shown
    server.started = True
    waiter.join(5)
    assert shown == ["session"]


def test_no_banner_when_the_server_stops_before_listening(monkeypatch):
    shown: list[object] = []
    monkeypatch.setattr(embedded, "banner", lambda session, out: shown.append(session))
    server = FakeServer()
    server.should_exit = True
    embedded.banner_once_listening(server, "session", io.StringIO())
    assert shown == []
