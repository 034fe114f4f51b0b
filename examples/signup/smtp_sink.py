"""A local SMTP sink for the signup example: it accepts every message and delivers none.

The worker sends real SMTP to it, so the example exercises a real mail client
(``smtplib``) without a mail server or the internet. Run by hand, it prints each
message it receives; the example's test starts it in-process and reads
``Sink.messages``. Needs ``aiosmtpd`` (``pip install aiosmtpd``).
"""

from __future__ import annotations

import argparse
import signal
import socket
import threading
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller


class Sink:
    """An aiosmtpd handler that keeps every message it is given, in arrival order."""

    def __init__(self, echo: bool = False) -> None:
        self.messages: list[EmailMessage] = []
        self.echo = echo
        self._arrived = threading.Condition()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        with self._arrived:
            self.messages.append(message)
            self._arrived.notify_all()
        if self.echo:
            print(f"--- from {envelope.mail_from} to {', '.join(envelope.rcpt_tos)}\n"
                  f"{message.as_string()}", flush=True)
        return "250 Message accepted for delivery"

    def wait(self, count: int, timeout: float) -> bool:
        """Block until at least ``count`` messages have arrived, or ``timeout`` seconds pass."""
        with self._arrived:
            return self._arrived.wait_for(lambda: len(self.messages) >= count, timeout)


def free_port(host: str) -> int:
    # aiosmtpd's Controller connects to its own port once started, so it can't be given
    # port 0; ask the kernel for a free port first (the gap before it is bound is tiny).
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def start(sink: Sink, host: str = "127.0.0.1", port: int = 0) -> Controller:
    """Serve ``sink`` on host:port (port 0: a free one) in a thread; ``.stop()`` ends it."""
    controller = Controller(sink, hostname=host, port=port or free_port(host))
    controller.start()
    return controller


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to bind (default: 127.0.0.1; 0.0.0.0 in a container)")
    parser.add_argument("--port", type=int, default=1025, help="port (default: 1025)")
    args = parser.parse_args(argv)
    stopped = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):  # PID 1 in a container needs a handler
        signal.signal(sig, lambda signum, frame: stopped.set())
    controller = start(Sink(echo=True), args.host, args.port)
    print(f"SMTP sink on {args.host}:{controller.port}: messages are printed, not delivered",
          flush=True)
    stopped.wait()
    controller.stop()


if __name__ == "__main__":
    main()
