"""Real servers on 127.0.0.1 for tests that deliver notifications: an HTTP receiver, a trickling HTTP
receiver and an SMTP server.

They record what they receive and can be told to fail, so a test proves retries against the same
code paths production uses (sockets, HTTP status codes, SMTP replies), not against mocks. Use them as
context managers, or through the `http_receiver` / `smtp_server` fixtures:

    from monitoring_pipelines_tests.receivers import http_receiver  # noqa: F401  (a fixture)
"""

from __future__ import annotations

import contextlib
import email
import email.policy
import itertools
import json
import socket
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest


def free_port() -> int:
    """A TCP port on 127.0.0.1 with nothing listening (now): connecting to it is refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --------------------------------------------------------------------------- HTTP


@dataclass(frozen=True)
class ReceivedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    status: int  # what the receiver answered
    received_at: float = field(default_factory=time.monotonic)  # time.monotonic() on arrival

    def json(self) -> Any:
        return json.loads(self.body)


Responder = Callable[[ReceivedRequest], "tuple[int, bytes] | None"]


class HttpReceiver:
    """An HTTP server on 127.0.0.1 that records every request and answers as scripted.

    Answers, first match wins: the queue filled by `fail_next`, then `responder(request)` if it
    returns something, then `status`/`body`. `delivered` lists the requests answered with 2xx.
    """

    def __init__(self, port: int = 0, status: int = 200, body: bytes = b"ok", delay_s: float = 0.0) -> None:
        self.port = port
        self.status = status
        self.body = body
        self.delay_s = delay_s
        self.responder: Responder | None = None
        self.requests: list[ReceivedRequest] = []
        self._script: list[tuple[int, bytes]] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ control
    def start(self) -> HttpReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server API
                self._handle()

            def do_GET(self) -> None:  # noqa: N802
                self._handle()

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                if receiver.delay_s:
                    time.sleep(receiver.delay_s)
                status, reply = receiver._answer(self.command, self.path, dict(self.headers.items()), body)
                self.send_response(status)
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet tests
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05})
        self._thread.daemon = True
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> HttpReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def fail_next(self, n: int, status: int = 503, body: bytes = b"service unavailable") -> None:
        """Answer the next `n` requests with `status` (then back to normal)."""
        with self._lock:
            self._script.extend([(status, body)] * n)

    # ------------------------------------------------------------------ records
    @property
    def delivered(self) -> list[ReceivedRequest]:
        with self._lock:
            return [r for r in self.requests if 200 <= r.status < 300]

    def _answer(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
        probe = ReceivedRequest(method, path, headers, body, 0)
        with self._lock:
            scripted = self._script.pop(0) if self._script else None
        answer = scripted or (self.responder(probe) if self.responder else None) or (self.status, self.body)
        with self._lock:
            self.requests.append(ReceivedRequest(method, path, headers, body, answer[0]))
        return answer


class TricklingReceiver:
    """A TCP server on 127.0.0.1 that reads each request, then answers one byte every `interval_s`
    seconds, forever: `answer` (by default an HTTP status line and the start of a header), then "a"s.

    Every byte arrives well inside any per-operation timeout, so only a wall-clock deadline ends the
    exchange. Written on a bare socket because http.server can only answer all at once. For SMTP,
    pass `answer=SMTP_ANSWER, read_request=False` (the server speaks first).
    `accepted_at` / `closed_at` hold time.monotonic() of each connection's accept and of the moment
    the client hung up (seen as a failed write); `requests` holds the raw request heads.
    """

    HTTP_ANSWER = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Trickle: "
    SMTP_ANSWER = b"220-127.0.0.1 trickling "  # a greeting line that never ends

    def __init__(
        self, interval_s: float = 1.0, answer: bytes = HTTP_ANSWER, read_request: bool = True
    ) -> None:
        self.interval_s = interval_s
        self.answer = answer
        self.read_request = read_request
        self.port = 0
        self.requests: list[bytes] = []
        self.accepted_at: list[float] = []
        self.closed_at: list[float] = []
        self.accepted = threading.Event()  # set on the first connection
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._sock: socket.socket | None = None
        self._threads: list[threading.Thread] = []

    def start(self) -> TricklingReceiver:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", self.port))
        self._sock.listen(16)
        self._sock.settimeout(0.05)
        self.port = self._sock.getsockname()[1]
        self._spawn(self._accept_loop)
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> TricklingReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def _spawn(self, target: Callable[..., None], *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept_loop(self) -> None:
        assert self._sock is not None
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self.accepted_at.append(time.monotonic())
            self.accepted.set()
            self._spawn(self._trickle, conn)

    def _trickle(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            head = b""
            with contextlib.suppress(OSError):
                while self.read_request and b"\r\n\r\n" not in head:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    head += chunk
            with self._lock:
                self.requests.append(head)
            answer = itertools.chain(self.answer, itertools.repeat(ord("a")))
            while not self._stop.wait(self.interval_s):
                try:
                    conn.sendall(bytes([next(answer)]))
                except OSError:  # the client hung up
                    with self._lock:
                        self.closed_at.append(time.monotonic())
                    return


# --------------------------------------------------------------------------- SMTP


@dataclass(frozen=True)
class ReceivedEmail:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    login: str | None = None

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    def body(self, subtype: str = "plain") -> str:
        part = self.message.get_body(preferencelist=(subtype,))
        return part.get_content() if part is not None else ""


@dataclass
class _Handler:
    owner: SmtpServer

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd API
        return self.owner._accept(envelope, getattr(session, "auth_data", None))


class SmtpServer:
    """An aiosmtpd server on 127.0.0.1 that keeps each message it accepts.

    `fail_next(n, reply)` answers DATA with an SMTP error `n` times (a 4xx reply is temporary, 5xx
    permanent). With `users`, AUTH (PLAIN/LOGIN) is offered and checked (`ReceivedEmail.login` says
    who logged in); TLS is not offered, so clients must set MONITORING_SMTP_STARTTLS=false.
    """

    def __init__(self, port: int | None = None, users: dict[str, str] | None = None) -> None:
        self.port = port or free_port()
        self.users = users
        self.messages: list[ReceivedEmail] = []
        self.refused = 0
        self._script: list[str] = []
        self._lock = threading.Lock()
        self._controller: Any = None

    def start(self) -> SmtpServer:
        from aiosmtpd.controller import Controller

        kwargs: dict[str, Any] = {}
        if self.users is not None:
            kwargs.update(authenticator=self._authenticate, auth_require_tls=False)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # aiosmtpd warns about AUTH without TLS; this is a test server
            self._controller = Controller(_Handler(self), hostname="127.0.0.1", port=self.port, **kwargs)
            self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> SmtpServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def fail_next(self, n: int, reply: str = "451 4.3.0 Try again later") -> None:
        with self._lock:
            self._script.extend([reply] * n)

    def _accept(self, envelope: Any, login: Any) -> str:
        with self._lock:
            if self._script:
                self.refused += 1
                return self._script.pop(0)
        content = envelope.original_content or envelope.content
        message = email.message_from_bytes(content, policy=email.policy.default)
        user = login.decode() if isinstance(login, bytes) else login
        with self._lock:
            self.messages.append(ReceivedEmail(envelope.mail_from, list(envelope.rcpt_tos), message, user))
        return "250 Message accepted for delivery"

    def _authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> Any:
        from aiosmtpd.smtp import AuthResult, LoginPassword

        if not isinstance(auth_data, LoginPassword) or self.users is None:
            return AuthResult(success=False, handled=False)
        user, password = auth_data.login.decode(), auth_data.password.decode()
        ok = self.users.get(user) == password
        return AuthResult(success=ok, handled=False, auth_data=user if ok else None)


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
def http_receiver() -> Iterator[HttpReceiver]:
    """A started HttpReceiver, stopped after the test."""
    with HttpReceiver() as receiver:
        yield receiver


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    """A started SmtpServer (no AUTH), stopped after the test."""
    with SmtpServer() as server:
        yield server
