"""A wall-clock deadline for one send: when it runs out, the send's sockets are shut down.

Socket timeouts apply to each operation, so a receiver that trickles a byte every few seconds never
trips them. A timer ends the exchange instead: at the deadline it shuts down every socket the send
opened (`watch`), which wakes the blocked read or write at once with an error, and the channel
reports "no answer in time" (`SendDeadline.expired`). The send thus ends in the thread that made
it: nothing keeps running in the background, and its outcome is recorded once, by the outbox.

The transports register their sockets as they open them: http.py through urllib3 connection
classes, email.py through `smtplib.SMTP._get_socket`. The deadline shuts down a duplicate of the
socket, which stops the connection itself, so a TLS handshake or TLS read on it ends too.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from types import TracebackType

from monitoring_pipelines.channels import base

_active = threading.local()  # this thread's SendDeadline, while one is entered


class SendDeadline:
    """`with SendDeadline() as deadline:` around one send. Sockets this thread registers with `watch`
    inside the block are shut down once `seconds` (default `base.SEND_DEADLINE_S`, read now) pass."""

    def __init__(self, seconds: float | None = None) -> None:
        self.seconds = float(base.SEND_DEADLINE_S if seconds is None else seconds)
        self.expired = False
        self._started = time.monotonic()
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._closed = False
        self._timer: threading.Timer | None = None
        self._outer: SendDeadline | None = None

    def __enter__(self) -> SendDeadline:
        self._started = time.monotonic()
        self._outer = getattr(_active, "deadline", None)
        _active.deadline = self
        self._timer = threading.Timer(self.seconds, self._expire)
        self._timer.daemon = True
        self._timer.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        _active.deadline = self._outer
        if self._timer is not None:
            self._timer.cancel()
        with self._lock:  # under the lock: the timer never shuts down a socket number reused elsewhere
            self._closed = True
            for sock in self._sockets:
                sock.close()
            self._sockets.clear()

    def remaining(self) -> float:
        """Seconds left (0 once spent)."""
        return max(self.seconds - (time.monotonic() - self._started), 0.0)

    def watch(self, sock: socket.socket) -> None:
        """Shut `sock`'s connection down at the deadline (at once if it has passed)."""
        copy = sock.dup()
        with self._lock:
            if self._closed:
                copy.close()
                return
            self._sockets.append(copy)
            if self.expired:
                _shutdown(copy)

    def _expire(self) -> None:
        with self._lock:
            if self._closed:
                return
            self.expired = True
            for sock in self._sockets:
                _shutdown(sock)


def watch(sock: socket.socket) -> None:
    """Register a socket just opened with this thread's current SendDeadline, if any."""
    deadline: SendDeadline | None = getattr(_active, "deadline", None)
    if deadline is not None:
        deadline.watch(sock)


def _shutdown(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed by the peer or by the send itself
        sock.shutdown(socket.SHUT_RDWR)
