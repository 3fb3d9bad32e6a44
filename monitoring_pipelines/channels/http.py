"""JSON over HTTP for the webhook, Slack and PagerDuty channels: one POST, errors redacted.

Importing this module also hides request paths from urllib3's DEBUG log (see `_HideRequestPaths`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

import requests

from monitoring_pipelines.channels.base import DeliveryError
from monitoring_pipelines.channels.message import to_json_bytes
from monitoring_pipelines.channels.redaction import redact_url, scrub, url_secrets

# (connect, read) seconds: a hung receiver must not hold a sensor tick for long.
HTTP_TIMEOUT: tuple[float, float] = (5.0, 15.0)
USER_AGENT = "monitoring-pipelines/0.1"
# Replies quoted in errors are cut to this many characters.
ERROR_BODY_CHARS = 200


class _HideRequestPaths(logging.Filter):
    """urllib3 logs `"POST /services/T.../B.../secret HTTP/1.1" 200` at DEBUG: the path is the
    credential of a Slack or generic webhook, so it is replaced before any handler sees it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and '"%s %s %s"' in str(record.msg):
            record.args = tuple(
                "/***" if isinstance(a, str) and a.startswith("/") else a for a in record.args
            )
        return True


logging.getLogger("urllib3.connectionpool").addFilter(_HideRequestPaths())


def post_json(
    channel: str,
    url: str,
    body: Any,
    headers: Mapping[str, str] | None = None,
    secrets: Iterable[str | None] = (),
) -> requests.Response:
    """POST `body` as JSON; return the 2xx response or raise a redacted `DeliveryError`.

    Connection errors, timeouts, 5xx and 429 are retryable; other 4xx and redirects are not (the
    request itself is wrong and sending it again cannot help). Redirects are not followed: a POST
    silently turned into a GET would be reported as delivered. No answer at all, or 429, marks the
    channel down; a 5xx may concern this one notification, so the outbox still tries the others.
    """
    data = body if isinstance(body, bytes) else to_json_bytes(body)
    all_secrets = [*secrets, *url_secrets(url)]
    where = redact_url(url)
    send_headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT, **(headers or {})}
    try:
        response = requests.post(
            url, data=data, headers=send_headers, timeout=HTTP_TIMEOUT, allow_redirects=False
        )
    except requests.Timeout:
        raise DeliveryError(f"{channel}: timed out talking to {where}", True, channel_down=True) from None
    except requests.ConnectionError:
        # str(exc) of requests errors quotes the full URL (the secret), so it is not used.
        raise DeliveryError(f"{channel}: could not connect to {where}", True, channel_down=True) from None
    except requests.RequestException as exc:
        # Unexpected transport trouble: assume it may pass rather than give the notification up.
        message = f"{channel}: request to {where} failed ({type(exc).__name__})"
        raise DeliveryError(message, True, channel_down=True) from None
    if 200 <= response.status_code < 300:
        return response
    reply = scrub(" ".join(response.text[:ERROR_BODY_CHARS].split()), all_secrets)
    retryable = response.status_code == 429 or response.status_code >= 500
    message = f"{channel}: HTTP {response.status_code} from {where}"
    raise DeliveryError(
        f"{message}: {reply}" if reply else message, retryable, channel_down=response.status_code == 429
    )
