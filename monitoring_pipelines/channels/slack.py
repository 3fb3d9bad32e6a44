"""Slack incoming webhook: `text` (the fallback shown in notifications) plus Block Kit `blocks`.

Shape and limits from https://api.slack.com/messaging/webhooks and the Block Kit reference:
header text <= 150 characters, section text <= 3000, <= 10 fields per section, <= 50 blocks,
button URLs <= 3000. Slack answers `200 ok`; 4xx answers (`invalid_payload`, `no_service`,
`channel_is_archived`, ...) will not change on a resend, so they give the notification up.
The webhook URL is the credential: it is scrubbed from every error.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from monitoring_pipelines.channels.base import DeliveryError
from monitoring_pipelines.channels.http import post_json
from monitoring_pipelines.channels.message import (
    alert_line,
    detail_fields,
    headline,
    link_items,
    reference_line,
    truncate,
)
from monitoring_pipelines.channels.redaction import url_problem

HEADER_CHARS = 150
SECTION_CHARS = 3000
FIELD_CHARS = 2000
MAX_FIELDS = 10
MAX_DIGEST_SECTIONS = 20
EMOJI = {"critical": ":rotating_light:", "warning": ":warning:", "info": ":information_source:"}


def escape(text: Any) -> str:
    """Slack mrkdwn control characters, as its formatting docs require."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_message(notification: Mapping[str, Any]) -> dict[str, Any]:
    """The incoming-webhook JSON body for one notification."""
    kind = notification.get("kind", "trigger")
    emoji = (
        ":white_check_mark:" if kind == "resolve" else EMOJI.get(str(notification.get("severity")), ":bell:")
    )
    title = headline(notification)
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": truncate(f"{emoji} {title}", HEADER_CHARS), "emoji": True},
        }
    ]
    message = notification.get("message")
    if message:
        prefix = "*Resolved.* " if kind == "resolve" else ""
        blocks.append(_section(prefix + escape(message)))
    fields = [
        {"type": "mrkdwn", "text": truncate(f"*{label}*\n{escape(value)}", FIELD_CHARS)}
        for label, value in detail_fields(notification)
    ][:MAX_FIELDS]
    if fields:
        blocks.append({"type": "section", "fields": fields})
    if kind == "digest":
        blocks.extend(_digest_sections(notification.get("alerts") or []))
    buttons = [
        {"type": "button", "text": {"type": "plain_text", "text": text}, "url": href}
        for text, href in link_items(notification)
        if len(href) <= 3000
    ]
    if buttons:
        blocks.append({"type": "actions", "elements": buttons[:5]})
    context = escape(reference_line(notification, code="`"))
    if context:  # Slack rejects empty text objects
        blocks.append(
            {"type": "context", "elements": [{"type": "mrkdwn", "text": truncate(context, SECTION_CHARS)}]}
        )
    text = f"{emoji} {escape(title)}"
    if message:
        text += f"\n{escape(message)}"
    return {"text": truncate(text, SECTION_CHARS), "blocks": blocks}


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": truncate(text, SECTION_CHARS)}}


def _digest_sections(alerts: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Bullet lines packed into as few sections as the 3000-character limit allows."""
    sections: list[str] = []
    current = ""
    for i, alert in enumerate(alerts):
        line = truncate(f"• {escape(alert_line(alert))}", SECTION_CHARS)
        if current and len(current) + 1 + len(line) > SECTION_CHARS:
            sections.append(current)
            current = ""
            if len(sections) == MAX_DIGEST_SECTIONS:
                sections[-1] = truncate(sections[-1], SECTION_CHARS - 40) + f"\n…and {len(alerts) - i} more"
                break
        current = f"{current}\n{line}" if current else line
    else:
        if current:
            sections.append(current)
    return [_section(s) for s in sections]


@dataclass(frozen=True)
class SlackChannel:
    """Posts to the incoming webhook in MONITORING_SLACK_WEBHOOK_URL."""

    url: str | None = field(default=None, repr=False)
    name: str = "slack"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> SlackChannel:
        env = os.environ if environ is None else environ
        return cls(url=env.get("MONITORING_SLACK_WEBHOOK_URL") or None)

    def problem(self) -> str | None:
        return url_problem("MONITORING_SLACK_WEBHOOK_URL", self.url)

    def configured(self) -> bool:
        return self.problem() is None

    def send(self, notification: dict[str, Any]) -> None:
        if self.url is None:
            raise DeliveryError("slack: channel not configured", True, channel_down=True)
        post_json(self.name, self.url, slack_message(notification))
