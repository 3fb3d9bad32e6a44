"""PagerDuty Events API v2: trigger and resolve one incident per alert `dedup_key`.

Shape from https://developer.pagerduty.com/docs/events-api-v2/trigger-events/ and
.../resolve-events/: a trigger carries `payload` (summary <= 1024 characters, source, severity in
critical/error/warning/info, component, group, class, custom_details) and `links`; a resolve needs
only routing_key, event_action and dedup_key. PagerDuty merges triggers with the same dedup_key
into the open incident, which is what makes a resend after a crash harmless. It answers 202;
400 means the event is invalid, 429 and 5xx mean try again.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from monitoring_pipelines.channels.base import DeliveryError
from monitoring_pipelines.channels.http import post_json
from monitoring_pipelines.channels.message import headline, link_items, truncate
from monitoring_pipelines.channels.redaction import url_problem

DEFAULT_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
SUMMARY_CHARS = 1024
DEDUP_KEY_CHARS = 255
SOURCE = "monitoring_pipelines"
SEVERITIES = {"critical": "critical", "warning": "warning", "info": "info"}
DETAIL_KEYS = (
    "notification_id",
    "model_name",
    "partition_date",
    "check_name",
    "subject",
    "metric",
    "value",
    "threshold",
    "message",
    "alert_ids",
)


def pagerduty_dedup_key(notification: Mapping[str, Any]) -> str:
    """The alert's dedup_key, hashed only when longer than PagerDuty accepts (same input, same key)."""
    key = str(notification.get("dedup_key") or notification.get("notification_id") or "")
    if len(key) <= DEDUP_KEY_CHARS:
        return key
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


def pagerduty_event(notification: Mapping[str, Any], routing_key: str) -> dict[str, Any]:
    """The Events v2 body: `resolve` for kind resolve, `trigger` for trigger and digest."""
    dedup_key = pagerduty_dedup_key(notification)
    if notification.get("kind") == "resolve":
        return {"routing_key": routing_key, "event_action": "resolve", "dedup_key": dedup_key}
    details = {k: notification[k] for k in DETAIL_KEYS if notification.get(k) is not None}
    if notification.get("alerts"):
        details["alerts"] = notification["alerts"]
    model = notification.get("model_name") or None
    payload: dict[str, Any] = {
        "summary": truncate(headline(notification), SUMMARY_CHARS),
        "source": SOURCE,
        "severity": SEVERITIES.get(str(notification.get("severity")), "error"),
        "component": model,
        "group": notification.get("owner") or "model-monitoring",
        "class": "digest" if notification.get("kind") == "digest" else notification.get("check_name"),
        "custom_details": details,
    }
    event: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": dedup_key,
        "client": SOURCE,
        "payload": {k: v for k, v in payload.items() if v is not None},
    }
    links = [{"href": href, "text": text} for text, href in link_items(notification)]
    if links:
        event["links"] = links
        event["client_url"] = links[0]["href"]
    return event


@dataclass(frozen=True)
class PagerDutyChannel:
    """Sends events with the integration key in MONITORING_PAGERDUTY_ROUTING_KEY."""

    routing_key: str | None = field(default=None, repr=False)
    events_url: str = DEFAULT_EVENTS_URL
    name: str = "pagerduty"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> PagerDutyChannel:
        env = os.environ if environ is None else environ
        return cls(
            routing_key=env.get("MONITORING_PAGERDUTY_ROUTING_KEY") or None,
            events_url=env.get("MONITORING_PAGERDUTY_EVENTS_URL") or DEFAULT_EVENTS_URL,
        )

    def problem(self) -> str | None:
        if not self.routing_key:
            return "MONITORING_PAGERDUTY_ROUTING_KEY is not set"
        return url_problem("MONITORING_PAGERDUTY_EVENTS_URL", self.events_url)

    def configured(self) -> bool:
        return self.problem() is None

    def send(self, notification: dict[str, Any]) -> None:
        if not self.routing_key:
            raise DeliveryError("pagerduty: channel not configured", True, channel_down=True)
        event = pagerduty_event(notification, self.routing_key)
        post_json(self.name, self.events_url, event, secrets=[self.routing_key])
