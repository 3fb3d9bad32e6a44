"""Keeping credentials out of everything a channel stores or logs.

Webhook URLs (their path, query and user info), routing keys and passwords are secrets: errors
name a URL by scheme and host only, settings problems name the variable and never its value,
and server replies are scrubbed of every secret the channel knows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit


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
