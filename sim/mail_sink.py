"""A local SMTP server that keeps the emails it receives in memory (aiosmtpd in a thread): the
development sink `trackcache dev` runs so the customer emails can be seen on a laptop, and the
SMTP server of the tests. It can refuse chosen recipients with a 550, like a bounce."""
from __future__ import annotations

import email
import email.policy
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Self

from aiosmtpd.controller import Controller


@dataclass(frozen=True)
class CaughtEmail:
    """One received message, split into what a reader (or a test) looks at."""

    received_at: datetime
    mail_from: str
    recipients: tuple[str, ...]
    subject: str
    to: str
    text: str
    html: str
    list_unsubscribe: str
    list_unsubscribe_post: str
    message_id: str
    headers: dict[str, str] = field(default_factory=dict)


def parse(raw: bytes, mail_from: str, recipients: tuple[str, ...]) -> CaughtEmail:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    text_part = message.get_body(preferencelist=("plain",))  # type: ignore[attr-defined]
    html_part = message.get_body(preferencelist=("html",))  # type: ignore[attr-defined]
    return CaughtEmail(
        received_at=datetime.now(UTC), mail_from=mail_from, recipients=recipients,
        subject=str(message.get("Subject", "")), to=str(message.get("To", "")),
        text=text_part.get_content() if text_part is not None else "",
        html=html_part.get_content() if html_part is not None else "",
        list_unsubscribe=str(message.get("List-Unsubscribe", "")),
        list_unsubscribe_post=str(message.get("List-Unsubscribe-Post", "")),
        message_id=str(message.get("Message-ID", "")),
        headers={key: str(value) for key, value in message.items()},
    )


class _Handler:
    def __init__(self, sink: MailSink) -> None:
        self.sink = sink

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any) -> str:
        if address.lower() in self.sink.refused:
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        caught = parse(envelope.content, envelope.mail_from, tuple(envelope.rcpt_tos))
        with self.sink.lock:
            self.sink.messages.append(caught)
            del self.sink.messages[:-self.sink.keep]
        return "250 Message accepted"


class MailSink:
    """`with MailSink() as sink:` an SMTP server on 127.0.0.1 (a free port unless given);
    `sink.messages` holds what it received, oldest first (at most `keep`)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, keep: int = 200) -> None:
        if port == 0:
            import socket

            with socket.socket() as probe:
                probe.bind((host, 0))
                port = probe.getsockname()[1]
        self.host, self.port, self.keep = host, port, keep
        self.messages: list[CaughtEmail] = []
        self.refused: set[str] = set()
        self.lock = threading.Lock()
        self._controller = Controller(_Handler(self), hostname=host, port=port)

    @property
    def url(self) -> str:
        return f"smtp://{self.host}:{self.port}"

    def start(self) -> MailSink:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def caught(self) -> list[CaughtEmail]:
        with self.lock:
            return list(self.messages)


_current: MailSink | None = None


def install(sink: MailSink | None) -> None:
    """Make `sink` the process's dev sink (its page on the dashboard shows what it caught)."""
    global _current
    _current = sink


def current() -> MailSink | None:
    return _current
