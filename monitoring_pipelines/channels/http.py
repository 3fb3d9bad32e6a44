"""JSON over HTTP for the webhook, Slack and PagerDuty channels: one POST, errors redacted.

Each POST has a wall-clock deadline (`base.SEND_DEADLINE_S`) on top of the per-operation timeouts:
its connections register their sockets with a `deadline.SendDeadline`, which shuts them down when
the time is up. Importing this module also hides request paths from urllib3's logs (see
`_HideRequestPaths`).
"""

from __future__ import annotations

import http.client
import logging
import socket
from collections.abc import Iterable, Mapping
from typing import Any

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from monitoring_pipelines.channels import deadline
from monitoring_pipelines.channels.base import DeliveryError
from monitoring_pipelines.channels.message import to_json_bytes
from monitoring_pipelines.channels.redaction import redact_url, scrub, url_secrets

# (connect, read) seconds for each socket operation; the whole POST is bounded by
# base.SEND_DEADLINE_S, which ends a receiver that answers a byte at a time.
HTTP_TIMEOUT: tuple[float, float] = (5.0, 15.0)
USER_AGENT = "monitoring-pipelines/0.1"
# Replies quoted in errors are cut to this many characters.
ERROR_BODY_CHARS = 200
# At most this much of an error reply is read: a receiver streaming an endless body costs no memory.
ERROR_BODY_BYTES = 8192
# What a failed transport can raise besides requests' own errors (a body read goes through urllib3).
_TRANSPORT_ERRORS = (
    requests.RequestException,
    urllib3.exceptions.HTTPError,
    http.client.HTTPException,
    OSError,
)


class _HideRequestPaths(logging.Filter):
    """urllib3 logs `"POST /services/T.../B.../secret HTTP/1.1" 200` at DEBUG, and the full URL when
    an answer's headers do not parse (at WARNING, e.g. an answer cut by the send deadline): the path
    is the credential of a Slack or generic webhook, so it is replaced before any handler sees it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            request_line = '"%s %s %s"' in str(record.msg)
            record.args = tuple(_hide(a, request_line) for a in record.args)
        return True


def _hide(arg: object, request_line: bool) -> object:
    if not isinstance(arg, str):
        return arg
    if request_line and arg.startswith("/"):
        return "/***"
    return redact_url(arg) if arg.startswith(("http://", "https://")) else arg


for _logger in ("urllib3.connectionpool", "urllib3.connection"):
    logging.getLogger(_logger).addFilter(_HideRequestPaths())


class _WatchedSocket:
    """A urllib3 connection whose socket the current send deadline can shut down."""

    def _new_conn(self) -> socket.socket:
        sock: socket.socket = super()._new_conn()  # type: ignore[misc]
        deadline.watch(sock)
        return sock


class _HTTPConnection(_WatchedSocket, HTTPConnection):
    pass


class _HTTPSConnection(_WatchedSocket, HTTPSConnection):
    pass


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


class _WatchedAdapter(HTTPAdapter):
    """requests' adapter with the watched connections, also through an HTTP(S) proxy (a SOCKS proxy
    keeps its own connections: there only the per-operation timeouts apply)."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if not proxy.lower().startswith("socks"):
            manager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}
        return manager


def post_json(
    channel: str,
    url: str,
    body: Any,
    headers: Mapping[str, str] | None = None,
    secrets: Iterable[str | None] = (),
) -> requests.Response:
    """POST `body` as JSON; return the 2xx response (its body unread) or raise a redacted `DeliveryError`.

    Connection errors, timeouts, 5xx and 429 are retryable; other 4xx and redirects are not (the
    request itself is wrong and sending it again cannot help). Redirects are not followed: a POST
    silently turned into a GET would be reported as delivered. No answer at all, or 429, marks the
    channel down; a 5xx may concern this one notification, so the outbox still tries the others.
    No complete answer within `base.SEND_DEADLINE_S` counts as no answer: the receiver may have
    acted on the request, so the outbox sends it again later (same body and idempotency key).
    """
    data = body if isinstance(body, bytes) else to_json_bytes(body)
    all_secrets = [*secrets, *url_secrets(url)]
    where = redact_url(url)
    send_headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT, **(headers or {})}
    try:
        with deadline.SendDeadline() as budget, requests.Session() as session:
            session.mount("http://", _WatchedAdapter())
            session.mount("https://", _WatchedAdapter())
            timeout = (min(HTTP_TIMEOUT[0], budget.seconds), min(HTTP_TIMEOUT[1], budget.seconds))
            try:
                response = session.post(
                    url, data=data, headers=send_headers, timeout=timeout, allow_redirects=False, stream=True
                )
                with response:
                    ok = 200 <= response.status_code < 300
                    reply = b"" if ok else response.raw.read(ERROR_BODY_BYTES, decode_content=True)
            except _TRANSPORT_ERRORS:
                if not budget.expired:
                    raise
            if budget.expired:
                # Also without an error: http.client takes the end of the stream the deadline caused
                # for the end of the headers, so a cut "200 OK" would pass for an answer.
                message = f"{channel}: no complete answer from {where} within {budget.seconds:g}s"
                raise DeliveryError(message, True, channel_down=True)
    except requests.Timeout:
        raise DeliveryError(f"{channel}: timed out talking to {where}", True, channel_down=True) from None
    except requests.ConnectionError:
        # str(exc) of requests errors quotes the full URL (the secret), so it is not used.
        raise DeliveryError(f"{channel}: could not connect to {where}", True, channel_down=True) from None
    except _TRANSPORT_ERRORS as exc:
        # Unexpected transport trouble: assume it may pass rather than give the notification up.
        message = f"{channel}: request to {where} failed ({type(exc).__name__})"
        raise DeliveryError(message, True, channel_down=True) from None
    if ok:
        return response
    text = _decode(reply, response.encoding)
    reply_text = scrub(" ".join(text[:ERROR_BODY_CHARS].split()), all_secrets)
    retryable = response.status_code == 429 or response.status_code >= 500
    message = f"{channel}: HTTP {response.status_code} from {where}"
    raise DeliveryError(
        f"{message}: {reply_text}" if reply_text else message,
        retryable,
        channel_down=response.status_code == 429,
    )


def _decode(reply: bytes, encoding: str | None) -> str:
    """The reply as text: its declared charset, else UTF-8; undecodable bytes replaced."""
    try:
        return reply.decode(encoding or "utf-8", "replace")
    except LookupError:  # a charset Python does not know
        return reply.decode("utf-8", "replace")
