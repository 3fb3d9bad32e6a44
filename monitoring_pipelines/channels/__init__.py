"""Alert channels behind one small interface, configured only from environment variables.

A channel turns one notification (the outbox `payload` plus its `notification_id`) into one
message on one service. It keeps no state and writes nothing: the outbox in `delivery.py`
decides when to send and records what happened. Settings are read from the environment each
time a channel is built (once per delivery run), so secrets never pass through the config file,
the warehouse or Dagster run storage, and rotating one needs no restart.

Every failure is a `DeliveryError` whose message is safe to store and log: URLs are cut down to
scheme and host, and any secret the channel knows is scrubbed from server replies.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import os
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable
from urllib.parse import urlsplit

import requests

if TYPE_CHECKING:
    from monitoring_pipelines.config import AlertingConfig

CHANNEL_NAMES: tuple[str, ...] = ("webhook", "slack", "pagerduty", "email")
NOTIFICATION_KINDS: tuple[str, ...] = ("trigger", "resolve", "digest")

# (connect, read) seconds: a hung receiver must not hold a sensor tick for long.
HTTP_TIMEOUT: tuple[float, float] = (5.0, 15.0)
USER_AGENT = "monitoring-pipelines/0.1"
# Replies quoted in errors are cut to this many characters.
ERROR_BODY_CHARS = 200


class DeliveryError(Exception):
    """A send that did not succeed.

    `retryable`: the same notification may succeed later (service down, 5xx, 429, SMTP 4xx), as
    opposed to never as sent (4xx other than 429, SMTP 5xx, bad settings).
    `channel_down`: nothing else will get through right now either (connection refused, timeout,
    429, SMTP 421), so the outbox stops using the channel for the rest of the run.
    The message never contains secrets.
    """

    def __init__(self, message: str, retryable: bool, channel_down: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.channel_down = channel_down and retryable


@runtime_checkable
class Channel(Protocol):
    """What the outbox needs from a channel."""

    name: str

    def configured(self) -> bool:
        """True when every required environment variable is set (and valid)."""
        ...

    def problem(self) -> str | None:
        """Why the channel is not configured (names the variable, never its value); None when it is."""
        ...

    def send(self, notification: dict[str, Any]) -> None:
        """Deliver one notification or raise `DeliveryError`."""
        ...


def channel_from_env(name: str, environ: Mapping[str, str] | None = None) -> Channel:
    """The channel called `name`, its settings read from `environ` (default: os.environ) now."""
    env = os.environ if environ is None else environ
    # Imported here: the channel modules import the helpers below from this package.
    if name == "webhook":
        from monitoring_pipelines.channels.webhook import WebhookChannel

        return WebhookChannel.from_env(env)
    if name == "slack":
        from monitoring_pipelines.channels.slack import SlackChannel

        return SlackChannel.from_env(env)
    if name == "pagerduty":
        from monitoring_pipelines.channels.pagerduty import PagerDutyChannel

        return PagerDutyChannel.from_env(env)
    if name == "email":
        from monitoring_pipelines.channels.email import EmailChannel

        return EmailChannel.from_env(env)
    raise ValueError(f"unknown alert channel {name!r} (known: {list(CHANNEL_NAMES)})")


def route_channels(alerting: AlertingConfig, severity: str, owner: str | None = None) -> list[str]:
    """Channels a notification of `severity` for a model owned by `owner` goes to.

    An owner's route for a severity replaces the default route for that severity (so an owner
    can send its criticals to email only, or silence info with `[]`); severities the owner does
    not list fall back to `alerting.routes`. Order kept, duplicates dropped.
    """
    owner_routes = alerting.owner_routes.get(owner or "", {})
    chosen = owner_routes[severity] if severity in owner_routes else alerting.routes.get(severity, [])
    return list(dict.fromkeys(chosen))


# --------------------------------------------------------------------------- redaction


def redact_url(url: str) -> str:
    """Scheme and host[:port] only: webhook paths, queries and user info are credentials."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "?"
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<invalid url>"
    return f"{parts.scheme or '?'}://{host}{port}"


def scrub(text: str, secrets: Iterable[str | None]) -> str:
    """`text` with every secret (and every secret-bearing URL part) replaced by `***`.

    Short strings are skipped: replacing "/" or "a" would mangle the message, not protect anything.
    """
    for secret in sorted({s for s in secrets if s and len(s) >= 6}, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def url_problem(variable: str, url: str | None) -> str | None:
    """Why `url` (the value of `variable`) cannot be posted to, without quoting it; None when it can."""
    if not url:
        return f"{variable} is not set"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        return f"{variable} is not a valid URL"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"{variable} is not an http(s) URL"
    return None


def url_secrets(url: str | None) -> list[str]:
    """The parts of a URL that may carry a credential: the whole URL, its path, query and user info."""
    if not url:
        return []
    try:
        parts = urlsplit(url)
    except ValueError:
        return [url]
    return [url, parts.path, parts.query, parts.username or "", parts.password or ""]


# Variables whose values (or parts of them) are credentials; scrubbed from anything stored.
SECRET_VARIABLES: tuple[str, ...] = (
    "MONITORING_WEBHOOK_URL",
    "MONITORING_WEBHOOK_SECRET",
    "MONITORING_SLACK_WEBHOOK_URL",
    "MONITORING_PAGERDUTY_ROUTING_KEY",
    "MONITORING_SMTP_PASSWORD",
)


def env_secrets(environ: Mapping[str, str]) -> list[str]:
    """Every secret value (and secret URL part) in `environ`: the outbox's last line of defence."""
    return [part for var in SECRET_VARIABLES for part in url_secrets(environ.get(var))]


# --------------------------------------------------------------------------- HTTP


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


def to_json_bytes(obj: Any) -> bytes:
    """Strict JSON (NaN and infinities become null, dates ISO strings) as UTF-8 bytes."""
    return json.dumps(_jsonable(obj), ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple | set):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, dt.date | dt.datetime):
        return obj.isoformat()
    if hasattr(obj, "tolist"):  # numpy scalars and arrays
        return _jsonable(obj.tolist())
    if obj is None or isinstance(obj, str | int | bool):
        return obj
    return str(obj)


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


# --------------------------------------------------------------------------- wording


SEVERITY_LABEL = {"critical": "CRITICAL", "warning": "WARNING", "info": "INFO"}


def headline(notification: Mapping[str, Any]) -> str:
    """One line for subjects and fallbacks, e.g. `[CRITICAL] credit_default: PSI drift on income`."""
    kind = notification.get("kind", "trigger")
    title = notification.get("title") or f"{notification.get('model_name', '?')}: monitoring alert"
    if kind == "resolve":
        return f"[RESOLVED] {title}"
    label = SEVERITY_LABEL.get(
        str(notification.get("severity")), str(notification.get("severity", "")).upper()
    )
    if kind == "digest":
        n = len(notification.get("alerts") or [])
        return f"[{label} digest: {n} alert{'s' if n != 1 else ''}] {title}"
    return f"[{label}] {title}"


def format_value(value: Any) -> str:
    """Numbers in 4 significant digits; missing values as an em dash."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int | float):
        return f"{value:.4g}"
    return str(value)


def detail_fields(notification: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The label/value pairs every human-readable channel shows, in a fixed order, empties left out."""
    fields = [
        ("Model", notification.get("model_name")),
        ("Partition date", notification.get("partition_date")),
        ("Check", notification.get("check_name")),
        ("Subject", notification.get("subject")),
        ("Metric", notification.get("metric")),
        ("Value", notification.get("value")),
        ("Threshold", notification.get("threshold")),
        ("Severity", notification.get("severity")),
    ]
    out = []
    for label, value in fields:
        if value is None or value == "":
            continue
        out.append((label, format_value(value) if label in ("Value", "Threshold") else str(value)))
    return out


def alert_line(alert: Mapping[str, Any]) -> str:
    """One alert of a digest on one line."""
    parts = [str(alert.get("model_name") or "?"), str(alert.get("check_name") or "?")]
    if alert.get("subject"):
        parts.append(str(alert["subject"]))
    line = " / ".join(parts)
    if alert.get("metric") is not None:
        line += (
            f": {alert['metric']} = {format_value(alert.get('value'))}"
            f" (threshold {format_value(alert.get('threshold'))})"
        )
    if alert.get("message"):
        line += f" — {alert['message']}"
    return line


def link_items(notification: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(text, href) of the notification's http(s) links, `run` and `asset` first."""
    links = notification.get("links") or {}
    if not isinstance(links, Mapping):
        return []
    names = {"run": "Dagster run", "asset": "Asset in Dagster"}
    ordered = [k for k in names if k in links] + sorted(str(k) for k in links if k not in names)
    return [
        (names.get(key, str(key).replace("_", " ").capitalize()), str(links[key]))
        for key in ordered
        if isinstance(links[key], str) and links[key].startswith(("http://", "https://"))
    ]


def reference_line(notification: Mapping[str, Any], code: str = "") -> str:
    """`dedup key … · notification …`, parts that are missing left out; `code` wraps each value."""
    parts = [
        f"{label} {code}{notification[key]}{code}"
        for label, key in (("dedup key", "dedup_key"), ("notification", "notification_id"))
        if notification.get(key)
    ]
    return " · ".join(parts)


def truncate(text: str, limit: int) -> str:
    """At most `limit` characters, an ellipsis marking a cut."""
    return text if len(text) <= limit else text[: max(limit - 1, 0)] + "…"
