"""A real SMTP server on loopback (aiosmtpd) that keeps what it receives, for the mail tests.

`MailServer.answer(code)` makes it refuse the next messages with a chosen reply at RCPT or DATA,
so tests see the worker handle 4xx and 5xx the way a real relay would send them. `Blackhole` is a
port that accepts TCP connections and never says a word: a sender talking to it hangs forever.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any, Literal

from aiosmtpd.controller import Controller

Stage = Literal["RCPT", "DATA"]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass(frozen=True)
class Received:
    mail_from: str
    rcpt_tos: list[str]
    raw: bytes
    message: EmailMessage


class MailServer:
    """aiosmtpd on 127.0.0.1 (its own thread and loop). `port` may be chosen before it starts."""

    def __init__(self, port: int | None = None) -> None:
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.delay = 0.0
        self._received: list[Received] = []
        self._refusal: tuple[Stage, str] | None = None
        self._lock = threading.Lock()
        self._controller: Controller | None = None

    @property
    def messages(self) -> list[Received]:
        with self._lock:
            return list(self._received)

    def start(self) -> None:
        self._controller = Controller(self, hostname=self.host, port=self.port, ready_timeout=10)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def answer(self, code: int, text: str = "Refused by the test", at: Stage = "DATA") -> None:
        """Reply `code` at `at` to every message from now on, until `accept()`."""
        with self._lock:
            self._refusal = (at, f"{code} {text}")

    def accept(self) -> None:
        with self._lock:
            self._refusal = None

    async def wait_for(self, count: int, seconds: float = 10.0) -> list[Received]:
        """The messages once at least `count` arrived; fails after `seconds`."""
        deadline = time.monotonic() + seconds
        while len(self.messages) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"expected {count} messages, got {len(self.messages)}")
            await asyncio.sleep(0.02)
        return self.messages

    def _refused(self, stage: Stage) -> str | None:
        with self._lock:
            if self._refusal is not None and self._refusal[0] == stage:
                return self._refusal[1]
        return None

    # aiosmtpd handler hooks (called on the server's own loop).
    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        refusal = self._refused("RCPT")
        if refusal:
            return refusal
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.delay:
            await asyncio.sleep(self.delay)
        refusal = self._refused("DATA")
        if refusal:
            return refusal
        raw = bytes(envelope.original_content or envelope.content)
        message = message_from_bytes(raw, policy=policy.default)
        with self._lock:
            self._received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), raw, message))
        return "250 Message accepted for delivery"


class Blackhole:
    """A listening port whose connections are never answered (the kernel completes the handshake)."""

    def __init__(self) -> None:
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.bind(("127.0.0.1", 0))
        self._socket.listen(16)
        self.port: int = self._socket.getsockname()[1]

    def close(self) -> None:
        self._socket.close()
